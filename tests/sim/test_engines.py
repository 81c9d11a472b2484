"""The two engines and the compiled neuron kernel give the same integers and the same counters.

The steps engine follows graph.py's semantics literally; the layers engine batches synapses over chunks of steps
and runs the neuron recurrence in numba (snnchip/sim/kernels.py). Lava-exactness of `simulate` is tested in
test_lava_exact.py and test_stock_netx.py (on the default engine, layers); here each engine is held to the other.
"""
import numpy as np
import pytest
import torch

from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import Simulator, simulate
from snnchip.sim.neurons import FixedCuba

from .test_lava_exact import conv_graph


def assert_same_run(graph, x, **kwargs):
    ref = simulate(graph, x, record=("spikes", "u", "v"), engine="steps", **kwargs)
    got = simulate(graph, x, record=("spikes", "u", "v"), engine="layers", **kwargs)
    for q in ("spikes", "u", "v"):
        for name, value in getattr(ref, q).items():
            assert torch.equal(value, getattr(got, q)[name]), (q, name)
    for name, value in ref.outputs.items():
        assert torch.equal(value, got.outputs[name])
    for group in ("populations", "projections"):
        for name, counts in getattr(ref.counters, group).items():
            for key, value in counts.items():
                np.testing.assert_array_equal(getattr(got.counters, group)[name][key], value, err_msg=f"{name}.{key}")
    return ref


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_layers_equal_steps_with_delays_groups_and_resets_across_chunk_boundaries(chunk):
    graph, x = conv_graph()
    x = np.stack([x, np.roll(x, 3, axis=-1), np.zeros_like(x)])      # a silent row too
    ref = assert_same_run(graph, x, reset_interval=5, chunk_steps=chunk)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 40
    assert ref.counters.summary()["per_sample"]["synops"] > 0


def graded_ideal_graph():
    """Ideal timing (zero-lag projections within a step), a graded relay with large payloads, every reset."""
    rng = np.random.default_rng(3)
    pops = [Population("in", (10,), Neuron(threshold=None, graded=True), is_input=True),
            Population("relay", (10,), Neuron(threshold=None, graded=True)),
            Population("hard", (7,), Neuron(threshold=300, du=2000, dv=300, reset="hard", reset_value=50),
                       bias=rng.integers(-40, 40, (7,)), bias_exp=3),
            Population("soft", (6,), Neuron(threshold=200, du=4095, dv=0, reset="soft", reset_amount=200 << 6)),
            Population("out", (3,), Neuron(threshold=None, du=100, dv=4000, reset="none"), is_output=True)]
    projs = [Projection("relay", "in", "relay", "dense", np.eye(10, dtype=np.int64) * 3, num_message_bits=24),
             Projection("big", "relay", "hard", "dense", rng.integers(-128, 127, (7, 10)), weight_exp=2,
                        num_message_bits=24),
             Projection("hs", "hard", "soft", "dense", rng.integers(-60, 127, (6, 7)), delay=1),
             Projection("so", "soft", "out", "dense", rng.integers(-128, 127, (3, 6)), weight_exp=-1),
             Projection("ho", "hard", "out", "dense", rng.integers(-128, 127, (3, 7)), delay=2)]
    graph = Graph(pops, projs, timing="ideal", fixed=True)
    x = rng.integers(-40000, 90000, (2, 10, 14)) * (rng.random((2, 10, 14)) < 0.7)
    return graph, x


def test_layers_equal_steps_on_ideal_timing_graded_payloads_and_int32_overflow():
    graph, x = graded_ideal_graph()
    for chunk in (None, 4):
        ref = assert_same_run(graph, x, chunk_steps=chunk)
    assert int(ref.spikes["hard"].sum()) > 0 and int(ref.spikes["soft"].sum()) > 0
    assert np.abs(ref.u["hard"].numpy()).max() > (1 << 22), "the current must reach the wrap-around range"


