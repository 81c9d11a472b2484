"""Networks built with lava-dl's own slayer blocks and written by slayer's `export_hdf5`: read by snnchip, simulated,
and compared with stock netx on Lava's fixed-point CPU simulator wherever netx can build them."""
import h5py
import numpy as np
import pytest
import torch

from snnchip.errors import UnsupportedError
from snnchip.formats.netx import read_netx
from snnchip.sim import simulate

from sim.netx_harness import run_netx_on_lava

CUBA = {"threshold": 0.5, "current_decay": 0.3, "voltage_decay": 0.1, "tau_grad": 1.0, "scale_grad": 1.0,
        "requires_grad": False}


def export(blocks, path, input_shape):
    """Size slayer's neurons and synapses with one forward pass, then write every block with its export_hdf5."""
    with torch.no_grad():
        x = torch.ones(1, *input_shape, 2)
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as handle:
        layer = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    return path


def recurrent_first_file(path):
    """dense_rec first (no input layer), per-neuron iDecay / vDecay vectors (shared_param=False), refDelay 1."""
    from lava.lib.dl import slayer
    torch.manual_seed(0)
    params = {**CUBA, "shared_param": False}
    return export([slayer.block.cuba.Recurrent(params, 6, 8, weight_scale=2),
                   slayer.block.cuba.Dense(params, 8, 3, weight_scale=2)], path, (6,))


def compare(graph, result, lava_blocks):
    neurons = [pop for pop in graph.populations if not pop.neuron.graded]
    assert len(neurons) == len(lava_blocks)
    for pop, block in zip(neurons, lava_blocks):
        for q, theirs in zip(("spikes", "u", "v"), block):
            ours = getattr(result, q)[pop.name][0].numpy()
            if ours.ndim == 4:
                ours = ours.transpose(2, 1, 0, 3)
            bad = np.argwhere(ours != theirs)
            assert len(bad) == 0, f"{pop.name}.{q}: {len(bad)} values differ from Lava, first at step {bad[0][-1]}"


def test_recurrent_first_layer_with_per_neuron_decays_equals_netx_on_lava(tmp_path):
    """The recurrent-first-layer mismatch: slayer writes per-neuron iDecay / vDecay vectors, netx hands them to
    Lava's LIF as vectors; the reader took the first entry for every neuron. Now u, v and spikes of both layers
    equal Lava at every step; netx's joint weight optimisation (weight with weight_rec) is exact here."""
    from lava.lib.dl import netx
    path = recurrent_first_file(tmp_path / "rec.net")
    with h5py.File(path) as handle:
        i_decay = handle["layer/0/neuron/iDecay"][()]
        assert i_decay.shape == (8,) and len(set(i_decay.tolist())) > 1
        assert int(handle["layer/0/neuron/refDelay"][()]) == 1
    graph = read_netx(path)
    np.testing.assert_array_equal(graph.populations[1].neuron.du, i_decay - 1)
    block = netx.hdf5.Network(net_config=str(path)).layers[0]
    assert block.synapse.proc_params["weight_exp"] != 0              # netx rescaled weight and weight_rec jointly
    steps = 12
    x = (np.random.default_rng(5).random((6, steps)) < 0.6).astype(np.int64)
    result = simulate(graph, torch.as_tensor(x[None]), record=("spikes", "u", "v"))
    lava = run_netx_on_lava(path, steps, x)
    assert lava[1][0].sum() > 0                                       # the last layer spikes
    compare(graph, result, lava)


@pytest.mark.parametrize("field, value, words", [
    ("refDelay", 3, "neuron field 'refDelay' > 1"),
    ("gradedSpike", True, "neuron field 'gradedSpike' is set"),
    ("vThMant", np.arange(8) + 20, "neuron field 'vThMant' has 8 different values"),
    ("iDecay", np.arange(5) + 100, "neuron field 'iDecay' has 5 values"),
])
def test_neuron_fields_netx_ignores_or_cannot_take_are_one_line(tmp_path, field, value, words):
    path = recurrent_first_file(tmp_path / "rec.net")
    with h5py.File(path, "a") as handle:
        del handle[f"layer/0/neuron/{field}"]
        handle["layer/0/neuron"].create_dataset(field, data=value)
    with pytest.raises(ValueError) as info:
        read_netx(path)
    text = str(info.value)
    assert "\n" not in text and f"layer 0 (dense_rec): {words}" in text


