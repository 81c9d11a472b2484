"""Operation counts on data: from the float model in training (forward hooks) or from the simulator's counters.

Both give an `ActivityCounts`: per neuron layer (spikes, neuron updates, active updates) and per synaptic layer
(synaptic ops = spikes x fan-out, MACs = non-zero graded inputs x fan-out), summed over the samples seen.
Fan-out is structural and exact per source neuron (a conv input near a padded border reaches fewer outputs).

A neuron update is *active* when the neuron's voltage before reset is non-zero (it has state to update);
otherwise it is inactive (Loihi prices the two differently).

`count_model` counts on the model's own structure (the stem, the residual convs, the shortcut convs on the
membrane input, the FC). `graph_ops_from_model` counts the same forward pass on a deployed graph's projections
(`graph.meta['torch_names']` maps its populations to the model's neuron modules): on identical spikes it equals
the simulator's counters of that graph exactly; `count_graph` reads those counters from `snnchip.sim`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .flops import LayerTracer, SynapticLayer, synaptic_layers


@dataclass
class NeuronLayerCount:
    """Totals over all samples and steps. spike_map: spikes per neuron `[*shape]` (for comparisons)."""
    name: str
    shape: tuple
    spikes: float = 0.0
    updates: float = 0.0
    active_updates: float = 0.0
    spike_map: Optional[np.ndarray] = None

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class LayerCount:
    """A synaptic layer (model conv / dense, or graph projection) and its operations summed over all samples."""
    name: str
    source: str
    target: Optional[str]
    kind: str
    role: Optional[str]
    spike_driven: bool
    neurons: int          # of the source layer
    synapses: int         # connections = multiply-accumulates of one frame as an ANN
    params: int
    events: float = 0.0   # non-zero inputs that arrived (spikes or graded payloads)
    synops: float = 0.0
    macs: float = 0.0


@dataclass
class ActivityCounts:
    """What a network did on `samples` samples of `steps` time steps each (sums, not means)."""
    origin: str           # 'model' (float model in training) or 'sim' (simulator counters)
    samples: int
    steps: int
    neuron_layers: list[NeuronLayerCount] = field(default_factory=list)
    layers: list[LayerCount] = field(default_factory=list)


# -- fan-out -----------------------------------------------------------------------------------------
def conv_fan_out(in_shape, weight_shape, stride, padding, dilation, groups) -> np.ndarray:
    """Synapses leaving each input neuron of a conv, `[C, H, W]` int64: output channels of its group times
    the (output position, kernel tap) pairs whose receptive field covers it (counted by `F.fold`)."""
    c_in, h, w = (int(s) for s in in_shape)
    c_out, _, kh, kw = (int(s) for s in weight_shape)
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    cols = F.unfold(ones, (kh, kw), dilation=tuple(dilation), padding=tuple(padding), stride=tuple(stride))
    taps = F.fold(torch.ones_like(cols), (h, w), (kh, kw), dilation=tuple(dilation), padding=tuple(padding),
                  stride=tuple(stride))[0, 0]
    per_channel = taps.round().long().numpy() * (c_out // int(groups))
    return np.broadcast_to(per_channel, (c_in, h, w)).astype(np.int64)


def layer_fan_out(layer: SynapticLayer) -> np.ndarray:
    if layer.kind == "dense":
        return np.full(layer.in_shape, int(np.prod(layer.out_shape)), dtype=np.int64)
    return conv_fan_out(layer.in_shape, layer.weight_shape, layer.stride, layer.padding, layer.dilation,
                        layer.groups)


def projection_fan_out(graph, proj) -> np.ndarray:
    """Fan-out per source neuron of a graph projection, flat `[src_size]` (structural: every synapse)."""
    src, tgt = graph.population(proj.source), graph.population(proj.target)
    if proj.kind == "dense":
        return np.full(src.size, tgt.size, dtype=np.int64)
    return conv_fan_out(src.shape, proj.weight.shape, proj.stride, proj.padding, proj.dilation,
                        proj.groups).reshape(-1)


# -- the float model ------------------------------------------------------------------------------------
class _ModelActivity:
    """Hook callbacks accumulating non-zero input maps per layer and spike / activity maps per neuron layer."""

    def __init__(self) -> None:
        self.input_nz: dict[str, torch.Tensor] = {}
        self.spikes: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple] = {}
        self.updates: dict[str, float] = {}
        self.active: dict[str, float] = {}
        self.model_input_nz: Optional[torch.Tensor] = None

    @staticmethod
    def _add(store: dict, name: str, value: torch.Tensor) -> None:
        store[name] = value if name not in store else store[name] + value

    def on_layer(self, name, module, x, source) -> None:
        if not name.startswith("head."):
            self._add(self.input_nz, name, (x != 0).sum(dim=(0, x.ndim - 1)).double())

    def on_neuron(self, name, module, current, out) -> None:
        if not torch.all((out == 0) | (out == 1)):
            raise InputError(f"neuron layer '{name}' emitted values other than 0/1")
        self._add(self.spikes, name, out.sum(dim=(0, out.ndim - 1)).double())
        self.shapes[name] = tuple(out.shape[1:-1])
        self.updates[name] = self.updates.get(name, 0.0) + float(out.numel())
        self.active[name] = self.active.get(name, 0.0) + float(_active_updates(module.config, current, out))


def _active_updates(cfg, current: torch.Tensor, spikes: torch.Tensor) -> int:
    """Neuron-steps whose voltage before reset is non-zero: h = decay u[t-1] + I[t], u after the model's own
    spikes and the configured reset (docs/model-contract.md)."""
    u = torch.zeros_like(current[..., 0])
    active = 0
    for t in range(current.shape[-1]):
        h = cfg.decay * u + current[..., t]
        o = spikes[..., t].bool()
        active += int((h != 0).sum())
        if cfg.reset == "hard":
            u = torch.where(o, torch.full_like(h, cfg.reset_value), h)
        elif cfg.reset == "soft":
            u = h - o.to(h.dtype) * cfg.spike_value
        else:
            u = h
    return active


def run_model(model, batches: Iterable[torch.Tensor], progress=None) -> tuple[_ModelActivity, int, int]:
    """Run `model` (eval, no grad) over input batches `[N, *input_shape, T]`; returns (activity, samples, T)."""
    activity, samples, steps = _ModelActivity(), 0, None
    model = model.eval()
    with LayerTracer(model, activity.on_layer, activity.on_neuron), torch.no_grad():
        for x in batches:
            if steps is None:
                steps = int(x.shape[-1])
            elif int(x.shape[-1]) != steps:
                raise InputError(f"all samples need the same number of steps; got {x.shape[-1]} after {steps}")
            nz = (x != 0).sum(dim=(0, x.ndim - 1)).double()
            activity.model_input_nz = nz if activity.model_input_nz is None else activity.model_input_nz + nz
            model(x)
            samples += int(x.shape[0])
            if progress is not None:
                progress.update(int(x.shape[0]))
    if not samples:
        raise InputError("no samples to count")
    return activity, samples, steps


def _neuron_layers(activity: _ModelActivity) -> list[NeuronLayerCount]:
    return [NeuronLayerCount(name, activity.shapes[name], float(s.sum()), activity.updates[name],
                             activity.active[name], s.numpy().astype(np.int64))
            for name, s in activity.spikes.items()]


def count_model(model, batches: Iterable[torch.Tensor], input_shape: tuple, progress=None) -> ActivityCounts:
    """Counts of the float model on its own structure (see module docstring); `input_shape` `(C, H, W)`."""
    layers = synaptic_layers(model, input_shape)
    activity, samples, steps = run_model(model, batches, progress)
    neurons = _neuron_layers(activity)
    sizes = {n.name: n.neurons for n in neurons}
    counts = []
    for layer in layers:
        fan = layer_fan_out(layer)
        if layer.role == "fc":
            nz = activity.spikes[layer.source].sum().item() if layer.source in activity.spikes else 0.0
            ops, events = nz * fan.reshape(-1)[0], nz
        else:
            nz = activity.input_nz[layer.name].numpy()
            ops, events = float((nz * fan).sum()), float(nz.sum())
        src_neurons = sizes.get(layer.source, int(np.prod(layer.in_shape)))
        counts.append(LayerCount(layer.name, layer.source, None, layer.kind, layer.role, layer.spike_driven,
                                 src_neurons, layer.ann_flops, layer.params, events,
                                 synops=ops if layer.spike_driven else 0.0,
                                 macs=0.0 if layer.spike_driven else ops))
    return ActivityCounts("model", samples, steps, neurons, counts)


def graph_ops_from_model(graph, activity: _ModelActivity) -> dict[str, dict[str, float]]:
    """Operations of every projection of `graph` driven by the model's own spikes (and input), per projection:
    {'events', 'synops', 'macs'} summed over the samples. Populations map to modules by meta['torch_names']."""
    names = graph.module_names
    out = {}
    for proj in graph.projections:
        src = graph.population(proj.source)
        if src.is_input:
            nz = activity.model_input_nz
        else:
            module = names.get(proj.source)
            if module not in activity.spikes:
                raise InputError(f"population '{proj.source}' has no matching neuron module in the model")
            nz = activity.spikes[module]
        nz = nz.numpy().reshape(-1)
        ops = float(nz @ projection_fan_out(graph, proj))
        graded = src.neuron.graded
        out[proj.name] = {"events": float(nz.sum()), "synops": 0.0 if graded else ops, "macs": ops if graded else 0.0}
    return out


# -- the simulator ---------------------------------------------------------------------------------------
def count_graph(graph, batches: Iterable[torch.Tensor], progress=None, device="cpu") -> ActivityCounts:
    """Counts from `snnchip.sim.simulate` counters on `graph` (float or fixed point).

    Each batch `[N, *input_shape, T]` is padded with zero input for the graph's latency; every population's state
    is reset when its sample starts (the simulator's `reset_interval` = T at the population's depth, as a
    streaming deployment does) and its counts are taken over the T steps from its depth (pipelined:
    `meta['depth']`), so each sample counts exactly T steps of every layer, as in the model. Projections are
    windowed by their target's depth (the simulator counts an event when it arrives).
    """
    from ..sim import Simulator, run_samples

    depth = graph.depths()
    pops = {p.name: p for p in graph.populations}
    neuron = {p.name: NeuronLayerCount(p.name, tuple(p.shape), spike_map=np.zeros(p.size, dtype=np.int64))
              for p in graph.populations if not p.is_input}
    proj_ops = {q.name: np.zeros(3) for q in graph.projections}
    samples, steps = 0, None
    sim = Simulator(graph, device)
    for x in batches:
        x = torch.as_tensor(x)
        if steps is None:
            steps = int(x.shape[-1])
        elif int(x.shape[-1]) != steps:
            raise InputError(f"all samples need the same number of steps; got {x.shape[-1]} after {steps}")
        run = run_samples(sim, x, record=("spikes", "v"))
        c = run.result.counters
        for name, nl in neuron.items():
            s = run.window("spikes", name).reshape(x.shape[0], -1, steps)
            v = run.window("v", name).reshape(x.shape[0], -1, steps)
            spiked = s != 0
            nl.spike_map += spiked.sum(dim=(0, 2)).cpu().numpy().astype(np.int64)
            nl.spikes += float(spiked.sum())
            nl.updates += float(s.numel())
            # v is recorded after reset; a neuron that spiked had a voltage above threshold before it.
            nl.active_updates += float(((v != 0) | spiked).sum())
        for q in graph.projections:
            d = depth[q.target]
            k = c.projections[q.name]
            proj_ops[q.name] += [k[key][d:d + steps].sum() for key in ("input_spikes", "synops", "macs")]
        samples += int(x.shape[0])
        if progress is not None:
            progress.update(int(x.shape[0]))
    if not samples:
        raise InputError("no samples to count")
    layers = []
    for q in graph.projections:
        src = pops[q.source]
        fan = projection_fan_out(graph, q)
        events, synops, macs = (float(v) for v in proj_ops[q.name])
        layers.append(LayerCount(q.name, q.source, q.target, q.kind, None, not src.neuron.graded, src.size,
                                 int(fan.sum()),
                                 int(np.size(q.weight)), events, synops, macs))
    return ActivityCounts("sim", samples, steps, list(neuron.values()), layers)
