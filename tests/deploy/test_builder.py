"""build_lava / run_on_lava on hand-built graphs: fan-in, delays, graded relays, soft reset, readout; every
integer identical to snnchip.sim.simulate on the same stream; errors for what Lava cannot run exactly."""
import numpy as np
import pytest

from snnchip.deploy.builder import build_lava
from snnchip.loihi import dense_weights
from snnchip.deploy.run import as_float, run_on_lava
from snnchip.sim import sample_stream
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

N, T = 3, 5


def residual_graph(seed: int = 0) -> Graph:
    """graded input (2,6,6) -> conv -> hard-reset LIF a -> conv -> soft-reset LIF b -> dense -> readout; a
    shortcut input -> b with a per-source delay array of 1 (aligned by hand), a dense delay into the readout."""
    rng = np.random.default_rng(seed)
    pops = [Population("in", (2, 6, 6), Neuron(threshold=None, graded=True), is_input=True),
            Population("a", (4, 6, 6), Neuron(threshold=100, du=4095, dv=1024), bias=rng.integers(-5, 5, (4, 1, 1)),
                       bias_exp=3),
            Population("b", (4, 6, 6), Neuron(threshold=80, du=2048, dv=3072, reset="soft", reset_amount=80 * 64)),
            Population("c", (6,), Neuron(threshold=40, du=4095, dv=512)),
            Population("out", (5,), Neuron(threshold=None, du=4095, dv=0), bias=rng.integers(-3, 3, 5),
                       is_output=True)]
    projs = [Projection("in_a", "in", "a", "conv", rng.integers(-128, 128, (4, 2, 3, 3)), padding=(1, 1),
                        num_message_bits=8, weight_exp=1),
             Projection("a_b", "a", "b", "conv", rng.integers(-128, 128, (4, 2, 3, 3)) * 2, padding=(1, 1),
                        groups=2),
             Projection("in_b", "in", "b", "conv", rng.integers(-100, 100, (4, 2, 1, 1)),
                        delay=np.ones((2, 6, 6), dtype=np.int64), num_message_bits=8),
             Projection("b_c", "b", "c", "dense", rng.integers(-255, 256, (6, 144)), weight_exp=-2),
             Projection("c_out", "c", "out", "dense", rng.integers(-255, 256, (5, 6)), weight_exp=2),
             Projection("b_out", "b", "out", "dense", rng.integers(-120, 120, (5, 144)), delay=1)]
    g = Graph(pops, projs, timing="pipelined", fixed=True)
    g.validate()
    return g


def graded_input(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, (N, 2, 6, 6, T))


@pytest.fixture(scope="module")
def fixed_run():
    g, x = residual_graph(), graded_input()
    return g, x, run_on_lava(g, x, record=("a", "b", "c"))


def test_every_integer_matches_simulate_on_the_same_stream(fixed_run):
    g, x, lava = fixed_run
    stream = sample_stream(g, x, extra_steps=lava.num_steps - N * T)
    ref = simulate(g, {k: v[None] for k, v in stream.items()}, record=("a", "b", "c"), reset_interval=T)
    assert lava.latency == g.latency() == 4 and lava.num_steps == N * T + 4
    for name in ("a", "b", "c"):
        got = lava.stream_spikes[name]
        assert 0 < got.sum() < got.size, f"{name} should spike sometimes, not always"
        np.testing.assert_array_equal(got, ref.spikes[name][0].numpy(), err_msg=name)
    out = lava.stream_outputs["out"]
    assert np.abs(out).max() > 1000
    np.testing.assert_array_equal(out, ref.outputs["out"][0].numpy())


def test_each_sample_runs_as_if_alone(fixed_run):
    """Back-to-back samples reset at their depth: each window equals a simulation of that sample by itself."""
    g, x, lava = fixed_run
    assert lava.output.shape == (N, 5, T)
    for k in range(N):
        alone = np.zeros((1, 2, 6, 6, T + 4), dtype=np.int64)
        alone[..., :T] = x[k]
        ref = simulate(g, alone, record=("b",), reset_interval=T + 4)
        np.testing.assert_array_equal(lava.output[k], ref.output[0].numpy()[..., 4:4 + T])
        np.testing.assert_array_equal(lava.spikes["b"][k], ref.spikes["b"][0].numpy()[..., 2:2 + T])
    assert not np.array_equal(lava.output[0], lava.output[1])


def test_float_run_of_the_fixed_graph_read_in_float():
    g = as_float(residual_graph())
    x = graded_input().astype(np.float64)
    lava = run_on_lava(g, x, "floating_pt", record=("b",))
    stream = sample_stream(g, x, extra_steps=lava.num_steps - N * T)
    ref = simulate(g, {k: v[None] for k, v in stream.items()}, record=("b",), reset_interval=T)
    np.testing.assert_array_equal(lava.stream_spikes["b"], ref.spikes["b"][0].numpy())
    np.testing.assert_allclose(lava.stream_outputs["out"], ref.outputs["out"][0].numpy(), rtol=1e-12, atol=1e-9)


def test_lava_dense_weight_encoding_is_exact():
    rng = np.random.default_rng(0)
    w = rng.integers(-200, 200, (7, 9)) * 4            # beyond 8 bits, but a multiple of 4
    s = rng.integers(0, 2, 9)
    for exp in (-3, 0, 2):
        w2, exp2, bits = dense_weights(w, exp, "p")
        assert -256 <= w2.min() and w2.max() <= 255 and bits == 9
        want = (w @ s) << exp if exp >= 0 else (w @ s) >> -exp
        got = (w2 @ s) << exp2 if exp2 >= 0 else (w2 @ s) >> -exp2
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="projection 'p': weights -301..255 exceed"):
        dense_weights(np.array([[-301, 255]]), 0, "p")


def _broken(change):
    g = residual_graph()
    change(g)
    return g


@pytest.mark.parametrize("change, message", [
    (lambda g: setattr(g, "timing", "ideal"), "ideal timing"),
    (lambda g: setattr(g.projections[2], "delay", 0), "projection 'in_b' is not aligned"),
    (lambda g: setattr(g.population("a").neuron, "reset_value", 5), "population 'a': hard reset to 5"),
    (lambda g: setattr(g.population("c").neuron, "dv", 5000), "population 'c': dv 5000..5000 is outside"),
    (lambda g: setattr(g.projections[3], "weight", g.projections[3].weight * 3 + 1), "projection 'b_c'"),
])
def test_what_lava_cannot_run_exactly_is_a_one_line_error(change, message):
    with pytest.raises(ValueError, match=message) as exc:
        build_lava(_broken(change), steps_per_sample=T, num_steps=2 * T)
    assert "\n" not in str(exc.value)


def test_fixed_graph_needs_the_fixed_tag():
    with pytest.raises(ValueError, match="as_float"):
        run_on_lava(residual_graph(), graded_input(), "floating_pt")
