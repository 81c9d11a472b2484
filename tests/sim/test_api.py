"""simulate()'s arguments: shapes, records, several inputs, resets and one-line errors."""
import numpy as np
import pytest
import torch

from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate


def two_input_graph(fixed=False):
    th, dv = (1, 2048) if fixed else (0.5, 0.5)     # fixed: Loihi integers (mantissa, 1/4096)
    pops = [Population("a", (2, 4, 4), Neuron(threshold=th), is_input=True),
            Population("b", (3,), Neuron(threshold=th), is_input=True),
            Population("h", (5,), Neuron(threshold=2 * th, dv=dv)),
            Population("out", (2,), Neuron(threshold=None), is_output=True)]
    w = (lambda *s: np.ones(s)) if fixed else (lambda *s: np.full(s, 0.7))
    # both inputs reach h with the same lag (an aligned pipeline: the per-depth reset separates samples)
    projs = [Projection("ah", "a", "h", "dense", w(5, 32), delay=2),
             Projection("bh", "b", "h", "dense", w(5, 3), delay=2),
             Projection("ho", "h", "out", "dense", w(2, 5))]
    return Graph(pops, projs, timing="pipelined")


def test_dict_inputs_records_by_name_and_quantity():
    g = two_input_graph()
    x = {"a": torch.ones(2, 2, 4, 4, 6), "b": torch.zeros(2, 3, 6)}
    res = simulate(g, x, record=("h",))
    assert set(res.spikes) == {"h"} and not res.u and res.spikes["h"].shape == (2, 5, 6)
    res = simulate(g, x, record=("u", "out"))
    assert set(res.u) == {"out"} and not res.spikes
    assert res.output.shape == (2, 2, 6) and res.output.abs().sum() > 0
    assert g.depths() == {"a": 0, "b": 0, "h": 3, "out": 4}


@pytest.mark.parametrize("bad,message", [
    (lambda g: simulate(g, torch.ones(2, 2, 4, 4, 6)), "input populations"),
    (lambda g: simulate(g, {"a": torch.ones(2, 2, 4, 5, 6), "b": torch.zeros(2, 3, 6)}), "expected [N, 2, 4, 4, T]"),
    (lambda g: simulate(g, {"a": torch.ones(2, 2, 4, 4, 6), "b": torch.zeros(3, 3, 6)}), "N=3"),
    (lambda g: simulate(g, {"a": torch.ones(1, 2, 4, 4, 2), "b": torch.zeros(1, 3, 2)}, record=("nope",)),
     "no population named 'nope'"),
    (lambda g: simulate(g, {"a": torch.ones(1, 2, 4, 4, 2), "b": torch.zeros(1, 3, 2)}, reset_interval=0),
     "reset_interval"),
    (lambda g: simulate(g, {"a": torch.full((1, 2, 4, 4, 2), float("nan")), "b": torch.zeros(1, 3, 2)}),
     "input 'a' holds NaN or infinite values"),
    (lambda g: simulate(g, {"a": torch.ones(1, 2, 4, 4, 2), "b": torch.zeros(1, 3, 2)}, engine="layers"),
     "engine 'layers' needs a fixed-point graph"),
    (lambda g: simulate(g, {"a": torch.ones(1, 2, 4, 4, 2), "b": torch.zeros(1, 3, 2)}, engine="fast"),
     "engine must be"),
])
def test_bad_arguments_raise_one_line_value_errors(bad, message):
    with pytest.raises(ValueError) as info:
        bad(two_input_graph())
    assert message in str(info.value) and "\n" not in str(info.value)


def test_fixed_graph_rejects_fractional_inputs_and_weights():
    g = two_input_graph(fixed=True)
    g.fixed = True
    with pytest.raises(ValueError, match="integer inputs"):
        simulate(g, {"a": torch.full((1, 2, 4, 4, 2), 0.5), "b": torch.zeros(1, 3, 2)})
    g.projections[0].weight = g.projections[0].weight * 0.5
    with pytest.raises(ValueError, match="weights must be finite integers"):
        simulate(g, {"a": torch.ones(1, 2, 4, 4, 2), "b": torch.zeros(1, 3, 2)})


def test_reset_offsets_restart_each_population_at_its_depth():
    """Two samples streamed back to back with the reset give what each sample gives alone."""
    g = two_input_graph()
    rng = np.random.default_rng(0)
    steps, latency = 6, g.latency()
    s1, s2 = (torch.tensor(rng.random((1, 2, 4, 4, steps)) * 2) for _ in range(2))
    b = torch.zeros(1, 3, steps)
    pad_a, pad_b = torch.zeros(1, 2, 4, 4, latency), torch.zeros(1, 3, latency)
    stream = simulate(g, {"a": torch.cat([s1, s2, pad_a], -1), "b": torch.cat([b, b, pad_b], -1)},
                      reset_interval=steps).output
    alone = simulate(g, {"a": torch.cat([s2, pad_a], -1), "b": torch.cat([b, pad_b], -1)}).output
    depth = g.depths()["out"]
    torch.testing.assert_close(stream[..., steps + depth:], alone[..., depth:], rtol=0, atol=0)
    assert alone.abs().sum() > 0
