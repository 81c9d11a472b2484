"""NIR files written by snnTorch 1.0's and SpikingJelly 2.0's own exporters: the float graph `read_nir` builds
reproduces each framework's own spikes, every layer, every step (conventions: tests/formats/frameworks.py)."""
import pytest
import torch

from snnchip.formats.nir import read_nir
from snnchip.sim import simulate

from . import frameworks as fw

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

STEPS = 25


def assert_same_spikes(graph, reference: dict, x: torch.Tensor, names=None) -> None:
    names = names or {k: k for k in reference}
    res = simulate(graph, x, record=tuple(names.values()))
    for ref_name, pop in names.items():
        ref, got = reference[ref_name], res.spikes[pop]
        assert tuple(got.shape) == tuple(ref.shape), (pop, got.shape, ref.shape)
        assert int(ref.sum()) > 0, f"{ref_name} never fires: the test would not check it"
        assert torch.equal(got, ref), f"{pop}: {int((got != ref).sum())} of {ref.numel()} spikes differ"


def graded_input(shape, seed, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, *shape, STEPS, generator=g, dtype=torch.float64) * scale


def test_snntorch_conv_net(tmp_path):
    net = fw.snntorch_conv_net()
    path = tmp_path / "snntorch_conv.nir"
    fw.snntorch_export(net, (2, 10, 10), path)
    graph = read_nir(path)
    kinds = {p.name: p.neuron for p in graph.populations}
    assert kinds["7"].du < 1.0           # the Synaptic layer became a two-state (CubaLIF) population
    # AvgPool2d after the conv of layer 0 is composed into the next conv: one projection per neuron layer
    assert [(q.source, q.target, q.kind) for q in graph.projections] == [
        ("input", "1", "conv"), ("1", "4", "conv"), ("4", "7", "dense")]
    x = graded_input((2, 10, 10), 0)
    assert_same_spikes(graph, fw.snntorch_spikes(net, x), x, {"1": "1", "4": "4", "7": "7"})


def test_snntorch_residual_block(tmp_path):
    net = fw.SnnTorchResBlock()
    path = tmp_path / "snntorch_res.nir"
    fw.snntorch_export(net, (2, 6, 6), path, residual=True)
    graph = read_nir(path)
    assert sorted(q.source for q in graph.into("lif2")) == ["lif0", "lif1"]     # fan-in: the shortcut
    x = graded_input((2, 6, 6), 1)
    assert_same_spikes(graph, fw.snntorch_spikes(net, x), x)


def test_spikingjelly_conv_net(tmp_path):
    net = fw.spikingjelly_conv_net()
    path = tmp_path / "sj_conv.nir"
    fw.spikingjelly_export(net, (2, 10, 10), path)
    graph = read_nir(path)
    x = graded_input((2, 10, 10), 2)
    assert_same_spikes(graph, fw.spikingjelly_spikes(net, x), x, {"1": "_1", "4": "_4", "7": "_7", "9": "_9"})


def test_spikingjelly_residual_block(tmp_path):
    net = fw.SpikingJellyResBlock()
    path = tmp_path / "sj_res.nir"
    fw.spikingjelly_export(net, (2, 6, 6), path)
    graph = read_nir(path)
    assert sorted(q.source for q in graph.into("lif2")) == ["lif0", "lif1"]
    x = graded_input((2, 6, 6), 3)
    assert_same_spikes(graph, fw.spikingjelly_spikes(net, x), x)


def test_wrong_dt_changes_the_dynamics(tmp_path):
    """The time step is not in the file: reading with another dt than the exporter's gives other spikes (or a
    refusal when tau < dt), so dt is a real parameter of the import."""
    net = fw.SpikingJellyResBlock()
    path = tmp_path / "sj_res.nir"
    fw.spikingjelly_export(net, (2, 6, 6), path)
    x = graded_input((2, 6, 6), 3)
    reference = fw.spikingjelly_spikes(net, x)
    res = simulate(read_nir(path, dt=0.5e-4), x, record=("lif0",))
    assert not torch.equal(res.spikes["lif0"], reference["lif0"])


def test_snntorch_recurrent_subgraph(tmp_path):
    """snnTorch's RLeaky is written as a subgraph whose LIF feeds itself through w_rec: the subgraph is inlined and
    the cycle read as a recurrent projection with delay 1 (RLeaky adds V spk[t-1])."""
    net = fw.snntorch_recurrent_net()
    path = tmp_path / "snntorch_rleaky.nir"
    fw.snntorch_export(net, (6,), path)
    graph = read_nir(path)
    (rec,) = [q for q in graph.projections if q.source == q.target]
    assert rec.source == "1.lif" and rec.delay == 1
    x = torch.rand(3, 6, STEPS, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2
    assert_same_spikes(graph, fw.snntorch_spikes_float32(net, x), x, {"1": "1.lif", "3": "3"})