def test_kernel_equals_step_loop_for_every_reset_and_overflow():
    """FixedCuba.scan: numba kernel vs a loop of step(), with int32 overflow emulated, a periodic reset whose
    phase is not the chunk's, and a population that never fires."""
    rng = np.random.default_rng(11)
    for neuron in (Neuron(threshold=500, du=100, dv=4000, reset="hard", reset_value=-7),
                   Neuron(threshold=300, du=4095, dv=20, reset="soft", reset_amount=300 << 6),
                   Neuron(threshold=100, du=0, dv=0, reset="none"),
                   Neuron(threshold=None, du=2048, dv=4096)):
        pop = Population("p", (2, 3, 5), neuron, bias=rng.integers(-4000, 4000, (2, 3, 5)), bias_exp=3)
        update = FixedCuba(pop, "cpu", input_bound=float(1 << 30))
        assert update.emulate_int32
        a = torch.tensor(rng.integers(-(1 << 26), 1 << 26, (9, 4, 30)) * (rng.random((9, 4, 30)) < 0.5),
                         dtype=torch.float64)
        u0 = torch.tensor(rng.integers(-(1 << 23) + 1, 1 << 23, (4, 30)), dtype=torch.float64)
        v0 = torch.tensor(rng.integers(-(1 << 23) + 1, 1 << 23, (4, 30)), dtype=torch.float64)
        runs = []
        for kernel in (False, True):
            out = torch.empty(9, 4, 30, dtype=torch.float32)
            u, v, us, vs, fired = update.scan(a, u0, v0, t0=13, interval=4, offset=2, record=True, kernel=kernel,
                                              out=out)
            runs.append((out, u, v, us, vs, fired))
        for ref, got in zip(*runs):
            assert torch.equal(ref.to(got.dtype), got)
        assert torch.equal(runs[1][5], runs[1][0].sum(dim=2).double())
        if neuron.threshold is not None:
            assert 0 < int(runs[1][0].sum()) < runs[1][0].numel()
        assert not torch.equal(u0, runs[0][1]), "the states must move"


def test_recurrent_graphs_run_on_the_steps_engine_only():
    pops = [Population("in", (3,), Neuron(threshold=0, du=4095), is_input=True),
            Population("r", (4,), Neuron(threshold=100, du=4095, dv=100), is_output=True)]
    projs = [Projection("in_r", "in", "r", "dense", np.full((4, 3), 90)),
             Projection("r_r", "r", "r", "dense", np.full((4, 4), 30))]
    graph = Graph(pops, projs, timing="pipelined", fixed=True)
    x = np.ones((1, 3, 6), dtype=np.int64)
    res = simulate(graph, x, record=("spikes",))
    assert int(res.spikes["r"].sum()) > 0
    with pytest.raises(ValueError, match="recurrent"):
        simulate(graph, x, engine="layers")


def test_a_simulator_reused_across_inputs_gives_what_fresh_runs_give():
    graph, x = graded_ideal_graph()
    sim = Simulator(graph)
    for scale in (1, 1000, 0):   # payload peaks far apart: synapses are rebuilt for the larger bound
        xs = x * scale if scale else np.zeros_like(x)
        again, fresh = sim.run(xs, record=("v",)), simulate(graph, xs, record=("v",))
        for name, v in fresh.v.items():
            assert torch.equal(v, again.v[name]), (scale, name)


def test_the_layers_engines_device_paths_give_the_cpu_paths_integers(monkeypatch):
    """Off the CPU the layers engine loops torch steps and computes silent steps too (CI has no GPU: the same
    code runs here on the CPU)."""
    from snnchip.sim import executor
    graph, x = conv_graph()
    x = np.stack([x, np.zeros_like(x)])
    cpu = simulate(graph, x, record=("spikes", "u", "v"), reset_interval=5, chunk_steps=3)
    monkeypatch.setattr(executor, "_cpu_paths", lambda device: False)
    device = simulate(graph, x, record=("spikes", "u", "v"), reset_interval=5, chunk_steps=3)
    for q in ("spikes", "u", "v"):
        for name, value in getattr(cpu, q).items():
            assert torch.equal(value, getattr(device, q)[name]), (q, name)
    assert cpu.counters.summary() == device.counters.summary()