def pooling_file(path):
    """input -> conv -> pool (sum pooling, weight_scale 1) -> convT (stride 2) -> unpool -> dense, all slayer blocks."""
    from lava.lib.dl import slayer
    torch.manual_seed(3)
    blocks = [slayer.block.cuba.Input(CUBA), slayer.block.cuba.Conv(CUBA, 2, 4, 3, padding=1, weight_scale=2),
              slayer.block.cuba.Pool(CUBA, 2, weight_scale=1),
              slayer.block.cuba.ConvT(CUBA, 4, 3, 3, stride=2, padding=1, weight_scale=2),
              slayer.block.cuba.Unpool(CUBA, 2, weight_scale=1), slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(CUBA, 3 * 14 * 14, 5, weight_scale=2)]
    return export(blocks, path, (2, 8, 8)), blocks


def test_pool_convT_unpool_synapses_compute_what_slayers_do(tmp_path):
    """Each refused-by-netx layer's projection, on random spikes, equals the slayer block's own synapse run with the
    integer weights export_hdf5 wrote (its conv3d / conv_transpose3d conventions for stride, padding, groups)."""
    from snnchip.sim.synapses import Synapse
    path, blocks = pooling_file(tmp_path / "pool.net")
    graph = read_netx(path)
    assert [q.kind for q in graph.projections] == ["conv", "conv", "dense", "dense", "dense"]
    with h5py.File(path) as handle:
        for index in (2, 3, 4):
            block, proj = blocks[index], graph.projections[index - 1]
            src = graph.population(proj.source)
            x = (torch.rand(1, *src.shape, 1, generator=torch.Generator().manual_seed(index)) < 0.5).double()
            synapse = block.synapse
            synapse.weight.data = torch.as_tensor(handle[f"layer/{index}/weight"][()],
                                                  dtype=torch.float64).reshape(synapse.weight.shape)
            synapse._pre_hook_fx = None
            with torch.no_grad():
                theirs = synapse.double()(x)[..., 0].reshape(-1)
            ours = Synapse(graph, proj, torch.float64, "cpu").contribution(0, x.reshape(1, -1))[0]
            assert float(theirs.abs().sum()) > 0
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=proj.name)


def stream_equal(graph, x, names):
    """snn-deploy's path (the Lava builder) against simulate on the same stream: spikes, u, v at every step."""
    from snnchip.deploy.run import run_on_lava
    from snnchip.sim import sample_stream
    lava = run_on_lava(graph, x, record=names + ["u", "v"], via="builder")
    steps = x.shape[-1]
    stream = sample_stream(graph, torch.as_tensor(x), steps, extra_steps=max(graph.depths().values()))
    ours = simulate(graph, stream[graph.inputs[0].name][None], record=("spikes", "u", "v"), reset_interval=steps)
    fired = 0
    for name in names:
        graded = graph.population(name).neuron.graded
        for q, theirs in (("spikes", lava.stream_spikes), ("u", lava.stream_u), ("v", lava.stream_v)):
            if graded and q != "spikes":
                continue
            np.testing.assert_array_equal(getattr(ours, q)[name][0].numpy(), theirs[name], err_msg=f"{name}.{q}")
        fired += int(np.count_nonzero(lava.stream_spikes[name]))
    return fired


def test_pooling_network_sim_equals_deploy_at_every_step(tmp_path):
    path, _ = pooling_file(tmp_path / "pool.net")
    graph = read_netx(path)
    # the input block's CUBA neuron integrates its input (netx feeds it into the neuron): large enough to fire
    x = 80 * (np.random.default_rng(1).random((2, 2, 8, 8, 10)) < 0.5).astype(np.int64)
    assert stream_equal(graph, x, [pop.name for pop in graph.populations[1:]]) > 100


def test_stock_ntidigits_runs_whole_with_its_average_layer(tmp_path):
    """ntidigits.net with its final 'average' layer (lava-dl's own test drops it, netx cannot build it): the relay
    carries each of 11 groups of 22 output neurons' spike sum, one hop later; the layers before it are checked
    against netx on Lava by tests/sim/test_stock_netx.py. On the Lava builder (snn-deploy's path) the same file
    without its axonal delays (the builder restarts each layer per sample, which delays would straddle) equals
    simulate at every step, the average relay included."""
    import shutil
    from lava_dl_files import stock_netx_dir
    root = stock_netx_dir() / "gts" / "ntidigits"
    graph = read_netx(root / "ntidigits.net")
    assert graph.outputs[0].name == "layer5" and graph.outputs[0].shape == (11,)
    steps = 120
    x = np.load(root / "input.npy")[:, :steps].astype(np.int64).reshape(1, 1, 1, 64, steps)
    result = simulate(graph, torch.as_tensor(x), record=("spikes",))
    sums = result.spikes["layer4"][0].numpy().reshape(11, 22, steps).sum(1)     # slayer's mean x 22
    np.testing.assert_array_equal(result.spikes["layer5"][0].numpy()[:, 1:], sums[:, :-1])
    assert sums.sum() > 0
    path = tmp_path / "ntidigits_no_delay.net"
    shutil.copy(root / "ntidigits.net", path)
    with h5py.File(path, "a") as handle:
        for i in ("2", "3", "4"):
            if "delay" in handle["layer"][i]:
                del handle["layer"][i]["delay"]
    graph = read_netx(path)
    assert stream_equal(graph, x, ["layer2", "layer3", "layer4", "layer5"]) > 50


