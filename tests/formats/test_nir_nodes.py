"""Node semantics of `read_nir` against torch (linear chains, pools, Scale, Delay, relays, the Euler step) and its
one-line errors; `write_nir`'s refusals. These graphs are built with `nir` itself to reach each node type; the
interoperability checks on real exporters' files are in test_nir_frameworks.py."""
import h5py
import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnchip.errors import FormatError, InputError, UnsupportedError
from snnchip.formats.nir import read_nir, to_nir, write_nir
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

DT = 1e-4
rng = np.random.default_rng(0)


def lif(shape, tau=2e-4, r=None, v_leak=0.0, thr=1.0):
    full = lambda v: np.full(shape, float(v))     # noqa: E731
    return nir.LIF(tau=full(tau), r=full(tau / DT if r is None else r), v_leak=full(v_leak), v_threshold=full(thr),
                   v_reset=full(0.0))


def graph_of(nodes: dict, edges: list, type_check=True):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=type_check)


def readout_values(graph, x):
    """The Output node's readout voltage (instantaneous: v = input + bias each step)."""
    return simulate(read_nir(graph), x).output


def test_linear_chain_equals_torch():
    """Conv2d ('same', dilation 2, groups 2, bias) -> SumPool2d -> Scale -> Conv2d -> Flatten -> Affine, into an
    Output: composed into one projection whose values equal torch's chain at every step."""
    w1, b1 = rng.normal(size=(4, 1, 3, 3)), rng.normal(size=4)
    scale = np.repeat(rng.normal(size=(4, 1, 1)), 4, axis=1).repeat(4, axis=2)        # per channel
    w2, b2 = rng.normal(size=(3, 4, 2, 2)), rng.normal(size=3)
    wa, ba = rng.normal(size=(5, 27)), rng.normal(size=5)
    g = graph_of({
        "x": nir.Input(input_type=np.array([2, 8, 8])),
        "c1": nir.Conv2d(input_shape=(8, 8), weight=w1, stride=1, padding="same", dilation=2, groups=2, bias=b1),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "s": nir.Scale(scale=scale),
        "c2": nir.Conv2d(input_shape=(4, 4), weight=w2, stride=1, padding=0, dilation=1, groups=1, bias=b2),
        "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=wa, bias=ba),
        "out": nir.Output(output_type=np.array([5])),
    }, [("x", "c1"), ("c1", "pool"), ("pool", "s"), ("s", "c2"), ("c2", "flat"), ("flat", "fc"), ("fc", "out")],
        type_check=False)           # nir 1.0.8's type check takes C_in = weight.shape[1], wrong for groups > 1
    graph = read_nir(g)
    assert len(graph.projections) == 1
    x = torch.rand(2, 2, 8, 8, 3, dtype=torch.float64)
    got = simulate(graph, x).output
    for t in range(3):
        y = F.conv2d(x[..., t], torch.tensor(w1), torch.tensor(b1), padding="same", dilation=2, groups=2)
        y = F.avg_pool2d(y, 2) * 4 * torch.tensor(scale)
        y = F.conv2d(y, torch.tensor(w2), torch.tensor(b2)).flatten(1) @ torch.tensor(wa).T + torch.tensor(ba)
        assert torch.allclose(got[..., t], y, atol=1e-10, rtol=0)


def test_padded_conv_after_conv_and_avgpool_with_padding():
    """A padded conv after a conv reads zeros at the border, not the inner conv: the composition falls back to a
    dense matrix; AvgPool2d with padding divides by the whole window (torch's count_include_pad)."""
    w1, w2 = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(2, 3, 3, 3))
    g = graph_of({
        "x": nir.Input(input_type=np.array([2, 6, 6])),
        "c1": nir.Conv2d(input_shape=(6, 6), weight=w1, stride=1, padding=1, dilation=1, groups=1, bias=np.ones(3)),
        "c2": nir.Conv2d(input_shape=(6, 6), weight=w2, stride=2, padding=1, dilation=1, groups=1, bias=np.zeros(2)),
        "p": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([1, 1]), padding=np.array([1, 1])),
        "out": nir.Output(output_type=np.array([2, 3, 3])),
    }, [("x", "c1"), ("c1", "c2"), ("c2", "p"), ("p", "out")])
    x = torch.rand(2, 2, 6, 6, 2, dtype=torch.float64)
    got = readout_values(g, x)
    y = F.conv2d(x[..., 0], torch.tensor(w1), torch.ones(3, dtype=torch.float64), padding=1)
    y = F.avg_pool2d(F.conv2d(y, torch.tensor(w2), stride=2, padding=1), 3, 1, padding=1)
    assert torch.allclose(got[..., 0], y, atol=1e-10, rtol=0)


