"""Sigma-delta networks (lava.proc.sdn) read from the stock PilotNet SDNN files inside the lava-dl wheel: simulate()
equals the ground truths Intel ships beside them, the way lava-dl's own netx tests use them, and Lava's
fixed-point CPU simulation of stock netx in every state (sigma, act, residue, error) and payload, every step."""
import h5py
import numpy as np
import pytest
import torch

from lava_dl_files import pilotnet_sdnn_dir, skip_input_layer
from snnchip.errors import UnsupportedError
from snnchip.formats.netx import read_netx
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

ROOT = pilotnet_sdnn_dir()
QUANTITY = {"out": "spikes", "sigma": "u", "act": "v", "residue": "residue", "error": "error"}


def graph_layout(x_xyft: np.ndarray) -> torch.Tensor:
    """Lava's (x, y, f, T) -> the graph's [1, C, H, W, T]."""
    return torch.from_numpy(np.ascontiguousarray(x_xyft.astype(np.int64).transpose(2, 1, 0, 3))[None])


def lava_layout(a: torch.Tensor) -> np.ndarray:
    a = a[0].numpy()
    return a.transpose(2, 1, 0, 3) if a.ndim == 4 else a


def test_pilotnet_sdnn_readout_equals_shipped_ground_truth():
    """lava-dl's test_pilotnet_sdnn: input.npy cycled for len(net.layers) = 9 steps; the Sigma readout's payloads
    equal output.npy exactly."""
    graph = read_netx(ROOT / "network.net")
    assert [p.neuron.model for p in graph.populations] == ["delta"] + ["sigma_delta"] * 7 + ["sigma"]
    steps = 9
    x = np.repeat(np.load(ROOT / "input.npy"), steps, axis=-1)
    result = simulate(graph, graph_layout(x), record=("spikes",))
    out = result.spikes[graph.outputs[0].name][0].numpy()
    gt = np.load(ROOT / "output.npy")
    assert np.count_nonzero(gt) >= 7
    np.testing.assert_array_equal(out, gt)
    np.testing.assert_array_equal(result.output[0].numpy(), gt)      # the readout's sigma is its output


@pytest.mark.parametrize("net, crop, truths", [
    ("network.net", np.s_[:, :], ("sigma1", "sigma2")),
    ("square_network.net", np.s_[:33, :33], ("sigma1_square", "sigma2_square", "sigma3_square", "sigma4_square"))])
def test_sigma_of_every_conv_layer_equals_shipped_ground_truth_at_every_step(net, crop, truths):
    """lava-dl's test_hdf5_nx feeds act0.npy past the input layer (skip_layers=1) and compares each conv layer's
    sigma with sigma<k>.npy at its last step; here at every one of the 20 steps."""
    graph = skip_input_layer(read_netx(ROOT / net))
    x = np.load(ROOT / "act0.npy")[crop]
    result = simulate(graph, graph_layout(x), record=("u",))
    for pop, name in zip(graph.populations[1:], truths):
        gt = np.load(ROOT / f"{name}.npy")
        ours = lava_layout(result.u[pop.name])
        assert ours.shape == gt.shape == (*gt.shape[:3], 20)
        assert np.count_nonzero(gt[..., -1]) > gt[..., -1].size // 2
        np.testing.assert_array_equal(ours, gt, err_msg=f"{net} {pop.name} vs {name}.npy")


def compare_with_lava(graph, result, lava_blocks):
    neurons = [pop for pop in graph.populations if not pop.neuron.graded]
    assert len(neurons) == len(lava_blocks)
    compared = 0
    for pop, block in zip(neurons, lava_blocks):
        for var, theirs in block.items():
            q = "v" if pop.neuron.model == "sigma" and var == "sigma" else QUANTITY[var]
            ours = lava_layout(getattr(result, q)[pop.name])
            assert ours.shape == theirs.shape, (pop.name, var)
            bad = np.argwhere(ours != theirs)
            assert len(bad) == 0, f"{pop.name}.{var}: {len(bad)} values differ from Lava, first at step {bad[0][-1]}"
            compared += np.count_nonzero(theirs)
    return compared