def conv_first_file(path):
    """The layout slayer writes for an ordinary conv network: conv first, no Input block (digits-dvs's 2 x 16 x 16)."""
    from lava.lib.dl import slayer
    torch.manual_seed(4)
    return export([slayer.block.cuba.Conv(CUBA, 2, 4, 3, stride=2, weight_scale=3),
                   slayer.block.cuba.Flatten(), slayer.block.cuba.Dense(CUBA, 4 * 7 * 7, 10, weight_scale=3)],
                  path, (2, 16, 16))


def dense_first_file(path):
    """slayer's N-MNIST tutorial layout: dense blocks only, the sample flattened in C order."""
    from lava.lib.dl import slayer
    torch.manual_seed(5)
    return export([slayer.block.cuba.Dense(CUBA, 2 * 16 * 16, 12, weight_scale=3),
                   slayer.block.cuba.Dense(CUBA, 12, 10, weight_scale=3)], path, (2 * 16 * 16,))


def test_conv_first_file_without_input_layer_takes_the_input_shape_and_equals_netx(tmp_path):
    path = conv_first_file(tmp_path / "conv.net")
    with pytest.raises(ValueError) as info:
        read_netx(path)
    assert "--input-shape C,H,W" in str(info.value) and "layer 0 (conv)" in str(info.value)
    graph = read_netx(path, input_shape=(2, 16, 16))
    assert graph.inputs[0].shape == (2, 16, 16) and graph.inputs[0].neuron.graded
    steps = 10
    x = (np.random.default_rng(2).random((2, 16, 16, steps)) < 0.3).astype(np.int64)
    result = simulate(graph, torch.as_tensor(x[None]), record=("spikes", "u", "v"))
    lava = run_netx_on_lava(path, steps, x.transpose(2, 1, 0, 3), input_shape=(16, 16, 2))
    assert sum(int(block[0].sum()) for block in lava) > 20
    compare(graph, result, lava)


