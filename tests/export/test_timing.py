"""pipeline(): depths, aligned delays, and shifted equality with the ideal graph under the simulator."""
import numpy as np
import pytest
import torch

from snnchip.export.timing import pipeline
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate


def residual_graph(seed=0) -> Graph:
    """input -> a -> b -> c -> readout with skips input -> b, a -> c, input -> c (fan-ins of unequal depth)."""
    rng = np.random.default_rng(seed)
    lif = lambda: Neuron(threshold=0.5, du=1.0, dv=0.75)   # noqa: E731
    pops = [Population("input", (2, 6, 6), Neuron(threshold=0.0, du=1.0, dv=1.0), is_input=True),
            Population("a", (4, 6, 6), lif(), bias=rng.normal(0, 0.1, (4, 1, 1))),
            Population("b", (4, 3, 3), lif()),
            Population("c", (4, 3, 3), lif(), bias=rng.normal(0, 0.1, (4, 1, 1))),
            Population("readout", (3,), Neuron(threshold=None, du=1.0, dv=0.0, reset="none"), is_output=True)]

    def conv(src, tgt, cin, cout, stride):
        return Projection(f"{src}->{tgt}", src, tgt, "conv", rng.normal(0, 0.6, (cout, cin, 3, 3)),
                          stride=(stride, stride), padding=(1, 1))
    projs = [conv("input", "a", 2, 4, 1), conv("a", "b", 4, 4, 2), conv("input", "b", 2, 4, 2),
             conv("b", "c", 4, 4, 1), conv("a", "c", 4, 4, 2), conv("input", "c", 2, 4, 2),
             Projection("c->readout", "c", "readout", "dense", rng.normal(0, 0.5, (3, 36)))]
    return Graph(pops, projs)


def test_depths_and_delays_align_every_fan_in():
    g = residual_graph()
    p = pipeline(g)
    assert p.timing == "pipelined" and g.timing == "ideal"
    assert p.meta["depth"] == {"input": 0, "a": 1, "b": 2, "c": 3, "readout": 4}
    delays = {q.name: q.delay for q in p.projections}
    assert delays == {"input->a": 0, "a->b": 0, "input->b": 1, "b->c": 0, "a->c": 1, "input->c": 2,
                      "c->readout": 0}
    for q in p.projections:
        assert p.meta["depth"][q.source] + q.delay + 1 == p.meta["depth"][q.target]
    assert p.latency() == 4
    assert all(q.delay == 0 for q in g.projections), "the ideal graph must not be modified"


def test_pipelined_graph_computes_the_ideal_one_shifted_by_depth():
    g = residual_graph(1)
    p = pipeline(g)
    T, latency = 7, p.latency()
    x = (torch.rand(3, 2, 6, 6, T, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    ideal = simulate(g, x, record=("spikes",))
    padded = torch.cat([x, torch.zeros(3, 2, 6, 6, latency, dtype=x.dtype)], dim=-1)
    # A population at depth d only integrates its bias before step d: the per-population reset at its depth
    # (netx's reset_interval, offset = depth) discards that, and what it emits then reaches no target in time.
    piped = simulate(p, padded, record=("spikes",), reset_interval=T)
    spiked = 0
    for name, d in p.meta["depth"].items():
        ref = ideal.spikes[name]
        got = piped.spikes[name][..., d:d + T]
        assert torch.equal(ref, got), name
        spiked += int(ref.sum())
    assert spiked > 0
    assert torch.equal(ideal.output[..., T - 1], piped.output[..., T - 1 + latency])


def test_without_delays_the_pipelined_graph_differs():
    """The check above can fail: dropping the aligning delays changes the spikes."""
    g = residual_graph(1)
    p = pipeline(g)
    for q in p.projections:
        q.delay = 0
    T = 7
    x = (torch.rand(3, 2, 6, 6, T, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    ideal = simulate(g, x, record=("spikes",))
    piped = simulate(p, torch.cat([x, torch.zeros(3, 2, 6, 6, 4, dtype=x.dtype)], dim=-1), record=("spikes",),
                     reset_interval=T)
    assert not torch.equal(ideal.spikes["c"], piped.spikes["c"][..., 3:3 + T])


def test_rejects_pipelined_or_recurrent_graphs():
    p = pipeline(residual_graph())
    with pytest.raises(ValueError, match="ideal-timing"):
        pipeline(p)
    g = residual_graph()
    g.projections.append(Projection("c->a", "c", "a", "conv", np.zeros((4, 4, 3, 3)), stride=(1, 1),
                                    padding=(1, 1), delay=1))
    with pytest.raises(ValueError, match="backwards"):
        pipeline(g)
