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

from .. import loihi
from ..errors import InputError
from .flops import LayerTracer, SynapticLayer, synaptic_layers
from .neurobench import FLOAT_BYTES, effective_fan_out


@dataclass
class NeuronLayerCount:
    """Totals over all samples and steps. spike_map: spikes per neuron `[*shape]` (for comparisons).
    membrane_updates: NeuroBench's count (every neuron at the first step, then each neuron-step whose membrane
    after reset changed); spiking: the layer emits spikes (NeuroBench's ActivationSparsity counts it)."""
    name: str
    shape: tuple
    spikes: float = 0.0
    updates: float = 0.0
    active_updates: float = 0.0
    spike_map: Optional[np.ndarray] = None
    membrane_updates: float = 0.0
    spiking: bool = True

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
    synapses: int         # multiply-accumulates of one frame as a dense ANN (padding taps included)
    params: int
    events: float = 0.0   # non-zero inputs that arrived (spikes or graded payloads)
    synops: float = 0.0
    macs: float = 0.0
    real_synapses: int = 0        # connections that exist (no padding taps), one frame
    effective_ops: float = 0.0    # non-zero input x non-zero weight pairs (NeuroBench's effective count)
    payload_bits: float = 0.0     # graded events x the projection's message bits (0 for binary spikes)
    weights: int = 0
    zero_weights: int = 0


@dataclass
class ActivityCounts:
    """What a network did on `samples` samples of `steps` time steps each (sums, not means)."""
    origin: str           # 'model' (float model in training) or 'sim' (simulator counters)
    samples: int
    steps: int
    neuron_layers: list[NeuronLayerCount] = field(default_factory=list)
    layers: list[LayerCount] = field(default_factory=list)
    parameters: int = 0           # weights and biases (NeuroBench's ParameterCount)
    footprint_bytes: int = 0      # NeuroBench's Footprint (see footprint_rule)
    footprint_rule: str = ""


def payload_bits(proj) -> int:
    """Bits of one graded event on `proj`: its message bits, or a relay's full payload width when it names none."""
    return int(proj.num_message_bits) or loihi.GRADED_BITS


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


def projection_ann_flops(graph, proj) -> int:
    """Multiply-accumulates of one frame of a graph projection as a dense ANN layer (fvcore's count, padding
    taps included): target neurons x (C_in / groups) x kH x kW for a conv, source x target for a dense one."""
    src, tgt = graph.population(proj.source), graph.population(proj.target)
    if proj.kind == "dense":
        return int(src.size * tgt.size)
    return int(tgt.size * int(np.prod(np.shape(proj.weight)[1:4])))


# -- the float model ------------------------------------------------------------------------------------
class _ModelActivity:
    """Hook callbacks accumulating non-zero input maps per layer and spike / activity maps per neuron layer."""

    def __init__(self) -> None:
        self.input_nz: dict[str, torch.Tensor] = {}
        self.spikes: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple] = {}
        self.updates: dict[str, float] = {}
        self.active: dict[str, float] = {}
        self.membrane: dict[str, float] = {}
        self.model_input_nz: Optional[torch.Tensor] = None
        self.input_binary = True          # every input value so far was 0 or 1 (then the input is spikes)

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
        active, changed = _membrane_updates(module.config, current, out)
        self.active[name] = self.active.get(name, 0.0) + float(active)
        self.membrane[name] = self.membrane.get(name, 0.0) + float(changed)


def _membrane_updates(cfg, current: torch.Tensor, spikes: torch.Tensor) -> tuple[int, int]:
    """(neuron-steps whose voltage before reset is non-zero, NeuroBench's membrane updates: every neuron at the
    first step, then each neuron-step whose membrane after reset changed): h = decay u[t-1] + I[t], u after
    the model's own spikes and the configured reset (docs/model-contract.md)."""
    u = torch.zeros_like(current[..., 0])
    active, changed = 0, int(u.numel())
    for t in range(current.shape[-1]):
        h = cfg.decay * u + current[..., t]
        o = spikes[..., t].bool()
        active += int((h != 0).sum())
        if cfg.reset == "hard":
            new = torch.where(o, torch.full_like(h, cfg.reset_value), h)
        elif cfg.reset == "soft":
            new = h - o.to(h.dtype) * cfg.spike_value
        else:
            new = h
        if t:
            changed += int((new != u).sum())
        u = new
    return active, changed


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
            activity.input_binary &= bool(torch.all((x == 0) | (x == 1)))
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
                             activity.active[name], s.numpy().astype(np.int64), activity.membrane[name])
            for name, s in activity.spikes.items()]