@pytest.mark.parametrize("make, extra", [(conv_first_file, ["--input-shape", "2,16,16"]), (dense_first_file, [])])
def test_slayer_layouts_run_on_a_dataset_in_snn_sim_snn_energy_and_snn_deploy(tmp_path, capsys, make, extra):
    """conv-first (with --input-shape) and dense-first (the data set's samples flattened, as netx implies) files on
    digits-dvs: snn-sim and snn-energy count the same, snn-deploy equals simulate at every step."""
    import json
    from snnchip.deploy.cli import main as deploy_main
    from snnchip.energy.cli import main as energy_main
    from snnchip.sim.cli import main as sim_main
    path = str(make(tmp_path / "net.net"))
    common = ["--dataset", "digits-dvs", "--samples", "2", "--json"]
    assert sim_main([path, *common, *extra]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["samples"] == 2 and sim["per_sample"]["synops"] > 0
    assert energy_main([path, *common, *extra]) == 0
    energy = json.loads(capsys.readouterr().out)
    assert energy["T"] == 8 and energy["totals"]["per_sample"]["synops"] > 0
    assert deploy_main([path, *common, *extra]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["identical"] and deployed["samples"] == 2


@pytest.mark.parametrize("field, value, words", [
    ("wgtExp", 2, "neuron field 'wgtExp' is not 0"),
    ("refractory", 4, "neuron field 'refractory' is not supported"),
])
def test_unknown_or_ignored_cuba_fields_are_one_line(tmp_path, field, value, words):
    path = recurrent_first_file(tmp_path / "rec.net")
    with h5py.File(path, "a") as handle:
        handle["layer/1/neuron"].create_dataset(field, data=value)
    with pytest.raises(UnsupportedError, match=r"layer 1 \(dense\): " + words):
        read_netx(path)


def test_unknown_sdnn_field_is_one_line(tmp_path):
    import shutil
    from lava_dl_files import pilotnet_sdnn_dir
    path = tmp_path / "sdnn.net"
    shutil.copy(pilotnet_sdnn_dir() / "square_network.net", path)
    with h5py.File(path, "a") as handle:
        handle["layer/2/neuron"].create_dataset("cum_error", data=True)   # slayer's option netx never reads
    with pytest.raises(UnsupportedError, match=r"layer 2 \(conv\): neuron field 'cum_error' is not supported"):
        read_netx(path)


def graded_input(shape, steps, seed):
    """Sparse graded integers -2..5 of `(*shape, steps)`: values netx's first synapse reads as spikes."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 6, (*shape, steps)) * (rng.random((*shape, steps)) < 0.3)
    assert (x > 1).any() and (x < 0).any()
    return x


@pytest.mark.parametrize("make, shape, extra", [(conv_first_file, (2, 16, 16), ["--input-shape", "2,16,16"]),
                                                (dense_first_file, (512,), [])])
def test_graded_input_into_a_file_without_input_neuron_is_read_as_spikes_as_netx_does(tmp_path, make, shape, extra):
    """netx's first synapse reads a network input no input neuron precedes with input_message_bits 0 (Lava's
    astype(bool)): every non-zero value, graded or negative, arrives as 1. snn-sim's recorded layers equal stock
    netx on Lava at every step for graded input (with the old pass-through the first layer's u differed)."""
    import json
    from snnchip.sim.cli import main as sim_main
    path = make(tmp_path / "net.net")
    steps = 10
    x = graded_input(shape, steps, seed=7)
    lava_x = x.transpose(2, 1, 0, 3) if len(shape) == 3 else x
    np.save(tmp_path / "x.npy", lava_x)
    assert sim_main([str(path), "--input", str(tmp_path / "x.npy"), "--raw", "--record", str(tmp_path / "rec"),
                     *extra]) == 0
    lava = run_netx_on_lava(path, steps, lava_x, input_shape=(16, 16, 2) if len(shape) == 3 else None)
    assert sum(int(block[0].sum()) for block in lava) > 20
    index = json.loads((tmp_path / "rec" / "index.json").read_text())["layers"]
    assert index[0]["layer"] == "input" and not index[0]["graded"]
    for entry, block in zip(index[1:], lava):
        for q, theirs in zip(("spikes", "u", "v"), block):
            ours = np.load(tmp_path / "rec" / entry[q]).astype(np.int64)
            bad = np.argwhere(ours != theirs)
            assert len(bad) == 0, f"{entry['layer']}.{q}: {len(bad)} values differ from Lava, first at step " \
                                  f"{bad[0][-1]}"


def test_graded_input_into_a_conv_first_file_deploys_and_counts_as_spikes(tmp_path, capsys):
    """snn-deploy's two Lava routes (stock netx loading the file, and our builder) equal simulate for graded input;
    snn-energy counts the input projection's events as spike-driven synaptic ops, one per non-zero value."""
    import json
    from snnchip.deploy.run import run_on_lava
    from snnchip.energy.cli import main as energy_main
    from snnchip.sim import sample_stream
    path = conv_first_file(tmp_path / "conv.net")
    from snnchip.formats.netx import write_netx
    graph = read_netx(path, input_shape=(2, 16, 16))
    write_netx(graph, tmp_path / "written.net", require_stock=True)               # the binary input is stock
    assert read_netx(tmp_path / "written.net").inputs[0].neuron.binary
    steps = 8
    x = graded_input((2, 16, 16), steps, seed=8)[None]
    runs = {via: run_on_lava(graph, x, via=via) for via in ("auto", "builder")}
    assert runs["auto"].via == "netx"
    stream = sample_stream(graph, x, extra_steps=runs["auto"].num_steps - steps)
    out = graph.outputs[0].name
    ref = simulate(graph, {k: torch.as_tensor(v[None]) for k, v in stream.items()}, record=(out,),
                   reset_interval=steps)
    assert ref.spikes[out].sum() > 0
    for via, lava in runs.items():
        np.testing.assert_array_equal(lava.stream_spikes[out], ref.spikes[out][0].numpy(), err_msg=via)
    np.save(tmp_path / "x.npy", x[0].transpose(2, 1, 0, 3))
    assert energy_main([str(path), "--input", str(tmp_path / "x.npy"), "--input-shape", "2,16,16", "--json"]) == 0
    layers = {row["source"]: row for row in json.loads(capsys.readouterr().out)["layers"]}
    assert layers["input"]["input"] == "spikes" and layers["input"]["input_events"] == int((x != 0).sum())