@pytest.mark.slow
def test_pilotnet_sdnn_every_state_every_step_equals_stock_netx_on_lava():
    """network.net on input.npy, 12 steps (~45 s of Lava): Delta input (act, residue, error), every SigmaDelta
    layer's sigma, act, residue, error and payloads, and the Sigma readout."""
    from .netx_harness import run_sdnn_netx_on_lava
    steps = 12
    x = np.load(ROOT / "input.npy")
    graph = read_netx(ROOT / "network.net")
    result = simulate(graph, graph_layout(np.repeat(x, steps, axis=-1)),
                      record=("spikes", "u", "v", "residue", "error"))
    assert compare_with_lava(graph, result, run_sdnn_netx_on_lava(ROOT / "network.net", steps, x)) > 10 ** 5


def test_square_pilotnet_sdnn_every_state_every_step_equals_stock_netx_on_lava():
    """square_network.net fed act0 past its input layer (netx skip_layers=1), 8 steps of Lava (~11 s)."""
    from .netx_harness import run_sdnn_netx_on_lava
    steps = 8
    x = np.load(ROOT / "act0.npy")[:33, :33, :, :steps]
    graph = skip_input_layer(read_netx(ROOT / "square_network.net"))
    result = simulate(graph, graph_layout(x), record=("spikes", "u", "v", "residue", "error"))
    lava = run_sdnn_netx_on_lava(ROOT / "square_network.net", steps, x, skip_layers=1)
    assert compare_with_lava(graph, result, lava) > 10 ** 4


def one_sigma_delta_graph(activation="relu", cum_error=False, vth=3, bias=None):
    """input relay (graded) -> dense -> one sigma_delta population of 6 neurons."""
    rng = np.random.default_rng(1)
    weight = 2 * rng.integers(-20, 20, (6, 4))      # even: Lava keeps mixed-sign 8-bit weights exactly
    pops = [Population("in", (4,), Neuron(threshold=None, graded=True), is_input=True),
            Population("sd", (6,), Neuron(threshold=vth, model="sigma_delta", activation=activation,
                                          cum_error=cum_error, spike_exp=3, state_exp=2),
                       bias=bias, is_output=True)]
    return Graph(pops, [Projection("in->sd", "in", "sd", "dense", weight, num_message_bits=16)],
                 timing="pipelined", fixed=True, meta={"depth": {"in": 0, "sd": 1}})