def count_model(model, batches: Iterable[torch.Tensor], input_shape: tuple, progress=None) -> ActivityCounts:
    """Counts of the float model on its own structure (see module docstring); `input_shape` `(C, H, W)`."""
    layers = synaptic_layers(model, input_shape)
    activity, samples, steps = run_model(model, batches, progress)
    neurons = _neuron_layers(activity)
    sizes = {n.name: n.neurons for n in neurons}
    modules = dict(model.named_modules())
    counts = []
    for layer in layers:
        fan = layer_fan_out(layer)
        weight = modules[layer.name].weight.detach().cpu().numpy()
        weight = weight.reshape(weight.shape[:4]) if layer.kind == "conv" else weight.reshape(weight.shape[:2])
        if layer.role == "fc":
            # the head's global average pool is folded in: a spike of channel c reaches the FC's column c
            spikes = activity.spikes[layer.source] if layer.source in activity.spikes else None
            nz = 0.0 if spikes is None else spikes.sum().item()
            ops, events = nz * fan.reshape(-1)[0], nz
            per_channel = np.zeros(weight.shape[1]) if spikes is None else \
                spikes.reshape(weight.shape[1], -1).sum(dim=1).numpy()
            effective = float(per_channel @ (weight != 0).sum(axis=0))
            real = int(np.prod(weight.shape))
        else:
            nz = activity.input_nz[layer.name].numpy()
            ops, events = float((nz * fan).sum()), float(nz.sum())
            eff = effective_fan_out(weight, layer.kind, layer.in_shape, layer.stride, layer.padding,
                                    layer.dilation, layer.groups, layer.out_shape)
            effective = float(nz.reshape(-1) @ eff)
            real = int(fan.sum())
        # one convention with the deployed graph: binary spikes are accumulated, graded inputs multiplied
        spike_driven = layer.spike_driven or (layer.source == "input" and activity.input_binary)
        src_neurons = sizes.get(layer.source, int(np.prod(layer.in_shape)))
        counts.append(LayerCount(layer.name, layer.source, None, layer.kind, layer.role, spike_driven,
                                 src_neurons, layer.ann_flops, layer.params, events,
                                 synops=ops if spike_driven else 0.0, macs=0.0 if spike_driven else ops,
                                 real_synapses=real, effective_ops=effective, weights=int(weight.size),
                                 zero_weights=int(np.sum(weight == 0))))
    params = sum(int(p.numel()) for p in model.parameters())
    footprint = sum(int(t.numel()) * (FLOAT_BYTES if t.is_floating_point() else t.element_size())
                    for t in list(model.parameters()) + list(model.buffers()))
    return ActivityCounts("model", samples, steps, neurons, counts, parameters=params, footprint_bytes=footprint,
                          footprint_rule="the model's parameters and buffers, floating point at 4 bytes (float32, "
                                         "as trained)")


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
        graded = src.neuron.sends_payloads
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
    neuron = {p.name: NeuronLayerCount(p.name, tuple(p.shape), spike_map=np.zeros(p.size, dtype=np.int64),
                                       spiking=(p.neuron.threshold is not None and not p.neuron.graded)
                                       or p.neuron.sigma_delta)
              for p in graph.populations if not p.is_input}
    if len(graph.inputs) != 1:
        raise InputError(f"counting needs a graph with one input population, this one has {len(graph.inputs)}")
    source_of_input = graph.inputs[0].name
    input_map = np.zeros(graph.inputs[0].size, dtype=np.int64)     # non-zero inputs per input neuron
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
        input_map += (x != 0).reshape(x.shape[0], -1, steps).sum(dim=(0, 2)).cpu().numpy()
        for name, nl in neuron.items():
            s = run.window("spikes", name).reshape(x.shape[0], -1, steps)
            v = run.window("v", name).reshape(x.shape[0], -1, steps)
            spiked = s != 0
            nl.spike_map += spiked.sum(dim=(0, 2)).cpu().numpy().astype(np.int64)
            nl.spikes += float(spiked.sum())
            nl.updates += float(s.numel())
            # v is recorded after reset; a neuron that spiked had a voltage above threshold before it.
            nl.active_updates += float(((v != 0) | spiked).sum())
            if not pops[name].neuron.graded:       # a relay has no membrane
                nl.membrane_updates += float(v[..., 0].numel() + (v[..., 1:] != v[..., :-1]).sum())
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
        src, tgt = pops[q.source], pops[q.target]
        fan = projection_fan_out(graph, q)
        events, synops, macs = (float(v) for v in proj_ops[q.name])
        event_map = input_map if q.source == source_of_input else neuron[q.source].spike_map
        effective = effective_fan_out(q.weight, q.kind, src.shape, q.stride, q.padding, q.dilation, q.groups,
                                      tgt.shape)
        graded = src.neuron.sends_payloads
        layers.append(LayerCount(q.name, q.source, q.target, q.kind, None, not graded, src.size,
                                 projection_ann_flops(graph, q), int(np.size(q.weight)), events, synops, macs,
                                 real_synapses=int(fan.sum()), effective_ops=float(event_map @ effective),
                                 weights=int(np.size(q.weight)), zero_weights=int(np.sum(q.weight == 0)),
                                 payload_bits=events * payload_bits(q) if graded else 0.0))
    params = sum(int(np.size(q.weight)) for q in graph.projections) + \
        sum(int(np.size(p.bias)) for p in graph.populations if p.bias is not None)
    return ActivityCounts("sim", samples, steps, list(neuron.values()), layers, parameters=params,
                          footprint_bytes=params * FLOAT_BYTES,
                          footprint_rule="the graph's weights and population biases, 4 bytes each (float32)")