def test_summed_node_that_fans_out_becomes_a_relay():
    """Two convs summed in an Affine-free Scale node feeding two LIFs: one graded relay computes the sum once; the
    LIFs follow NIR's forward-Euler LIF (checked by a plain loop)."""
    wa, wb = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(3, 2, 1, 1))
    g = graph_of({
        "x": nir.Input(input_type=np.array([2, 5, 5])),
        "a": nir.Conv2d(input_shape=(5, 5), weight=wa, stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(3)),
        "b": nir.Conv2d(input_shape=(5, 5), weight=wb, stride=1, padding=0, dilation=1, groups=1, bias=np.ones(3)),
        "sum": nir.Scale(scale=np.full((3, 5, 5), 2.0)),
        "l1": lif((3, 5, 5), tau=2e-4, r=1.0, thr=0.5),       # SpikingJelly's decay_input: gain dt / tau
        "l2": lif((3, 5, 5), tau=4e-4, v_leak=0.2),
        "o1": nir.Output(output_type=np.array([3, 5, 5])),
        "o2": nir.Output(output_type=np.array([3, 5, 5])),
    }, [("x", "a"), ("x", "b"), ("a", "sum"), ("b", "sum"), ("sum", "l1"), ("sum", "l2"), ("l1", "o1"),
        ("l2", "o2")])
    graph = read_nir(g)
    assert graph.population("sum").neuron.graded
    x = torch.rand(2, 2, 5, 5, 20, dtype=torch.float64)
    res = simulate(graph, x, record=("l1", "l2"))
    for name, tau, r, v_leak, thr in (("l1", 2e-4, 1.0, 0.0, 0.5), ("l2", 4e-4, 4.0, 0.2, 1.0)):
        v = torch.zeros(2, 3, 5, 5, dtype=torch.float64)
        for t in range(20):
            i = 2 * (F.conv2d(x[..., t], torch.tensor(wa), padding=1) + F.conv2d(x[..., t], torch.tensor(wb)) + 1)
            v = v + DT / tau * (v_leak - v + r * i)
            s = (v > thr).double()
            v = v * (1 - s)
            assert torch.equal(res.spikes[name][..., t], s), (name, t)
        assert res.spikes[name].sum() > 0


def test_delays():
    """Delay nodes: a uniform delay on every term, a per-neuron delay on the source's neurons."""
    d = np.array([0, 1, 3, 2]) * DT
    g = graph_of({"x": nir.Input(input_type=np.array([4])), "d": nir.Delay(delay=d),
                  "o": nir.Output(output_type=np.array([4]))}, [("x", "d"), ("d", "o")])
    x = torch.rand(1, 4, 8, dtype=torch.float64)
    got = readout_values(g, x)
    for i, k in enumerate((0, 1, 3, 2)):
        assert torch.equal(got[0, i, k:], x[0, i, :8 - k]) and not got[0, i, :k].any()
    g.nodes["d"] = nir.Delay(delay=np.full(4, 1.5 * DT))
    with pytest.raises(UnsupportedError, match="Delay"):
        read_nir(g)


def test_type_check_and_scalar_parameters(tmp_path):
    """A LIF with scalar parameters after a conv fails nir's type check (the edge is named); read without it, the
    shapes are inferred and the parameters broadcast."""
    g = graph_of({"x": nir.Input(input_type=np.array([1, 4, 4])),
                  "c": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                                  groups=1, bias=np.zeros(2)),
                  "l": nir.LIF(tau=np.array([2e-4]), r=np.array([2.0]), v_leak=np.array([0.0]),
                               v_threshold=np.array([1.0]), v_reset=np.array([0.0])),
                  "o": nir.Output(output_type=np.array([2, 4, 4]))},
                 [("x", "c"), ("c", "l"), ("l", "o")], type_check=False)
    path = tmp_path / "scalar.nir"
    nir.write(path, g)
    with pytest.raises(FormatError) as exc:
        read_nir(path)
    assert "c.output" in str(exc.value) and "no-type-check" in str(exc.value) and "\n" not in str(exc.value)
    graph = read_nir(path, type_check=False)
    assert graph.population("l").shape == (2, 4, 4)


