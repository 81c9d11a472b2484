"""simulate() in float64 equals an independent loop-by-loop reading of graph.py's semantics."""
import numpy as np
import pytest
import torch

from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

from .reference import reference_float


def rich_graph(timing: str, rng) -> Graph:
    """Input -> conv (stride, padding, dilation, groups) -> soft-reset pop; fan-in from a relay with per-neuron
    delays and from the input with an int delay into a dense pop; readout."""
    pops = [
        Population("in", (2, 7, 7), Neuron(threshold=0.4, du=1.0, dv=0.3), is_input=True),
        Population("c1", (4, 4, 4), Neuron(threshold=0.5, du=0.5, dv=0.25, reset="soft", reset_amount=0.5),
                   bias=rng.normal(0, 0.1, (4, 1, 1))),
        Population("relay", (4, 4, 4), Neuron(threshold=None, graded=True)),
        Population("fc", (6,), Neuron(threshold=0.3, du=0.2, dv=0.1, reset="hard", reset_value=-0.1),
                   bias=rng.normal(0, 0.1, (6,))),
        Population("out", (3,), Neuron(threshold=None, du=1.0, dv=0.0, reset="none"), is_output=True),
    ]
    projs = [
        Projection("p_c1", "in", "c1", "conv", rng.normal(0, 0.6, (4, 1, 3, 3)), stride=(2, 2), padding=(1, 2),
                   dilation=(1, 2), groups=2),
        Projection("p_relay", "c1", "relay", "conv", rng.normal(0, 0.6, (4, 4, 1, 1))),
        Projection("p_fc_a", "relay", "fc", "dense", rng.normal(0, 0.3, (6, 64)),
                   delay=rng.integers(0, 3, (4, 4, 4))),
        Projection("p_fc_b", "in", "fc", "dense", rng.normal(0, 0.2, (6, 98)), delay=2),
        Projection("p_out", "fc", "out", "dense", rng.normal(0, 0.5, (3, 6))),
    ]
    return Graph(populations=pops, projections=projs, timing=timing)


@pytest.mark.parametrize("timing", ["ideal", "pipelined"])
def test_float64_matches_reference_every_layer_every_step(timing):
    rng = np.random.default_rng(3)
    graph = rich_graph(timing, rng)
    x = (rng.random((2, 2, 7, 7, 9)) < 0.5).astype(np.float64) * rng.normal(1.0, 0.5, (2, 2, 7, 7, 9))
    res = simulate(graph, torch.from_numpy(x), record=("spikes", "u", "v"))
    ref = reference_float(graph, x)
    total_spikes = 0
    for name, (s, u, v) in ref.items():
        assert res.spikes[name].dtype == torch.float64
        np.testing.assert_array_equal(res.spikes[name].numpy(), s, err_msg=name)
        np.testing.assert_allclose(res.u[name].numpy(), u, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(res.v[name].numpy(), v, rtol=1e-12, atol=1e-12, err_msg=name)
        total_spikes += s.sum()
    assert ref["fc"][0].sum() > 0 and ref["c1"][0].sum() > 0, "test graph must be active"
    np.testing.assert_allclose(res.output.numpy(), ref["out"][2], rtol=1e-12, atol=1e-12)


def test_pipelined_is_ideal_shifted_by_latency_for_a_chain():
    rng = np.random.default_rng(0)
    pops = [Population("in", (5,), Neuron(threshold=0.5), is_input=True),
            Population("h", (7,), Neuron(threshold=0.2, dv=0.5)),
            Population("out", (2,), Neuron(threshold=None), is_output=True)]
    projs = [Projection("a", "in", "h", "dense", rng.normal(0, 1, (7, 5))),
             Projection("b", "h", "out", "dense", rng.normal(0, 1, (2, 7)))]
    ideal = Graph(pops, projs, timing="ideal")
    piped = Graph(pops, projs, timing="pipelined")
    x = torch.from_numpy(rng.random((3, 5, 12)))
    a = simulate(ideal, x).output
    b = simulate(piped, x).output
    assert piped.latency() == 2
    torch.testing.assert_close(b[..., 2:], a[..., :-2], rtol=0, atol=0)
    assert a.abs().sum() > 0


def test_float32_weights_run_in_float32():
    pops = [Population("in", (3,), Neuron(threshold=0.5), is_input=True),
            Population("out", (2,), Neuron(threshold=None), is_output=True)]
    projs = [Projection("a", "in", "out", "dense", np.ones((2, 3), dtype=np.float32))]
    res = simulate(Graph(pops, projs), np.ones((1, 3, 4), dtype=np.float32))
    assert res.output.dtype == torch.float32
