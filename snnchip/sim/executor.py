"""Run a graph (`snnchip.graph.Graph`) step by step on a batch: float, or Lava-exact fixed point.

`simulate(graph, x)` follows the step semantics of graph.py: populations in graph order, every projection read at
`t - lag`, fan-in summed, ideal or pipelined timing. Fixed-point graphs run Lava's integer arithmetic
(`neurons.FixedCuba`, `synapses.Synapse`) and give the same integers as Lava's CPU simulation.

Periodic state reset (netx's `reset_interval` / `reset_offset`, lava.proc.io.reset): population p's u and v are
zeroed at the start of every step t with (t - offset_p) % reset_interval == 0, offset_p defaulting to p's depth
(steps from the input), so that consecutive samples of `reset_interval` steps stream through a pipelined network.
Synaptic and delay buffers are not reset (as in Lava).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import numpy as np
import torch

from ..graph import Graph
from .counters import CounterRecorder, Counters
from .neurons import neuron_update
from .synapses import Synapse

QUANTITIES = ("spikes", "u", "v")


@dataclass
class SimResult:
    """What a simulation produced; every tensor is `[N, *shape, T]` on the simulation's device.

    spikes/u/v: recorded populations (spikes: 0/1, or the payload of a graded relay). outputs: the voltage of
    every output population (fixed point: raw 24-bit integers; divide by `Population.scale` for float units).
    counters: activity counts (see `snnchip.sim.counters`), None if counting was off.
    Fixed-point results are int64 tensors.
    """
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    u: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    counters: Optional[Counters] = None

    @property
    def output(self) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        """The readout voltage of the output population, or a dict name -> voltage if there are several."""
        if len(self.outputs) == 1:
            return next(iter(self.outputs.values()))
        return self.outputs


def population_depths(graph: Graph) -> dict[str, int]:
    """Steps from the input to each population: `graph.meta['depth']` if present, else the longest-lag path."""
    given = graph.meta.get("depth") or {}
    depth: dict[str, int] = {}
    for pop in graph.populations:
        if pop.name in given:
            depth[pop.name] = int(given[pop.name])
            continue
        lags = [depth[q.source] + int(np.max(graph.lag(q))) for q in graph.into(pop.name) if q.source in depth]
        depth[pop.name] = max(lags) if lags else 0
    return depth


def _parse_record(graph: Graph, record) -> tuple[set[str], set[str]]:
    """record: quantities ('spikes', 'u', 'v') and/or population names. Names alone record spikes;
    quantities alone record every population."""
    if isinstance(record, str):
        record = (record,)
    names = {pop.name for pop in graph.populations}
    quantities = {r for r in record if r in QUANTITIES}
    pops = {r for r in record if r not in QUANTITIES}
    unknown = pops - names
    if unknown:
        raise ValueError(f"record: no population named {sorted(unknown)[0]!r} (known: {', '.join(sorted(names))})")
    if pops and not quantities:
        quantities = {"spikes"}
    if quantities and not pops:
        pops = names
    return quantities, pops


def _inputs(graph: Graph, x, dtype, device) -> tuple[dict[str, torch.Tensor], dict[str, float], int, int]:
    """The inputs as `[N, size, T]` tensors on `device`, their largest magnitudes, N and T."""
    inputs = graph.inputs
    if not inputs:
        raise ValueError("the graph has no input population")
    if not isinstance(x, Mapping):
        if len(inputs) != 1:
            raise ValueError(f"the graph has {len(inputs)} input populations; pass a dict name -> tensor")
        x = {inputs[0].name: x}
    missing = {pop.name for pop in inputs} - set(x)
    extra = set(x) - {pop.name for pop in inputs}
    if missing or extra:
        raise ValueError(f"inputs given for {sorted(x)}, but the graph's input populations are "
                         f"{[pop.name for pop in inputs]}")
    out, peaks, batch, steps = {}, {}, None, None
    for pop in inputs:
        value = torch.as_tensor(np.asarray(x[pop.name]) if not isinstance(x[pop.name], torch.Tensor)
                                else x[pop.name])
        if value.ndim != len(pop.shape) + 2 or tuple(value.shape[1:-1]) != tuple(pop.shape):
            raise ValueError(f"input '{pop.name}' has shape {tuple(value.shape)}, expected "
                             f"[N, {', '.join(map(str, pop.shape))}, T]")
        if batch is None:
            batch, steps = value.shape[0], value.shape[-1]
        elif (value.shape[0], value.shape[-1]) != (batch, steps):
            raise ValueError(f"input '{pop.name}' has N={value.shape[0]}, T={value.shape[-1]}; "
                             f"other inputs have N={batch}, T={steps}")
        peaks[pop.name] = float(value.abs().max()) if value.numel() else 0.0
        if graph.fixed:
            if value.is_floating_point():
                if not bool(torch.isfinite(value).all()) or not torch.equal(value, value.round()):
                    raise ValueError(f"input '{pop.name}': a fixed-point graph takes integer inputs")
            if peaks[pop.name] >= 2 ** 53:
                raise ValueError(f"input '{pop.name}': values beyond 2**53 cannot be simulated exactly")
            value = value.to(torch.float64)     # integers, exactly (see neurons.py)
        else:
            value = value.to(dtype)
        out[pop.name] = value.to(device).reshape(batch, pop.size, steps)
    return out, peaks, batch, steps


def _float_dtype(graph: Graph) -> torch.dtype:
    dtypes = [np.asarray(q.weight).dtype for q in graph.projections]
    return torch.float64 if dtypes and all(d == np.float64 for d in dtypes) else torch.float32


def _reset_offsets(graph: Graph, reset_offset) -> dict[str, int]:
    depth = population_depths(graph)
    if reset_offset is None or isinstance(reset_offset, (int, np.integer)):
        shift = int(reset_offset or 0)
        return {name: d + shift for name, d in depth.items()}
    unknown = set(reset_offset) - set(depth)
    if unknown:
        raise ValueError(f"reset_offset names unknown population {sorted(unknown)[0]!r}")
    return {name: int(reset_offset.get(name, d)) for name, d in depth.items()}


def simulate(graph: Graph, x, *, record=(), device="cpu", reset_interval: Optional[int] = None,
             reset_offset: Union[None, int, Mapping[str, int]] = None, count: bool = True,
             compile: bool = False) -> SimResult:
    """Simulate `graph` on `x` (`[N, *input_shape, T]`, or a dict input name -> tensor).

    Float graphs run in float64 if every weight is float64, else float32; fixed graphs take integer inputs
    (spikes, or graded payloads) and run in Lava's integer arithmetic. `record`: see `_parse_record`.
    `reset_interval`/`reset_offset`: periodic state reset (module docstring); an int offset shifts every
    population's depth, a dict sets offsets by name. `count`: collect activity counters. `compile`: fuse each
    fixed-point neuron update into one torch.compile kernel (same integers; a one-off compilation of tens of
    seconds, worth it for long runs).
    Raises ValueError (one line) for a malformed graph or input.
    """
    graph.validate()
    device = torch.device(device)
    dtype = _float_dtype(graph)
    ext, bounds, batch, steps = _inputs(graph, x, dtype, device)
    quantities, rec_pops = _parse_record(graph, record)
    if reset_interval is not None and int(reset_interval) < 1:
        raise ValueError(f"reset_interval must be a positive number of steps, got {reset_interval}")
    offsets = _reset_offsets(graph, reset_offset) if reset_interval else {}

    state_dtype = torch.float64 if graph.fixed else dtype
    # bounds: the largest |synaptic input| of each population (inputs: the data's peak), in graph order, so that
    # a graded relay's payload bound is known to the synapses leaving it (a later source's is not: inf)
    into, out_bound = {}, {}
    for pop in graph.populations:
        into[pop.name] = [Synapse(graph, q, dtype, device, out_bound.get(q.source, float("inf")))
                          for q in graph.into(pop.name)]
        if pop.name not in bounds:
            bounds[pop.name] = sum(syn.bound + len(syn.groups) for syn in into[pop.name])
        out_bound[pop.name] = bounds[pop.name] if pop.neuron.graded else 1.0
    synapses = [syn for pop in graph.populations for syn in into[pop.name]]
    updates = {pop.name: neuron_update(pop, graph.fixed, dtype, device, bounds[pop.name], compile)
               for pop in graph.populations}
    history_len = {pop.name: 1 for pop in graph.populations}
    for syn in synapses:
        history_len[syn.source] = max(history_len[syn.source], syn.max_lag + 1)
    # outputs of the last steps, None where all zero: silent sources (pipeline fill and drain, quiet layers) then
    # cost one check per population instead of one sum per projection; on a GPU the check would synchronise
    history = {name: [None] * n for name, n in history_len.items()}
    skip_silent = device.type == "cpu"
    size = {pop.name: pop.size for pop in graph.populations}
    # states are replaced, never written in place, so zeros can be shared; u, v and a get distinct ones (a
    # compiled kernel specialises on aliased arguments)
    zeros = {q: {name: torch.zeros(batch, n, dtype=state_dtype, device=device) for name, n in size.items()}
             for q in "uva"}
    u, v = dict(zeros["u"]), dict(zeros["v"])
    traces = {q: {name: [] for name in rec_pops} for q in quantities}
    out_names = [pop.name for pop in graph.outputs]
    out_v = {name: [] for name in out_names}
    counter = CounterRecorder(batch, steps, size) if count else None

    for t in range(steps):
        for pop in graph.populations:
            name = pop.name
            if reset_interval and (t - offsets[name]) % reset_interval == 0:
                u[name], v[name] = zeros["u"][name], zeros["v"][name]
            if pop.is_input:
                a = ext[name][..., t]
                events = (a != 0).sum() if count else 0
            else:
                a, events = None, 0
                for syn in into[name]:
                    inputs = [history[syn.source][(t - lag) % history_len[syn.source]] if t >= lag else None
                              for lag, _, _ in syn.groups]
                    contrib, ev, ops = syn(inputs, count)
                    if count:
                        counter.projection(syn.name, ev, ops, syn.graded_input)
                        events = events + ev
                    if contrib is not None:
                        # fixed point: two exact float32 sums need not add exactly in float32
                        a = contrib if a is None else (a.to(state_dtype) if graph.fixed else a) + contrib
                if a is None:
                    a = zeros["a"][name]
                elif pop.neuron.graded:
                    a = a.to(state_dtype)
            u[name], v[name], out = updates[name].step(u[name], v[name], a)
            history[name][t % history_len[name]] = out if not skip_silent or bool(out.any()) else None
            if count:
                counter.population(name, events, (out != 0).sum())
            if name in rec_pops:
                for q, value in (("spikes", out), ("u", u[name]), ("v", v[name])):
                    if q in quantities:
                        traces[q][name].append(value)
            if name in out_v:
                out_v[name].append(v[name])

    def stacked(name, values):
        out = torch.stack(values, dim=-1).reshape(batch, *graph.population(name).shape, steps)
        return out.to(torch.int64) if graph.fixed else out

    result = SimResult(outputs={name: stacked(name, vals) for name, vals in out_v.items()},
                       counters=counter.result() if count else None)
    for q in quantities:
        setattr(result, q, {name: stacked(name, vals) for name, vals in traces[q].items()})
    return result