def shared_source_graph():
    """One source read by five targets through one conv geometry: identical weights at different delays, a
    distinct weight, positive, zero and negative exponents, one member whose shifted sums pass 2**23 (the 24-bit
    wrap), and two dense readouts of one population (stacked)."""
    rng = np.random.default_rng(3)
    steps = 9
    w = rng.integers(-70, 90, (3, 2, 3, 3))
    pops = [Population("in", (2, 6, 6), Neuron(threshold=0, du=4095, dv=4095, graded=True), is_input=True)]
    projs = []
    for i, (weight, exp, delay) in enumerate([(w, 0, 0), (rng.integers(-90, 60, (3, 2, 3, 3)), 1, 0), (w, 0, 2),
                                              (w, 2, 1), (w, -3, 3), (rng.integers(150, 256, (3, 2, 3, 3)), 7, 1)]):
        pops.append(Population(f"c{i}", (3, 3, 3), Neuron(threshold=90, du=3000, dv=1024),
                               bias=rng.integers(-10, 30, (3, 1, 1)), bias_exp=2))
        projs.append(Projection(f"in->c{i}", "in", f"c{i}", "conv", weight, stride=(2, 2), padding=(1, 1),
                                weight_exp=exp, delay=delay))
    for j in range(2):
        pops.append(Population(f"d{j}", (4,), Neuron(threshold=30, du=2048, dv=1024)))
        projs.append(Projection(f"c0->d{j}", "c0", f"d{j}", "dense", rng.integers(-60, 90, (4, 27)),
                                weight_exp=-j, delay=j))
    pops.append(Population("out", (2,), Neuron(threshold=None, du=4095, dv=0), is_output=True))
    projs.append(Projection("d0->out", "d0", "out", "dense", rng.integers(-50, 50, (2, 4))))
    graph = Graph(pops, projs, timing="pipelined", fixed=True)
    x = rng.integers(0, 50, (3, 2, 6, 6, steps))     # sums not multiples of 8: the right shift floors
    x[1] = 0                                    # a silent sample row
    x[2, ..., :4] = 0                           # silent steps
    return graph, x


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_delay_groups_sharing_a_source_give_each_projections_own_integers(chunk):
    from snnchip.sim.synapses import share_sources
    graph, x = shared_source_graph()
    into = Simulator(graph)._build({"in": float(np.abs(x).max())})[0]
    shared = share_sources([syn for syns in into.values() for syn in syns])
    ops = {id(s): s for s in shared.values()}.values()
    # the six convs of 'in' in one operation (the four identical weights once); the two dense reads of c0 in one
    assert sorted((len(s.members), s.distinct) for s in ops) == [(2, 2), (6, 3)]
    assert any(syn.bound_raw >= 2 ** 23 for syn in into["c5"])
    ref = assert_same_run(graph, x, reset_interval=5, chunk_steps=chunk)
    assert all(int(ref.spikes[f"c{i}"].sum()) > 0 for i in range(6))
    assert int(ref.spikes["d1"].sum()) > 0


def test_an_exported_ms_resnet_shares_its_composed_projections():
    """The composed MS-ResNet's projections from one source with one stride run as one operation each."""
    from snnchip.export.recipe import export_model
    from snnchip.sim.synapses import share_sources
    from small_models import small_ms_resnet
    model = small_ms_resnet().eval()
    calib = (torch.rand(4, 2, 16, 16, 8, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    graph = export_model(model, input_kind="graded", calibration=calib).graph
    into = Simulator(graph)._build({"input": 64.0})[0]
    syns = [syn for group in into.values() for syn in group]
    shared = share_sources(syns)
    ops = {id(s): s for s in shared.values()}.values()
    alone = len(syns) - len(shared)
    assert (len(syns), alone + len(ops)) == (14, 13)     # one block per stage: one pair shares
    x = (torch.rand(2, 2, 16, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.4).long() * 64
    assert_same_run(graph, x, reset_interval=8)
