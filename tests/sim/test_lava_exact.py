"""Fixed-point simulate() equals Lava's fixed-point CPU simulation, integer for integer, at every step.

The networks are built from Lava's own processes (tests/sim/lava_harness.py): LIF / LIFReset, Dense, DelayDense,
Conv, RingBuffer. Each test keeps Lava runs to a handful of processes and steps.
"""
import numpy as np
import torch

from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

from .lava_harness import run_graph_on_lava  # noqa: E402


def assert_same(graph, x, lava, reset_interval=None):
    res = simulate(graph, x[None], record=("spikes", "u", "v"), reset_interval=reset_interval)
    spikes = 0
    for pop in graph.populations:
        s, u, v = lava[pop.name]
        for q, ours, theirs in (("s", res.spikes, s), ("u", res.u, u), ("v", res.v, v)):
            got = ours[pop.name][0].numpy()
            if not np.array_equal(got, theirs):
                t = int(np.argwhere(got != theirs)[0][-1])
                raise AssertionError(f"{pop.name}.{q} differs from Lava first at step {t}: "
                                     f"{np.count_nonzero(got != theirs)} values")
        spikes += int(s.sum())
    return res, spikes


def conv_graph():
    rng = np.random.default_rng(7)
    steps = 8
    pops = [
        Population("in", (4, 7, 6), Neuron(threshold=40, du=4095, dv=1024), is_input=True,
                   bias=rng.integers(0, 30, (4, 7, 6)), bias_exp=2),
        Population("c1", (4, 4, 2), Neuron(threshold=60, du=3000, dv=512),
                   bias=rng.integers(-20, 40, (4, 1, 1)), bias_exp=3),
        Population("c2", (6, 4, 2), Neuron(threshold=30, du=4095, dv=0)),
        Population("fc", (10,), Neuron(threshold=50, du=1024, dv=2048), bias=rng.integers(-5, 20, (10,)),
                   bias_exp=1),
        Population("out", (3,), Neuron(threshold=None, du=4095, dv=0), is_output=True),
    ]
    projs = [
        Projection("conv_s2_g2_d", "in", "c1", "conv", rng.integers(-60, 90, (4, 2, 3, 3)), stride=(2, 2),
                   padding=(1, 1), dilation=(1, 2), groups=2),
        Projection("conv_1x1", "c1", "c2", "conv", rng.integers(-50, 120, (6, 4, 1, 1))),
        Projection("fc_from_c2", "c2", "fc", "dense", rng.integers(-80, 100, (10, 48)), weight_exp=1),
        # fan-in: a second, delayed projection from the first conv layer (per-source axonal delays)
        Projection("fc_from_c1", "c1", "fc", "dense", rng.integers(-40, 100, (10, 32)),
                   delay=rng.integers(0, 3, (4, 4, 2))),
        Projection("readout", "fc", "out", "dense", rng.integers(-100, 100, (3, 10)), delay=1, weight_exp=-2),
    ]
    graph = Graph(pops, projs, timing="pipelined", fixed=True)
    x = rng.integers(0, 3, (4, 7, 6, steps)) * 64
    return graph, x


def test_conv_stride_groups_dilation_fan_in_and_delays_match_lava():
    graph, x = conv_graph()
    _, spikes = assert_same(graph, x, run_graph_on_lava(graph, x))
    assert spikes > 20, "the network must be active for the comparison to mean anything"


def test_compiled_neuron_kernel_gives_the_same_integers():
    """simulate(compile=True) fuses the step-by-step fixed-point update with torch.compile (the steps engine, and
    the layers engine off the CPU): not one integer may change."""
    graph, x = conv_graph()
    x = np.stack([x, np.roll(x, 1, axis=-1)])
    eager = simulate(graph, x, record=("spikes", "u", "v"), reset_interval=5, engine="steps")
    fused = simulate(graph, x, record=("spikes", "u", "v"), reset_interval=5, compile=True, engine="steps")
    for q in ("spikes", "u", "v"):
        for name, value in getattr(eager, q).items():
            assert torch.equal(value, getattr(fused, q)[name]), (q, name)
    assert sum(int(s.sum()) for s in eager.spikes.values()) > 20



def test_graded_input_negative_exponent_wraparound_and_clipping_match_lava():
    """Graded payloads drive the current past 2**23 (wrap-around) and the voltage into its clip."""
    rng = np.random.default_rng(1)
    steps = 8
    pops = [
        Population("in", (12,), Neuron(threshold=None, graded=True), is_input=True),
        Population("big", (5,), Neuron(threshold=NEVER_FIRES, du=0, dv=0)),
        Population("h", (6,), Neuron(threshold=200, du=2048, dv=300), bias=rng.integers(-50, 50, (6,)),
                   bias_exp=4),
        Population("out", (4,), Neuron(threshold=None, du=4095, dv=100), is_output=True),
    ]
    projs = [
        Projection("huge", "in", "big", "dense", rng.integers(100, 127, (5, 12)), weight_exp=3, num_message_bits=24),
        Projection("neg_exp", "in", "h", "dense", rng.integers(-128, 127, (6, 12)), weight_exp=-3,
                   num_message_bits=24),
        Projection("per_synapse_delay", "h", "out", "dense", rng.integers(-128, 127, (4, 6)),
                   delay=rng.integers(0, 4, (4, 6))),
    ]
    graph = Graph(pops, projs, timing="pipelined", fixed=True)
    x = rng.integers(-3000, 9000, (12, steps))
    res, spikes = assert_same(graph, x, run_graph_on_lava(graph, x))
    u_big = res.u["big"].numpy()
    assert np.diff(u_big, axis=-1).min() < 0 and u_big.max() > (1 << 22), "current must wrap around"
    assert np.abs(res.v["big"].numpy()).max() == (1 << 23) - 1, "voltage must clip"
    assert spikes > 0


NEVER_FIRES = (1 << 17) - 1


def test_periodic_reset_matches_lava_lifreset():
    rng = np.random.default_rng(5)
    steps, interval = 12, 5
    pops = [
        Population("in", (6,), Neuron(threshold=30, du=4095, dv=800), is_input=True),
        Population("h", (8,), Neuron(threshold=40, du=1000, dv=400), bias=rng.integers(0, 10, (8,)), bias_exp=3),
        Population("out", (3,), Neuron(threshold=None, du=2000, dv=100), is_output=True),
    ]
    projs = [Projection("a", "in", "h", "dense", rng.integers(-30, 120, (8, 6))),
             Projection("b", "h", "out", "dense", rng.integers(-100, 120, (3, 8)))]
    graph = Graph(pops, projs, timing="pipelined", fixed=True)
    x = rng.integers(0, 4, (6, steps)) * 64
    offsets = graph.depths()
    assert offsets == {"in": 0, "h": 1, "out": 2}
    res, spikes = assert_same(graph, x, run_graph_on_lava(graph, x, interval, offsets), reset_interval=interval)
    plain = simulate(graph, x[None], record=("v",))
    assert not np.array_equal(plain.v["out"].numpy(), res.v["out"].numpy()), "the reset must change something"
    assert spikes > 0