def test_bad_files_say_what_and_where(tmp_path):
    missing = tmp_path / "none.nir"
    with pytest.raises(InputError, match="does not exist"):
        read_nir(missing)
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(FormatError, match="not an HDF5"):
        read_nir(junk)
    g = graph_of({"x": nir.Input(input_type=np.array([3])), "l": lif((3,)),
                  "o": nir.Output(output_type=np.array([3]))}, [("x", "l"), ("l", "o")])
    path = tmp_path / "bad.nir"
    nir.write(path, g)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/l/v_threshold"]
        f["node/nodes/l/v_threshold"] = np.ones(5)
    with pytest.raises(FormatError) as exc:
        read_nir(path)
    assert "node 'l' (LIF)" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("change,match", [
    (lambda n: n.update(l=lif((3,), tau=0.5e-4)), "shorter than dt"),
    (lambda n: n.update(l=nir.LIF(tau=np.full(3, 2e-4), r=np.full(3, 2.0), v_leak=np.zeros(3),
                                  v_threshold=np.array([1.0, 2.0, 1.0]), v_reset=np.zeros(3))), "v_threshold varies"),
    (lambda n: n.update(l=nir.LIF(tau=np.full(3, np.inf), r=np.full(3, np.inf), v_leak=np.zeros(3),
                                  v_threshold=np.ones(3), v_reset=np.zeros(3))), "infinite tau"),
    (lambda n: n.update(fc=nir.Affine(weight=np.eye(3), bias=np.ones(3)),
                        l=nir.CubaLIF(tau_syn=np.full(3, 2e-4), tau_mem=np.full(3, 2e-4), r=np.full(3, 2.0),
                                      v_leak=np.zeros(3), v_threshold=np.ones(3), w_in=np.full(3, 2.0))),
     "synaptic current"),
    (lambda n: n.update(fc=nir.Conv1d(input_shape=3, weight=np.ones((1, 1, 1)), stride=1, padding=0, dilation=1,
                                      groups=1, bias=np.zeros(1))), "'fc' \\(Conv1d\\) is not supported"),
])
def test_undeployable_nodes_are_named(change, match):
    nodes = {"x": nir.Input(input_type=np.array([3])), "fc": nir.Linear(weight=np.eye(3)), "l": lif((3,)),
             "o": nir.Output(output_type=np.array([3]))}
    change(nodes)
    g = graph_of(nodes, [("x", "fc"), ("fc", "l"), ("l", "o")], type_check=False)
    with pytest.raises(UnsupportedError, match=match) as exc:
        read_nir(g, type_check=False)
    assert "\n" not in str(exc.value)


def small_graph(**changes) -> Graph:
    g = Graph(populations=[
        Population("in", (4,), Neuron(threshold=0.0, graded=True), is_input=True),
        Population("a", (3,), Neuron(threshold=0.5, du=1.0, dv=0.25), bias=np.array([0.1, 0.0, -0.1])),
        Population("out", (2,), Neuron(threshold=None, du=1.0, dv=0.0, reset="none"), is_output=True)],
        projections=[Projection("in->a", "in", "a", "dense", rng.normal(size=(3, 4))),
                     Projection("a->out", "a", "out", "dense", rng.normal(size=(2, 3)))])
    for key, value in changes.items():
        key(g, value)
    return g


def test_writer_refusals():
    soft = small_graph()
    soft.populations[1].neuron = Neuron(threshold=0.5, du=1.0, dv=0.25, reset="soft", reset_amount=0.5)
    with pytest.raises(UnsupportedError, match="soft reset"):
        to_nir(soft)
    fixed = small_graph()
    fixed.fixed = True
    with pytest.raises(UnsupportedError, match="float format"):
        to_nir(fixed)
    piped = small_graph()
    piped.timing = "pipelined"
    with pytest.raises(UnsupportedError, match="ideal timing"):
        to_nir(piped)
    synapses = small_graph()
    synapses.projections[0].delay = np.ones((3, 4), dtype=int)
    with pytest.raises(UnsupportedError, match="per-synapse delays"):
        to_nir(synapses)
    back = small_graph()
    back.projections.append(Projection("a->a", "a", "a", "dense", np.eye(3), delay=1))
    with pytest.raises(UnsupportedError, match="recurrent"):
        to_nir(back)


def test_writer_delays_and_biases_round_trip(tmp_path):
    g = small_graph()
    g.projections[0].delay = np.array([0, 2, 1, 0])
    write_nir(g, tmp_path / "g.nir")
    back = read_nir(tmp_path / "g.nir")
    assert np.array_equal(back.projections[0].delay, [0, 2, 1, 0])
    x = torch.rand(2, 4, 12, dtype=torch.float64) * 3
    a, b = simulate(g, x, record=("a",)), simulate(back, x, record=("a",))
    assert a.spikes["a"].sum() > 0 and torch.equal(a.spikes["a"], b.spikes["a"])
    assert torch.allclose(a.output, b.output, atol=1e-12, rtol=0)