@pytest.mark.parametrize("activation, cum_error", [("identity", False), ("relu", True), ("identity", True)])
def test_sigma_delta_options_netx_never_sets_equal_lavas_process(activation, cum_error):
    """UNIT activation and cumulative error (slayer's options that netx drops) against lava.proc.sdn.SigmaDelta
    itself, fed through a bit-accurate Dense, every state at every step."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io
    from lava.proc.dense.process import Dense
    from lava.proc.sdn.process import ActivationMode, SigmaDelta
    from snnchip.deploy.runconfig import TagRunConfig
    steps = 16
    bias = np.arange(6) - 2
    graph = one_sigma_delta_graph(activation, cum_error, bias=bias)
    x = np.random.default_rng(2).integers(-30, 30, (4, steps))
    x[:, ::3] = 0
    result = simulate(graph, torch.as_tensor(x[None]), record=("spikes", "u", "v", "residue", "error"))
    n = graph.population("sd").neuron
    source = io.source.RingBuffer(data=x.astype(np.int32))
    dense = Dense(weights=graph.projections[0].weight, num_message_bits=16)
    sd = SigmaDelta(shape=(6,), vth=n.threshold, bias=bias, cum_error=cum_error, spike_exp=n.spike_exp,
                    state_exp=n.state_exp,
                    act_mode=ActivationMode.UNIT if activation == "identity" else ActivationMode.RELU)
    sink = io.sink.RingBuffer(shape=(6,), buffer=steps)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(sd.a_in)
    sd.s_out.connect(sink.a_in)
    lava = {k: [] for k in ("sigma", "act", "residue", "error")}
    try:
        for _ in range(steps):
            sd.run(condition=RunSteps(num_steps=1), run_cfg=TagRunConfig("fixed_pt"))
            for k in lava:
                lava[k].append(getattr(sd, k).get().copy())
        lava["out"] = sink.data.get().copy()
    finally:
        sd.stop()
    for var, theirs in lava.items():
        theirs = np.stack(theirs, -1) if isinstance(theirs, list) else theirs
        np.testing.assert_array_equal(getattr(result, QUANTITY[var])["sd"][0].numpy(), theirs, err_msg=var)
    assert np.count_nonzero(lava["out"]) > 10 and (cum_error is False or np.count_nonzero(lava["error"][-1]))


def test_dense_sums_of_large_payloads_wrap_as_lavas_int32():
    """Payloads near 2**23 through 254-weights overflow numpy's int32 in Lava's Dense before its shift by the
    (negative) weight exponent: the Sigma readout's sigma follows Lava's wrapped sums."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io
    from lava.proc.dense.process import Dense
    from lava.proc.sdn.process import Sigma
    from snnchip.deploy.runconfig import TagRunConfig
    steps = 6
    weight = np.full((3, 4), 254)
    weight[1] = -254
    pops = [Population("in", (4,), Neuron(threshold=None, graded=True), is_input=True),
            Population("s", (3,), Neuron(threshold=None, model="sigma"), is_output=True)]
    graph = Graph(pops, [Projection("in->s", "in", "s", "dense", weight, num_message_bits=24, weight_exp=-3)],
                  timing="pipelined", fixed=True, meta={"depth": {"in": 0, "s": 1}})
    x = np.random.default_rng(3).integers(1 << 22, 1 << 23, (4, steps))
    result = simulate(graph, torch.as_tensor(x[None]), record=("v",))
    source = io.source.RingBuffer(data=x.astype(np.int32))
    dense = Dense(weights=weight, num_message_bits=24, weight_exp=-3)
    sigma = Sigma(shape=(3,))
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(sigma.a_in)
    lava = []
    try:
        for _ in range(steps):
            sigma.run(condition=RunSteps(num_steps=1), run_cfg=TagRunConfig("fixed_pt"))
            lava.append(sigma.sigma.get().copy())
    finally:
        sigma.stop()
    lava = np.stack(lava, -1)
    assert np.abs(weight @ x).max() > 1 << 32                  # the exact sums would not fit
    np.testing.assert_array_equal(result.v["s"][0].numpy(), lava)


def stock_copy(tmp_path, edit):
    import shutil
    path = tmp_path / "net.net"
    shutil.copy(ROOT / "network.net", path)
    with h5py.File(path, "a") as handle:
        edit(handle["layer"])
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda layer: (layer["7/neuron"].__delitem__("activation"),
                    layer["7/neuron"].create_dataset("activation", data="tanh")),
     "layer 7 (dense): neuron field 'activation' is 'tanh'"),
    (lambda layer: layer["9"].create_dataset("bias", data=np.ones(1, dtype=np.float32)),
     "layer 9 (dense): field 'bias' on a sigma_output layer"),
])
def test_what_netx_would_get_wrong_or_cannot_build_is_one_line(tmp_path, edit, words):
    with pytest.raises(UnsupportedError, match="^" + str(tmp_path / "net.net").replace("/", ".") + ": " +
                       words.replace("(", r"\(").replace(")", r"\)")) as info:
        read_netx(stock_copy(tmp_path, edit))
    assert "\n" not in str(info.value)


