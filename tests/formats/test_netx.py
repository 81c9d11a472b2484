"""NetX HDF5 reader and writer, checked against the real files that ship with lava-dl and against stock netx."""
import shutil

import h5py
import numpy as np
import pytest

from snnchip.errors import InputError
from lava_dl_files import stock_netx_dir
from snnchip.formats.netx import read_netx
from snnchip.loihi import netx_dense_exact

STOCK = stock_netx_dir()


def lava_effective_dense(synapse) -> np.ndarray:
    """The integer weights a netx Dense/DelayDense synapse really applies: Lava's clip and truncation of the
    optimised weights, then its weight exponent (exact here: every weight is a multiple of 2**-weight_exp)."""
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
    params = synapse.proc_params
    weights = np.asarray(params["weights"])
    mode = params.get("sign_mode") or determine_sign_mode(weights)
    weights = truncate_weights(clip_weights(weights, mode, num_bits=8), mode, params.get("num_weight_bits", 8))
    exp = params.get("weight_exp", 0)
    assert np.all(weights % (1 << max(-exp, 0)) == 0)
    return weights * 2.0 ** exp


def lava_neuron(block) -> dict:
    n = block.neuron
    return {key: np.asarray(getattr(n, key).init) for key in ("du", "dv", "vth", "bias_mant", "bias_exp")}


def check_population_against_netx(pop, block):
    lava = lava_neuron(block)
    assert pop.neuron.du == lava["du"] and pop.neuron.dv == lava["dv"] and pop.neuron.threshold == lava["vth"]
    assert pop.neuron.reset == "hard" and pop.neuron.reset_value == 0
    mant = np.broadcast_to(lava["bias_mant"], block.shape)         # Lava's (x, y, f) or (F,)
    ours = np.zeros(pop.shape, dtype=np.int64) if pop.bias is None else np.broadcast_to(pop.bias, pop.shape)
    if len(pop.shape) == 3:
        ours = ours.transpose(2, 1, 0)
    np.testing.assert_array_equal(ours, mant)
    if pop.bias is not None:
        assert pop.bias_exp == lava["bias_exp"] == 6


@pytest.fixture(scope="module")
def netx():
    pytest.importorskip("lava.lib.dl.netx")
    from lava.lib.dl import netx
    return netx


@pytest.mark.parametrize("name", ["tiny.net", "gts/pilotnet_lif/network.net"])
def test_stock_conv_networks_match_what_netx_builds(netx, name):
    """Shapes, conv weights, strides, paddings, neurons and biases equal the Lava processes netx builds."""
    graph = read_netx(STOCK / name)
    net = netx.hdf5.Network(net_config=str(STOCK / name))
    assert graph.fixed and graph.timing == "pipelined"
    assert [p.is_input for p in graph.populations] == [True] + [False] * (len(net) - 1)
    assert graph.outputs == [graph.populations[-1]]
    assert len(graph.populations) == len(net.layers)
    for pop, block in zip(graph.populations, net.layers):
        assert tuple(block.shape) == (pop.shape[::-1] if len(pop.shape) == 3 else pop.shape)
        check_population_against_netx(pop, block)
        assert graph.meta["netx"]["block_index"][pop.name] == net.layers.index(block)
    for proj, block in zip(graph.projections, net.layers[1:]):
        assert graph.lag(proj) == 1
        syn = block.synapse
        if proj.kind == "conv":
            lava_w = np.asarray(syn.weight.init)                          # [C_out, kx, ky, C_in], flipped
            np.testing.assert_array_equal(proj.weight, lava_w[:, ::-1, ::-1, :].transpose(0, 3, 2, 1))
            assert proj.stride == tuple(np.asarray(syn.stride.init)[::-1])
            assert proj.padding == tuple(np.asarray(syn.padding.init)[::-1])
            assert proj.groups == int(np.asarray(syn.groups.init).reshape(-1)[0])
            assert int(np.asarray(syn.weight_exp.init).reshape(-1)[0]) == proj.weight_exp == 0
        else:
            np.testing.assert_array_equal(proj.weight * 2.0 ** proj.weight_exp, lava_effective_dense(syn))
    assert graph.meta["depth"] == {p.name: i for i, p in enumerate(graph.populations)}


