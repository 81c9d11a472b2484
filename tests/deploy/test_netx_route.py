"""A chain graph goes through stock netx (its NetX file loaded by lava.lib.dl.netx.hdf5.Network); netx, our
builder and simulate give the same integers at every step."""
import numpy as np
import pytest

from snnchip.deploy.builder import netx_compatible
from snnchip.deploy.run import run_on_lava
from snnchip.sim import sample_stream
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

N, T = 3, 6


def chain_graph() -> Graph:
    rng = np.random.default_rng(3)
    pops = [Population("in", (2, 8, 8), Neuron(threshold=None, graded=True, binary=True), is_input=True),
            Population("a", (4, 4, 4), Neuron(threshold=60, du=4095, dv=1024), bias=rng.integers(-2, 3, (4, 1, 1)),
                       bias_exp=6),
            Population("b", (12,), Neuron(threshold=50, du=2047, dv=512)),
            Population("out", (5,), Neuron(threshold=None, du=4095, dv=0), is_output=True)]
    projs = [Projection("in_a", "in", "a", "conv", rng.integers(-60, 120, (4, 2, 3, 3)), stride=(2, 2),
                        padding=(1, 1)),
             Projection("a_b", "a", "b", "dense", rng.integers(-128, 127, (12, 64)) * 2),
             Projection("b_out", "b", "out", "dense", rng.integers(-100, 100, (5, 12)) * 2)]
    return Graph(pops, projs, timing="pipelined", fixed=True)


def test_chain_through_stock_netx_equals_builder_and_simulate():
    g = chain_graph()
    assert netx_compatible(g)
    x = (np.random.default_rng(4).random((N, 2, 8, 8, T)) < 0.3).astype(np.int64)
    runs = {via: run_on_lava(g, x, via=via) for via in ("auto", "builder")}
    assert runs["auto"].via == "netx" and runs["builder"].via == "builder"
    stream = sample_stream(g, x, extra_steps=runs["auto"].num_steps - N * T)
    ref = simulate(g, {k: v[None] for k, v in stream.items()}, record=("b",), reset_interval=T)
    want = ref.outputs["out"][0].numpy()
    assert np.abs(want).max() > 1000 and ref.spikes["b"].sum() > 0
    for via, lava in runs.items():
        np.testing.assert_array_equal(lava.stream_outputs["out"], want, err_msg=via)


def test_netx_refuses_what_it_cannot_run_exactly():
    g = chain_graph()
    g.population("a").neuron.reset, g.population("a").neuron.reset_amount = "soft", 60 * 64
    assert not netx_compatible(g)
    with pytest.raises(ValueError, match="stock netx cannot run this graph"):
        run_on_lava(g, np.zeros((1, 2, 8, 8, T), dtype=np.int64), via="netx")
