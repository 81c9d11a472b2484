"""Counts from the simulator's counters on lava-dl's stock NetX network (pipelined, fixed point): every
population and projection is counted over its own T-step window of the sample."""
import pytest
import torch
import torch.nn.functional as F

from lava_dl_files import stock_netx_dir
from snnchip.energy.count import count_graph
from snnchip.sim import simulate

try:
    from snnchip.formats.netx import read_netx
except ImportError:
    from snnchip.formats.netx_read import read_netx


def synapse_counts(graph, proj):
    """Fan-out per source neuron from the explicit synapse matrix (one-hot inputs through the conv with ones)."""
    src = graph.population(proj.source)
    n = src.size
    one_hot = torch.eye(n, dtype=torch.float64).reshape(n, *src.shape)
    w = torch.ones(proj.weight.shape, dtype=torch.float64)
    out = F.conv2d(one_hot, w, stride=proj.stride, padding=proj.padding, dilation=proj.dilation, groups=proj.groups)
    return out.reshape(n, -1).sum(1).numpy()


def test_stock_tiny_net_counts_windowed_per_layer():
    graph = read_netx(stock_netx_dir() / "tiny.net")
    T = 6
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (3, *graph.inputs[0].shape, T), generator=gen) * 4000
    counts = count_graph(graph, [x[:2], x[2:]])
    assert counts.samples == 3 and counts.steps == T

    depth = graph.meta["depth"]
    latency = max(depth.values())
    padded = torch.cat([x, torch.zeros(*x.shape[:-1], latency, dtype=x.dtype)], -1)
    ref = simulate(graph, padded, record=("spikes",), reset_interval=T)
    window = {name: ref.spikes[name][..., d:d + T] for name, d in depth.items()}
    for layer in counts.neuron_layers:
        assert layer.spikes == float(window[layer.name].sum())
        assert layer.updates == 3 * T * layer.neurons
    assert any(layer.spikes > 0 for layer in counts.neuron_layers)
    for layer in counts.layers:
        proj = next(q for q in graph.projections if q.name == layer.name)
        spikes = window[proj.source].reshape(3, -1, T).sum(dim=(0, 2)).double().numpy()
        assert layer.synops == pytest.approx(float(spikes @ synapse_counts(graph, proj)), abs=0)
        assert layer.macs == 0 and layer.events == spikes.sum()
        assert layer.real_synapses == int(synapse_counts(graph, proj).sum())