def test_stock_mnist_dense_and_default_neuron(netx):
    """mnist.net: dense layers, and a last layer without a neuron group gets netx's default integrator."""
    graph = read_netx(STOCK / "mnist.net")
    net = netx.hdf5.Network(net_config=str(STOCK / "mnist.net"))
    assert [p.shape for p in graph.populations] == [(784,), (512,), (512,), (10,)]
    for pop, block in zip(graph.populations, net.layers):
        check_population_against_netx(pop, block)
    for proj, block in zip(graph.projections, net.layers[1:]):
        np.testing.assert_array_equal(proj.weight, lava_effective_dense(block.synapse))
    last = graph.populations[-1].neuron
    assert (last.du, last.dv, last.threshold) == (-1, 4096, 1 << 17)
    assert graph.meta["netx"]["input_transform"] == {"weight": 76.0, "bias": 64.0}


def test_stock_ntidigits_axonal_delays_match_delay_dense(netx):
    """ntidigits.net's axonal delays become per-synapse delays equal to netx's DelayDense, and its input layer
    (no neuron) is a graded relay."""
    graph = read_netx(STOCK / "gts/ntidigits/ntidigits.net", num_layers=5)
    net = netx.hdf5.Network(net_config=str(STOCK / "gts/ntidigits/ntidigits.net"), num_layers=5)
    relay = graph.inputs[0]
    assert relay.shape == (1, 1, 64) and relay.neuron.graded and relay.neuron.threshold is None
    assert len(graph.populations) == len(net.layers) + 1          # netx builds no block for the input
    for pop, proj, block in zip(graph.populations[1:], graph.projections, net.layers):
        check_population_against_netx(pop, block)
        np.testing.assert_array_equal(proj.weight, lava_effective_dense(block.synapse))
        if hasattr(block.synapse, "delays"):
            np.testing.assert_array_equal(proj.delay, np.asarray(block.synapse.delays.init))
            assert proj.delay.shape == proj.weight.shape and proj.delay.max() > 0
        else:
            assert proj.delay == 0


def test_netx_dense_exact_agrees_with_lavas_weight_pipeline(netx):
    """The reader's test of which dense weights netx keeps exactly agrees with netx's optimiser + Lava's clip
    and truncation, on random integer matrices around every boundary."""
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights
    rng = np.random.default_rng(0)
    cases = [(-256, 254), (-256, 255), (-257, 254), (0, 255), (0, 256), (-255, -1), (-256, -1), (-128, 127),
             (-20, 20), (1, 9), (-9, -1)]
    for lo, hi in cases:
        for _ in range(5):
            w = rng.integers(lo, hi + 1, size=(6, 7))
            w.flat[:2] = (lo, hi)
            w = w * rng.choice([1, 1, 2, 4])
            if not (w.min() >= -512 and w.max() <= 512):
                continue
            wq, bits, exp, _ = optimize_weight_bits(w.copy())
            mode = determine_sign_mode(wq)       # what Lava's Dense model uses (netx's own mode is not passed)
            effective = truncate_weights(clip_weights(wq, mode, num_bits=8), mode, bits) * 2.0 ** exp
            assert netx_dense_exact(w) == np.array_equal(effective, w), (lo, hi, w.min(), w.max())


# -- bad input -----------------------------------------------------------------------------------------------

def one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_unsupported_layer_and_neuron_types_name_the_layer(tmp_path):
    path = tmp_path / "concat.net"
    shutil.copy(STOCK / "tiny.net", path)
    with h5py.File(path, "a") as handle:           # slayer writes no concat layer; netx refuses it too
        handle["layer/2/type"][0] = b"concat"
    with pytest.raises(InputError) as exc:
        read_netx(path)
    assert "layer 2" in one_line(exc) and "'concat'" in one_line(exc)


