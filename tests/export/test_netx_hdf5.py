"""NetX HDF5 reader and writer, checked against the real files that ship with lava-dl and against stock netx."""
import h5py
import numpy as np
import pytest

from snnchip.cli_util import UserError
from snnchip.deploy.stock import stock_netx_dir
from snnchip.export.netx_hdf5 import read_netx
from snnchip.export.netx_read import netx_dense_exact

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


def test_unsupported_layer_and_neuron_types_name_the_layer():
    with pytest.raises(UserError) as exc:
        read_netx(STOCK / "gts/ntidigits/ntidigits.net")
    assert "layer 5" in one_line(exc) and "'average'" in one_line(exc)
    with pytest.raises(UserError) as exc:
        read_netx(STOCK / "gts/pilotnet_sdnn/network.net")
    assert "layer 0" in one_line(exc) and "SDNN" in one_line(exc)


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
        with pytest.raises(UserError) as exc:
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
    (lambda f: f["layer/1/type"].__setitem__(0, b"pool"), ["layer 1", "'pool'"]),
])
def test_malformed_stock_files_name_layer_and_problem(tmp_path, edit, words):
    with pytest.raises(UserError) as exc:
        read_netx(copy_tiny(tmp_path, edit))
    for word in words:
        assert word in one_line(exc)