def test_tinynet_sdnn_blocks_equal_shipped_ground_truths():
    """lava-dl's test_blocks TestSDNBlocks, as graphs: the Delta input block (vth 20, spike_exp 6, state_exp 6) on
    input_bias x sin over 15 steps gives input.npy; the SigmaDelta conv block (Lava's (out, x, y, in) kernel,
    stride 2) run for one step gives layer1.npy's first step; the Sigma dense block on layer1.npy gives
    layer2.npy at every step."""
    from lava_dl_files import stock_netx_dir
    root = stock_netx_dir() / "gts" / "tinynet_sdnn"
    exps = dict(spike_exp=6, state_exp=6)
    relay = Neuron(threshold=None, graded=True)

    def chain(first, second, proj):
        return Graph([first, second], [proj], timing="pipelined", fixed=True)

    steps = 15
    bias = np.load(root / "input_bias.npy")
    x = (np.repeat(bias[..., None], steps, axis=3) * np.sin(2 * np.pi * np.arange(steps) / steps)).astype(int)
    pops = [Population("in", (3, 16, 16), Neuron(threshold=20, model="delta", **exps), is_input=True,
                       is_output=True)]
    graph = Graph(pops, [], timing="pipelined", fixed=True)
    out = simulate(graph, graph_layout(x), record=("spikes",)).spikes["in"]
    np.testing.assert_array_equal(lava_layout(out), np.load(root / "input.npy"))

    kernel = np.load(root / "layer1_kernel.npy")                      # Lava's (out, x, y, in) convolution kernel
    weight = np.ascontiguousarray(kernel.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])
    conv = chain(Population("x", (3, 16, 16), relay, is_input=True),
                 Population("l1", (24, 6, 6), Neuron(threshold=20, model="sigma_delta", **exps),
                            bias=np.load(root / "layer1_bias.npy").reshape(24, 1, 1), is_output=True),
                 Projection("x->l1", "x", "l1", "conv", weight, stride=(2, 2), num_message_bits=16))
    out = simulate(conv, graph_layout(np.load(root / "input.npy")[..., :1]), record=("spikes",)).spikes["l1"]
    gt = np.load(root / "layer1.npy")
    assert np.count_nonzero(gt[..., 0]) > 100 and not np.any(gt[..., 1:])    # lava-dl runs this block one step
    np.testing.assert_array_equal(lava_layout(out)[..., 0], gt[..., 0])

    # the block's Dense has input_message_bits 0: Lava reads the payloads as spikes (s_in.astype(bool))
    data = gt.reshape(-1, 16) != 0
    dense = chain(Population("x", (864,), relay, is_input=True),
                  Population("l2", (100,), Neuron(threshold=None, model="sigma"), is_output=True),
                  Projection("x->l2", "x", "l2", "dense", np.load(root / "layer2_weight.npy")))
    out = simulate(dense, torch.as_tensor(data[None].astype(np.int64)), record=("spikes",)).spikes["l2"]
    np.testing.assert_array_equal(out[0].numpy(), np.load(root / "layer2.npy"))


def test_snn_sim_records_pilotnet_sdnn_payloads(tmp_path):
    """The command line: snn-sim NET --input X --steps 9 --raw --record DIR (the one-step input cycled, as lava-dl's
    RingBuffer does) writes the readout's payloads (not 0/1 spikes)."""
    import json
    from snnchip.sim.cli import main
    assert main([str(ROOT / "network.net"), "--input", str(ROOT / "input.npy"), "--steps", "9", "--raw",
                 "--record", str(tmp_path / "r"), "--json"]) == 0
    index = json.loads((tmp_path / "r" / "index.json").read_text())["layers"]
    assert index[-1]["model"] == "sigma" and index[-1]["graded"]
    np.testing.assert_array_equal(np.load(tmp_path / "r" / index[-1]["spikes"]), np.load(ROOT / "output.npy"))


def test_written_sdnn_file_reads_back_and_stock_netx_builds_the_same_network(tmp_path):
    """write_netx of the square PilotNet SDNN (require_stock): our reader gives back the same graph, and stock netx
    loading the written file computes what simulate does, every state at every step."""
    from snnchip.formats.netx import write_netx
    from .netx_harness import run_sdnn_netx_on_lava
    graph = read_netx(ROOT / "square_network.net")
    path = tmp_path / "written.net"
    write_netx(graph, path, require_stock=True)
    back = read_netx(path)
    assert [(p.name, p.neuron, p.shape) for p in back.populations] == \
        [(p.name, p.neuron, p.shape) for p in graph.populations]
    steps = 4
    x = np.load(ROOT / "input.npy")[:33]
    result = simulate(back, graph_layout(np.repeat(x, steps, axis=-1)),
                      record=("spikes", "u", "v", "residue", "error"))
    assert compare_with_lava(back, result, run_sdnn_netx_on_lava(path, steps, x)) > 10 ** 4
    cum = read_netx(ROOT / "square_network.net")
    cum.populations[2].neuron.cum_error = True
    with pytest.raises(UnsupportedError, match="cum_error True"):
        write_netx(cum, tmp_path / "cum.net", require_stock=True)
    write_netx(cum, tmp_path / "cum.net")                      # our extension keeps it
    assert read_netx(tmp_path / "cum.net").populations[2].neuron.cum_error