def test_corrupt_truncated_foreign_and_missing_files(tmp_path):
    data = (STOCK / "tiny.net").read_bytes()
    cases = {}
    cases["truncated"] = tmp_path / "truncated.net"
    cases["truncated"].write_bytes(data[: len(data) // 2])
    cases["corrupt"] = tmp_path / "corrupt.net"
    corrupt = bytearray(data)
    corrupt[1000:4000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    cases["corrupt"].write_bytes(bytes(corrupt))
    cases["garbage"] = tmp_path / "garbage.net"
    cases["garbage"].write_bytes(b"not an hdf5 file at all" * 50)
    cases["foreign"] = tmp_path / "foreign.h5"
    with h5py.File(cases["foreign"], "w") as f:
        f["images"] = np.zeros((2, 3))
    cases["missing"] = tmp_path / "missing.net"
    for what, path in cases.items():
        with pytest.raises(InputError) as exc:
            read_netx(path)
        assert str(path) in one_line(exc), what


def copy_tiny(tmp_path, edit) -> str:
    path = tmp_path / "edited.net"
    path.write_bytes((STOCK / "tiny.net").read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda f: f["layer/1/weight"].__setitem__((0, 0, 0, 0, 0), 0.5), ["layer 1", "non-integer"]),
    (lambda f: f["layer/2/shape"].__setitem__(0, 35), ["layer 2", "differs"]),
    (lambda f: f["layer/2/neuron/type"].__setitem__((), b"RF"), ["layer 2", "RF"]),
    (lambda f: f.move("layer/2", "layer/7"), ["layer names"]),
    (lambda f: f["layer/1/type"].__setitem__(0, b"pool"), ["layer 1 (pool)", "pool weight has shape"]),
])
def test_malformed_stock_files_name_layer_and_problem(tmp_path, edit, words):
    with pytest.raises(InputError) as exc:
        read_netx(copy_tiny(tmp_path, edit))
    for word in words:
        assert word in one_line(exc)


# -- writer ---------------------------------------------------------------------------------------------------

def assert_same_graph(a, b):
    """Every field of every population and projection equal (arrays by value, shape and dtype), and the meta."""
    assert (a.timing, a.fixed) == (b.timing, b.fixed)
    assert len(a.populations) == len(b.populations) and len(a.projections) == len(b.projections)
    for p, q in zip(a.populations, b.populations):
        assert (p.name, tuple(p.shape), p.neuron, p.bias_exp, p.is_input, p.is_output, p.scale) == \
               (q.name, tuple(q.shape), q.neuron, q.bias_exp, q.is_input, q.is_output, q.scale), p.name
        assert (p.bias is None) == (q.bias is None), p.name
        if p.bias is not None:
            assert p.bias.dtype == q.bias.dtype and np.array_equal(p.bias, q.bias), p.name
    for p, q in zip(a.projections, b.projections):
        for key in ("name", "source", "target", "kind", "stride", "padding", "dilation", "groups", "weight_exp",
                    "num_message_bits"):
            assert getattr(p, key) == getattr(q, key), (p.name, key)
        assert p.weight.dtype == q.weight.dtype and np.array_equal(p.weight, q.weight), p.name
        assert np.array_equal(p.delay, q.delay) and np.ndim(p.delay) == np.ndim(q.delay), p.name
    assert_same_meta(a.meta, b.meta)


def assert_same_meta(a, b):
    assert type(a) is type(b) or isinstance(a, (int, float)) and isinstance(b, (int, float)), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_meta(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_meta(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    else:
        assert a == b


def sequential_fixed_graph(seed=0):
    """A small stock-compatible fixed graph: LIF input -> conv -> conv -> (flatten) dense -> dense readout."""
    from snnchip.graph import Graph, Neuron, Population, Projection
    rng = np.random.default_rng(seed)

    def lif(vth, du=4095, dv=1024):
        return Neuron(threshold=vth, du=du, dv=dv)
    pops = [Population("in", (2, 9, 8), lif(5), is_input=True),
            Population("c1", (6, 5, 3), lif(40, du=3000, dv=2048), bias=rng.integers(-20, 40, (6, 1, 1)),
                       bias_exp=6),
            Population("c2", (5, 5, 3), lif(30), bias=rng.integers(-5, 30, (5, 5, 3)), bias_exp=6),
            Population("d1", (12,), lif(25, dv=512), bias=rng.integers(-5, 20, 12), bias_exp=6),
            Population("out", (3,), Neuron(threshold=None, du=4095, dv=0), is_output=True)]
    projs = [Projection("in->c1", "in", "c1", "conv", rng.integers(-60, 80, (6, 2, 3, 3)), stride=(2, 2),
                        padding=(1, 0)),
             Projection("c1->c2", "c1", "c2", "conv", rng.integers(-40, 60, (5, 6, 3, 3)), padding=(1, 1)),
             Projection("c2->d1", "c2", "d1", "dense", rng.integers(-30, 40, (12, 75))),
             Projection("d1->out", "d1", "out", "dense", rng.integers(-100, 120, (3, 12)),
                        delay=rng.integers(0, 3, (3, 12)))]
    graph = Graph(pops, projs, timing="pipelined", fixed=True,
                  meta={"depth": {p.name: i for i, p in enumerate(pops)}, "T": 12, "scales": np.arange(3.0),
                        "pair": (1, 2)})
    graph.validate()
    return graph


def test_round_trip_of_stock_files_is_identical(tmp_path):
    from snnchip.formats.netx import write_netx
    for name, kwargs in (("tiny.net", {}), ("gts/pilotnet_lif/network.net", {}),
                         ("gts/ntidigits/ntidigits.net", {"num_layers": 5})):
        graph = read_netx(STOCK / name, **kwargs)
        write_netx(graph, tmp_path / "copy.net")
        assert_same_graph(graph, read_netx(tmp_path / "copy.net"))


def test_written_sequential_file_loads_in_stock_netx_with_the_same_parameters(tmp_path, netx):
    from snnchip.formats.netx import write_netx
    graph = sequential_fixed_graph()
    path = tmp_path / "seq.net"
    write_netx(graph, path, require_stock=True)
    assert_same_graph(graph, read_netx(path))
    with h5py.File(path) as f:
        assert [layer_type_of(f["layer"][str(i)]) for i in range(len(f["layer"]))] == \
            ["input", "conv", "conv", "flatten", "dense", "dense"]
    net = netx.hdf5.Network(net_config=str(path))
    assert [type(b).__name__ for b in net.layers] == ["Input", "Conv", "Conv", "Dense", "Dense"]
    stock = read_netx(path, num_layers=99)           # the file read as netx reads it (no extension)
    for pop, block in zip(stock.populations, net.layers):
        check_population_against_netx(pop, block)
    for proj, mine, block in zip(stock.projections, graph.projections, net.layers[1:]):
        assert np.array_equal(proj.weight, mine.weight) and np.array_equal(proj.delay, mine.delay)
        if proj.kind == "dense":
            np.testing.assert_array_equal(proj.weight, lava_effective_dense(block.synapse))
    assert stock.populations[-1].neuron.threshold == 1 << 17       # never fires, as netx's default readout


def layer_type_of(group):
    from snnchip.formats.netx_read import layer_type
    return layer_type(group)


def test_residual_graphs_round_trip_float_and_fixed(tmp_path):
    """A lowered MS-ResNet (fan-in, delays after pipelining) round-trips exactly, float and fixed."""
    import torch
    from snnchip.export.lower import lower
    from snnchip.formats.netx import write_netx
    from snnchip.export.quantize import quantize
    from snnchip.export.timing import pipeline
    from snnchip.train.models import build_model, model_config
    torch.manual_seed(0)
    model = build_model(model_config("ms_resnet8", widths=(4, 4, 8), in_channels=2, num_classes=3,
                                     input_size=(8, 8), T=4)).eval()
    for shortcut in ("composed", "relay"):
        float_graph = pipeline(lower(model, shortcut=shortcut))
        fixed_graph, _ = quantize(float_graph)
        assert any(len(float_graph.into(p.name)) > 1 for p in float_graph.populations)
        for graph in (float_graph, fixed_graph):
            write_netx(graph, tmp_path / "res.net")
            assert_same_graph(graph, read_netx(tmp_path / "res.net"))
        with pytest.raises(InputError) as exc:
            write_netx(fixed_graph, tmp_path / "stock.net", require_stock=True)
        assert "stock netx" in one_line(exc) and not (tmp_path / "stock.net").exists()


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    from snnchip.formats.netx import write_netx
    graph = sequential_fixed_graph()
    path = tmp_path / "net.net"
    path.write_bytes(b"old")
    graph.meta["bad"] = object()
    with pytest.raises(InputError) as exc:
        write_netx(graph, path)
    assert "meta" in one_line(exc)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["net.net"]
    del graph.meta["bad"]
    write_netx(graph, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.net"]
    assert_same_graph(graph, read_netx(path))


def test_written_sequential_file_on_lava_matches_simulate_at_every_step(tmp_path, netx):
    """Issue 4 done-when: our sequential export, loaded by stock netx and run on Lava's fixed-point CPU
    simulator, gives the spikes of `simulate(read_netx(path))` in every layer at every step."""
    import torch
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io
    from snnchip.deploy.runconfig import TagRunConfig
    from snnchip.formats.netx import write_netx
    from snnchip.sim import simulate
    path = tmp_path / "seq.net"
    write_netx(sequential_fixed_graph(seed=3), path, require_stock=True)
    graph = read_netx(path)
    steps = 12
    x = np.random.default_rng(4).integers(0, 8, (1, *graph.inputs[0].shape, steps))
    result = simulate(graph, torch.as_tensor(x), record=("spikes",))

    net = netx.hdf5.Network(net_config=str(path))
    source = io.source.RingBuffer(data=x[0].transpose(2, 1, 0, 3))          # Lava's (x, y, f, t)
    source.s_out.connect(net.in_layer.neuron.a_in)
    sinks = []
    for block in net.layers:
        sinks.append(io.sink.RingBuffer(shape=block.out.shape, buffer=steps))
        block.out.connect(sinks[-1].a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=TagRunConfig("fixed_pt"))
        lava = [sink.data.get() for sink in sinks]
    finally:
        net.stop()
    fired = 0
    for pop, spikes in zip(graph.populations, lava):
        ours = result.spikes[pop.name][0].numpy()
        if ours.ndim == 4:
            ours = ours.transpose(2, 1, 0, 3)
        np.testing.assert_array_equal(ours, spikes, err_msg=pop.name)
        fired += int(spikes.sum())
    assert fired > 50 and int(lava[-2].sum()) > 0           # real activity reaches the last spiking layer


def test_stock_ntidigits_read_and_simulated_matches_lava_at_every_step(netx):
    """The reader's axonal-delay mapping is Lava's: ntidigits.net (delays up to 62) through read_netx and
    simulate spikes exactly as stock netx on Lava's fixed-point CPU simulator, every layer, every step."""
    import torch
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io
    from snnchip.deploy.runconfig import TagRunConfig
    from snnchip.sim import simulate
    root, steps = STOCK / "gts/ntidigits", 160
    spikes_in = np.load(root / "input.npy")[:, :steps].astype(np.int64)          # [64, t], recorded spikes
    graph = read_netx(root / "ntidigits.net", num_layers=5)
    result = simulate(graph, torch.as_tensor(spikes_in.reshape(1, 1, 1, 64, steps)), record=("spikes",))
    net = netx.hdf5.Network(net_config=str(root / "ntidigits.net"), num_layers=5)
    source = io.source.RingBuffer(data=spikes_in)
    source.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sinks.append(io.sink.RingBuffer(shape=block.out.shape, buffer=steps))
        block.out.connect(sinks[-1].a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=TagRunConfig("fixed_pt"))
        lava = [sink.data.get() for sink in sinks]
    finally:
        net.stop()
    for pop, spikes in zip(graph.populations[1:], lava):
        assert spikes.sum() > 30
        np.testing.assert_array_equal(result.spikes[pop.name][0].numpy(), spikes, err_msg=pop.name)


def slayer_recurrent_file(path):
    """A file written by lava-dl's own slayer export: dense (axonal delays) -> recurrent dense -> dense, with no
    input layer (netx feeds the network's input into the first synapse)."""
    import torch
    from lava.lib.dl import slayer
    params = {"threshold": 0.4, "current_decay": 0.5, "voltage_decay": 0.15, "tau_grad": 1.0, "scale_grad": 1.0,
              "requires_grad": False}
    torch.manual_seed(0)
    blocks = [slayer.block.cuba.Dense(params, 6, 8, weight_scale=2, delay=True),
              slayer.block.cuba.Recurrent(params, 8, 5, weight_scale=2),
              slayer.block.cuba.Dense(params, 5, 3, weight_scale=2)]
    with torch.no_grad():                     # slayer sizes neurons and delays on the first forward pass
        x = torch.ones(1, 6, 2)
        for block in blocks:
            x = block(x)
    delay = blocks[0].delay.delay
    delay.data = (torch.arange(delay.numel(), dtype=delay.dtype) % 4).reshape(delay.shape)
    with h5py.File(path, "w") as handle:
        layer = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))


def test_slayer_exported_recurrent_network_matches_netx_and_lava(tmp_path, netx):
    """dense_rec and per-target delays as slayer writes them: parameters equal what netx builds, and simulate
    spikes as stock netx on Lava's fixed-point CPU simulator at every step."""
    import torch
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io
    from snnchip.deploy.runconfig import TagRunConfig
    from snnchip.sim import simulate
    path = tmp_path / "rec.net"
    slayer_recurrent_file(path)
    graph = read_netx(path)
    assert graph.inputs[0].shape == (6,) and graph.inputs[0].neuron.graded
    assert [(q.source, q.target) for q in graph.projections] == [
        ("input", "layer0"), ("layer0", "layer1"), ("layer1", "layer1"), ("layer1", "layer2")]
    assert graph.projections[0].delay.shape == (8, 6)
    net = netx.hdf5.Network(net_config=str(path))
    for pop, block in zip(graph.populations[1:], net.layers):
        check_population_against_netx(pop, block)
    np.testing.assert_array_equal(graph.projections[2].weight * 2.0 ** graph.projections[2].weight_exp,
                                  lava_effective_dense(net.layers[1].synapse_rec))

    steps = 30
    spikes_in = (np.random.default_rng(5).random((6, steps)) < 0.6).astype(np.int64)
    result = simulate(graph, torch.as_tensor(spikes_in[None]), record=("spikes",))
    source = io.source.RingBuffer(data=spikes_in)
    source.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sinks.append(io.sink.RingBuffer(shape=block.out.shape, buffer=steps))
        block.out.connect(sinks[-1].a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=TagRunConfig("fixed_pt"))
        lava = [sink.data.get() for sink in sinks]
    finally:
        net.stop()
    for pop, spikes in zip(graph.populations[1:], lava):
        assert spikes.sum() > 0, pop.name
        np.testing.assert_array_equal(result.spikes[pop.name][0].numpy(), spikes, err_msg=pop.name)


@pytest.mark.parametrize("edit, words", [
    (lambda g: setattr(g.projections[1], "weight_exp", 2), "weight_exp 2"),
    (lambda g: setattr(g.projections[3], "delay", 63), "delays above"),
    (lambda g: g.projections[2].weight.flat.__setitem__(0, 255), "8-bit optimiser"),   # fits Lava, not netx
    (lambda g: setattr(g.projections[0], "delay", 1), "conv with delays"),
    (lambda g: setattr(g.populations[2], "bias_exp", 3), "bias_exp 3"),
    (lambda g: setattr(g.populations[1].neuron, "reset", "soft"), "hard-reset"),
    (lambda g: g.projections.append(g.projections[0].__class__("in->d1", "in", "d1", "dense",
                                                                np.ones((12, 144), dtype=np.int64))),
     "exactly one projection"),
    (lambda g: setattr(g, "timing", "ideal"), "not pipelined"),
])
def test_stock_incompatibilities_name_each_problem(tmp_path, edit, words):
    from snnchip.formats.netx import stock_incompatibilities, write_netx
    graph = sequential_fixed_graph()
    assert stock_incompatibilities(graph) == []
    edit(graph)
    assert any(words in reason for reason in stock_incompatibilities(graph)), stock_incompatibilities(graph)
    with pytest.raises(InputError):
        write_netx(graph, tmp_path / "x.net", require_stock=True)
    write_netx(graph, tmp_path / "x.net")                  # our own reader still gets the whole graph back
    assert_same_graph(graph, read_netx(tmp_path / "x.net"))
