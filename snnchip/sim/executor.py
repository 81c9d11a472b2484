"""Run a graph (`snnchip.graph.Graph`) on a batch: float, or Lava-exact fixed point.

`simulate(graph, x)` (or `Simulator(graph).run(x)`, which builds the synapses once for many runs) follows the step
semantics of graph.py: populations in graph order, every projection read at `t - lag`, fan-in summed, ideal or
pipelined timing. Fixed-point graphs run Lava's integer arithmetic (`neurons.FixedCuba`, `synapses.Synapse`) and
give the same integers as Lava's CPU simulation.

Two engines compute the same integers. 'steps' runs every population at every step, as the semantics read (any
graph). 'layers' runs one population at a time over a chunk of steps: the synapses of all those steps in one
batched operation (skipping steps where the source is silent), then the neuron recurrence in a compiled kernel.
It needs a fixed-point graph without recurrent projections and removes most per-step Python and torch overhead.

Periodic state reset (netx's `reset_interval` / `reset_offset`, lava.proc.io.reset): population p's u and v are
zeroed at the start of every step t with (t - offset_p) % reset_interval == 0, offset_p defaulting to p's depth
(steps from the input), so that consecutive samples of `reset_interval` steps stream through a pipelined network.
Synaptic and delay buffers are not reset (as in Lava).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import numpy as np
import torch

from ..errors import InputError
from ..graph import Graph
from ..loihi import INT64_MAX
from ..resources import check_memory
from .counters import CounterRecorder, Counters
from .neurons import SPIKE_DTYPE, neuron_update
from .synapses import FLOAT32_EXACT, SharedSource, Synapse, share_sources

QUANTITIES = ("spikes", "u", "v", "residue", "error")
EXTRA_STATES = ("residue", "error")          # sigma-delta populations only (sim/sdnn.py)


@dataclass
class SimResult:
    """What a simulation produced; every tensor is `[N, *shape, T]` on the simulation's device.

    spikes/u/v: recorded populations (spikes: 0/1, or the payload of a graded relay or a sigma-delta neuron; a
    sigma-delta population records sigma as u and its activation as v, and its residue and error under those
    names, see sim/sdnn.py). outputs: the voltage (sigma-delta: activation, or sigma) of every output population (fixed point: raw 24-bit integers; divide by `Population.scale` for float units).
    counters: activity counts (see `snnchip.sim.counters`), None if counting was off.
    Fixed-point results are int64 tensors.
    """
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    u: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)
    residue: dict[str, torch.Tensor] = field(default_factory=dict)
    error: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    counters: Optional[Counters] = None

    @property
    def output(self) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        """The readout voltage of the output population, or a dict name -> voltage if there are several."""
        if len(self.outputs) == 1:
            return next(iter(self.outputs.values()))
        return self.outputs


def _parse_record(graph: Graph, record) -> tuple[set[str], set[str]]:
    """record: quantities ('spikes', 'u', 'v'; 'residue', 'error', recorded for sigma-delta populations only)
    and/or population names. Names alone record spikes;
    quantities alone record every population."""
    if isinstance(record, str):
        record = (record,)
    names = {pop.name for pop in graph.populations}
    quantities = {r for r in record if r in QUANTITIES}
    pops = {r for r in record if r not in QUANTITIES}
    unknown = pops - names
    if unknown:
        raise InputError(f"record: no population named {sorted(unknown)[0]!r} (known: {', '.join(sorted(names))})")
    if pops and not quantities:
        quantities = {"spikes"}
    if quantities and not pops:
        pops = names
    return quantities, pops


def _inputs(graph: Graph, x, dtype, device) -> tuple[dict[str, torch.Tensor], dict[str, float], int, int]:
    """The inputs as time-major `[T, N, size]` tensors on `device` (fixed point: exact integers in float32 when
    below 2**24, else float64), their largest magnitudes, N and T."""
    inputs = graph.inputs
    if not inputs:
        raise InputError("the graph has no input population")
    if not isinstance(x, Mapping):
        if len(inputs) != 1:
            raise InputError(f"the graph has {len(inputs)} input populations; pass a dict name -> tensor")
        x = {inputs[0].name: x}
    missing = {pop.name for pop in inputs} - set(x)
    extra = set(x) - {pop.name for pop in inputs}
    if missing or extra:
        raise InputError(f"inputs given for {sorted(x)}, but the graph's input populations are "
                         f"{[pop.name for pop in inputs]}")
    out, peaks, batch, steps = {}, {}, None, None
    for pop in inputs:
        value = torch.as_tensor(np.asarray(x[pop.name]) if not isinstance(x[pop.name], torch.Tensor)
                                else x[pop.name])
        if value.ndim != len(pop.shape) + 2 or tuple(value.shape[1:-1]) != tuple(pop.shape):
            raise InputError(f"input '{pop.name}' has shape {tuple(value.shape)}, expected "
                             f"[N, {', '.join(map(str, pop.shape))}, T]")
        if batch is None:
            batch, steps = value.shape[0], value.shape[-1]
        elif (value.shape[0], value.shape[-1]) != (batch, steps):
            raise InputError(f"input '{pop.name}' has N={value.shape[0]}, T={value.shape[-1]}; "
                             f"other inputs have N={batch}, T={steps}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InputError(f"input '{pop.name}' holds NaN or infinite values")
        if graph.fixed and value.is_floating_point() and not torch.equal(value, value.round()):
            raise InputError(f"input '{pop.name}': a fixed-point graph takes integer inputs")
        low, high = torch.aminmax(value) if value.numel() else (torch.tensor(0), torch.tensor(0))
        peaks[pop.name] = max(-float(low), float(high))
        if graph.fixed:
            if peaks[pop.name] >= 2 ** 53:
                raise InputError(f"input '{pop.name}': values beyond 2**53 cannot be simulated exactly")
            # integers, exactly (see neurons.py)
            value_dtype = torch.float32 if peaks[pop.name] < FLOAT32_EXACT else torch.float64
        else:
            value_dtype = dtype
        out[pop.name] = value.reshape(batch, pop.size, steps).permute(2, 0, 1).to(
            device=device, dtype=value_dtype, memory_format=torch.contiguous_format)
    return out, peaks, batch, steps


def _float_dtype(graph: Graph) -> torch.dtype:
    dtypes = [np.asarray(q.weight).dtype for q in graph.projections]
    return torch.float64 if dtypes and all(d == np.float64 for d in dtypes) else torch.float32


def _reset_offsets(graph: Graph, reset_offset) -> dict[str, int]:
    depth = graph.depths()
    if reset_offset is None or isinstance(reset_offset, (int, np.integer)):
        shift = int(reset_offset or 0)
        return {name: d + shift for name, d in depth.items()}
    unknown = set(reset_offset) - set(depth)
    if unknown:
        raise InputError(f"reset_offset names unknown population {sorted(unknown)[0]!r}")
    return {name: int(reset_offset.get(name, d)) for name, d in depth.items()}


def layerable(graph: Graph) -> bool:
    """True if `graph` can run one population at a time over many steps: fixed point, CUBA neurons with one du
    and dv each (sigma-delta neurons and per-neuron decays run step by step), and every projection's source comes
    before its target (no recurrence)."""
    index = {pop.name: i for i, pop in enumerate(graph.populations)}
    return graph.fixed and all(index[q.source] < index[q.target] for q in graph.projections) \
        and not any(pop.neuron.sigma_delta or np.ndim(pop.neuron.du) or np.ndim(pop.neuron.dv)
                    for pop in graph.populations)


@dataclass
class _Run:
    """Everything both engines share: the validated inputs, the ready synapses and neuron updates, what to
    record, and where traces go (chunks `[K, N, size]`, time first, concatenated at the end)."""
    graph: Graph
    device: torch.device
    batch: int
    steps: int
    state_dtype: torch.dtype
    ext: dict[str, torch.Tensor]                  # input name -> [T, N, size]
    into: dict[str, list[Synapse]]
    shared: dict[tuple[str, int], SharedSource]   # (projection, delay group) -> the one operation it shares
    updates: dict
    reset_interval: Optional[int]
    offsets: dict[str, int]
    quantities: set[str]
    rec_pops: set[str]
    counter: Optional[CounterRecorder]
    traces: dict[str, dict[str, list]] = field(default_factory=dict)
    out_v: dict[str, list] = field(default_factory=dict)

    def keep(self, name: str, out, u, v, *extra) -> None:
        """Store the chunk `[K, N, size]` of a population's outputs and states (u, v, and a sigma-delta
        population's residue and error) where recorded."""
        if name in self.rec_pops:
            for q, value in (("spikes", out), ("u", u), ("v", v), *zip(EXTRA_STATES, extra)):
                if q in self.quantities:
                    self.traces[q][name].append(value)
        if name in self.out_v:
            self.out_v[name].append(v)


def _bucket(peak: float) -> float:
    """An input's peak rounded up to a power of two: the bounds derived from it stay valid (exactness only needs
    an upper bound) and a Simulator reuses its synapses across batches with similar peaks."""
    return 0.0 if peak <= 0 else 2.0 ** math.ceil(math.log2(peak))


class Simulator:
    """A graph made ready to run: synapses and neuron updates are built once (per input range) and reused by
    every `run`. `device`: torch device; `compile`: see `simulate`."""

    def __init__(self, graph: Graph, device="cpu", compile: bool = False) -> None:
        graph.validate()
        self.graph, self.device, self.compile = graph, torch.device(device), compile
        self.dtype = _float_dtype(graph)
        self._graded_sources = {q.name: graph.population(q.source).neuron.sends_payloads
                                for q in graph.projections}
        self._built: dict[tuple, tuple] = {}

    def _build(self, peaks: dict[str, float]) -> tuple[dict[str, list[Synapse]], dict, dict]:
        """Synapses into each population, each population's update and the delay groups that share one
        operation (`synapses.share_sources`, used by the layers engine), for inputs of at most `peaks`."""
        graph, dtype, device = self.graph, self.dtype, self.device
        bounds = {pop.name: _bucket(peaks[pop.name]) for pop in graph.inputs}
        key = tuple(bounds[pop.name] for pop in graph.inputs)
        if key in self._built:
            return self._built[key]
        # bounds: the largest |synaptic input| of each population, in graph order, so that a graded relay's
        # payload bound is known to the synapses leaving it (a later source's is not: inf)
        into, out_bound, updates = {}, {}, {}
        for pop in graph.populations:
            into[pop.name] = [Synapse(graph, q, dtype, device, out_bound.get(q.source, float("inf")))
                              for q in graph.into(pop.name)]
            if pop.name not in bounds:
                bounds[pop.name] = sum(syn.bound + len(syn.groups) for syn in into[pop.name])
            updates[pop.name] = neuron_update(pop, graph.fixed, dtype, device, bounds[pop.name], self.compile)
            out_bound[pop.name] = bounds[pop.name] if pop.neuron.graded else \
                updates[pop.name].out_bound() if pop.neuron.sigma_delta else 1.0
        shared = share_sources([syn for syns in into.values() for syn in syns])
        self._built[key] = into, updates, shared
        return into, updates, shared

    def run(self, x, *, record=(), reset_interval: Optional[int] = None,
            reset_offset: Union[None, int, Mapping[str, int]] = None, count: bool = True, engine: str = "auto",
            chunk_steps: Optional[int] = None) -> SimResult:
        """Simulate on `x`; arguments as `simulate`."""
        graph, device = self.graph, self.device
        if engine not in ("auto", "layers", "steps"):
            raise InputError(f"engine must be 'auto', 'layers' or 'steps', got {engine!r}")
        if engine == "layers" and not layerable(graph):
            raise InputError("engine 'layers' needs a fixed-point graph without recurrent projections")
        ext, peaks, batch, steps = _inputs(graph, x, self.dtype, device)
        quantities, rec_pops = _parse_record(graph, record)
        for what, value in (("reset_interval", reset_interval), ("chunk_steps", chunk_steps)):
            if value is not None and not 1 <= int(value) <= INT64_MAX:
                raise InputError(f"{what} must be a positive number of steps within 64 bits, got {value}")
        if isinstance(reset_offset, int) and abs(reset_offset) > INT64_MAX:
            raise InputError(f"reset_offset {reset_offset} is beyond 64-bit integers")
        # every recorded quantity, the output voltages and (with counters) the per-step counts: int64/float64 each
        traced = sum(graph.population(name).size for name in rec_pops) * len(quantities)
        traced += sum(pop.size for pop in graph.outputs) + (2 * len(size_of(graph)) if count else 0)
        check_memory(2 * 8 * batch * steps * traced, f"simulating {batch} x {steps} steps with these records")
        offsets = _reset_offsets(graph, reset_offset) if reset_interval else {}
        into, updates, shared = self._build(peaks)
        size = size_of(graph)
        counter = CounterRecorder(batch, steps, size, self._graded_sources, device) if count else None
        run = _Run(graph, device, batch, steps, torch.float64 if graph.fixed else self.dtype, ext, into, shared,
                   updates, int(reset_interval) if reset_interval else None, offsets, quantities, rec_pops, counter,
                   traces={q: {name: [] for name in rec_pops
                               if q not in EXTRA_STATES or graph.population(name).neuron.sigma_delta}
                           for q in quantities},
                   out_v={pop.name: [] for pop in graph.outputs})
        if engine == "steps" or not layerable(graph):
            _run_steps(run)
        else:
            # chunks of about 2**22 values per [K, N, size] tensor (16 MB of spikes): larger ones measured slower
            chunk = int(chunk_steps) if chunk_steps else max(1, min(steps, (1 << 22) // (batch * max(size.values()))))
            _run_layers(run, chunk)

        def stacked(name, chunks):
            out = torch.cat(chunks).permute(1, 2, 0).reshape(batch, *graph.population(name).shape, steps)
            return out.to(torch.int64) if graph.fixed else out

        result = SimResult(outputs={name: stacked(name, vals) for name, vals in run.out_v.items()},
                           counters=counter.result() if count else None)
        for q in quantities:
            setattr(result, q, {name: stacked(name, vals) for name, vals in run.traces[q].items()})
        return result


def size_of(graph: Graph) -> dict[str, int]:
    """Neurons per population."""
    return {pop.name: pop.size for pop in graph.populations}


def simulate(graph: Graph, x, *, record=(), device="cpu", reset_interval: Optional[int] = None,
             reset_offset: Union[None, int, Mapping[str, int]] = None, count: bool = True,
             compile: bool = False, engine: str = "auto", chunk_steps: Optional[int] = None) -> SimResult:
    """Simulate `graph` on `x` (`[N, *input_shape, T]`, or a dict input name -> tensor) as one raw stream,
    exactly as given: no padding for a pipelined graph's latency, no reset unless `reset_interval` says so. To
    classify whole samples (padding and per-depth reset, each sample as if alone) use `samples.run_samples`.

    Float graphs run in float64 if every weight is float64, else float32; fixed graphs take integer inputs
    (spikes, or graded payloads) and run in Lava's integer arithmetic. `record`: see `_parse_record`.
    `reset_interval`/`reset_offset`: periodic state reset (module docstring); an int offset shifts every
    population's depth, a dict sets offsets by name. `count`: collect activity counters.
    `engine`: 'layers', 'steps' (module docstring) or 'auto' ('layers' where it applies); `chunk_steps`: the
    layers engine's steps per chunk (default: about 2**22 values per `[K, N, size]` tensor).
    `compile`: fuse each step-by-step fixed-point neuron update into one torch.compile kernel (same integers; a
    one-off compilation of tens of seconds; used by the steps engine, and by the layers engine off the CPU).
    Raises ValueError (one line) for a malformed graph or input.
    """
    return Simulator(graph, device, compile).run(x, record=record, reset_interval=reset_interval,
                                                 reset_offset=reset_offset, count=count, engine=engine,
                                                 chunk_steps=chunk_steps)


def _run_layers(run: _Run, chunk: int) -> None:
    """Time-batched engine: for each chunk of steps, each population in graph order takes its sources' outputs
    over the whole chunk (earlier steps from a short history), computes its synaptic input in one batched
    operation per delay group, skipping steps where the source is silent, then runs its neuron recurrence.
    Delay groups that share a source and geometry (`run.shared`) take their part of one operation per chunk,
    computed when the first of them is needed."""
    graph, batch, device, count = run.graph, run.batch, run.device, run.counter is not None
    on_cpu = _cpu_paths(device)
    depth = _max_lags(run)      # steps of history each source must keep
    # outputs: spikes (0/1) in float32, relays' payloads in float64 (exact integers either way)
    out_dtype = {pop.name: torch.float64 if pop.neuron.graded else SPIKE_DTYPE for pop in graph.populations}
    u = {pop.name: torch.zeros(batch, pop.size, dtype=run.state_dtype, device=device) for pop in graph.populations}
    v = {name: state.clone() for name, state in u.items()}
    history = {pop.name: torch.zeros(depth[pop.name], batch, pop.size, dtype=out_dtype[pop.name], device=device)
               for pop in graph.populations}
    history_fired = {name: torch.zeros(depth[name], batch, dtype=torch.float64, device=device) for name in depth}
    # synaptic inputs: float32 where every sum is an integer below 2**24 (exact; half the memory traffic)
    acc_dtype = {name: torch.float32 if update.input_bound < FLOAT32_EXACT else torch.float64
                 for name, update in run.updates.items()}
    for t0 in range(0, run.steps, chunk):
        k = min(chunk, run.steps - t0)
        steps = slice(t0, t0 + k)
        seqs, fired = {}, {}    # per population: outputs [depth + k, N, S], non-zero outputs [depth + k, N]
        windows = {}            # id(SharedSource) -> its raw sums over this chunk's window (see _shared_window)
        for pop in graph.populations:
            name = pop.name
            events = 0
            if pop.is_input:
                a = run.ext[name][t0:t0 + k]
                if count:
                    events = (a != 0).sum(dim=(1, 2)).to(torch.float64)
            else:
                a = None
                for syn in run.into[name]:
                    past = depth[syn.source]
                    for i, (lag, _, _) in enumerate(syn.groups):
                        x = seqs[syn.source][past - lag:past - lag + k]
                        if count:
                            ev, ops = syn.counts(i, x)
                            run.counter.projection(syn.name, steps, ev, ops)
                            events = events + ev
                        shared = run.shared.get((syn.name, i))
                        if shared is not None:
                            if id(shared) not in windows:
                                windows[id(shared)] = _shared_window(shared, seqs[syn.source], fired[syn.source],
                                                                     past, k, on_cpu)
                            a = _accumulate_shared(a, shared, syn, i, windows[id(shared)], shared.max_lag - lag, k,
                                                   acc_dtype[name])
                            continue
                        active = fired[syn.source][past - lag:past - lag + k] > 0 if on_cpu else None
                        a = _accumulate(a, syn, i, x, active, acc_dtype[name])
                if a is None:
                    a = torch.zeros(k, batch, pop.size, dtype=acc_dtype[name], device=device)
            past = depth[name]
            seq = torch.empty(past + k, batch, pop.size, dtype=out_dtype[name], device=device)
            seq[:past] = history[name]
            u[name], v[name], us, vs, fired_now = run.updates[name].scan(
                a, u[name], v[name], t0, run.reset_interval or 0, run.offsets.get(name, 0),
                name in run.out_v or (name in run.rec_pops and bool(run.quantities & {"u", "v"})), on_cpu,
                out=seq[past:])
            seqs[name], fired[name] = seq, torch.cat([history_fired[name], fired_now])
            if count:
                run.counter.population(name, steps, events, fired_now.sum(dim=1))
            run.keep(name, seq[past:], us, vs)
        for name, past in depth.items():
            history[name], history_fired[name] = seqs[name][k:], fired[name][k:]


def _max_lags(run: _Run) -> dict[str, int]:
    """Per population, the largest lag at which any projection reads its outputs (0 if none does)."""
    lags = {name: 0 for name in run.into}
    for syns in run.into.values():
        for syn in syns:
            lags[syn.source] = max(lags[syn.source], syn.max_lag)
    return lags


def _cpu_paths(device: torch.device) -> bool:
    """Whether the layers engine takes its CPU paths (the numba kernel, skipping silent steps) or its device
    paths (a loop of torch steps, every step computed): a GPU would synchronise to find silent steps."""
    return device.type == "cpu"


def _accumulate(a: Optional[torch.Tensor], syn: Synapse, group: int, x: torch.Tensor, active,
                dtype: torch.dtype) -> Optional[torch.Tensor]:
    """a `[K, N, tgt]` (None: nothing yet) plus delay group `group`'s input from source outputs x `[K, N, src]`,
    in `dtype`. active: which (step, sample) rows have a non-zero source output (`[K, N]` bool), to compute only
    those; None computes every row (on a GPU, finding them would synchronise)."""
    k, n, _ = x.shape
    if active is not None:
        rows = active.reshape(-1).nonzero().squeeze(1)
        if len(rows) == 0:
            return a
        if len(rows) < k * n:
            y = syn.contribution(group, x.reshape(k * n, -1)[rows])
            if a is None:
                a = torch.zeros(k, n, y.shape[1], dtype=dtype, device=x.device)
            a.view(k * n, -1).index_add_(0, rows, y.to(dtype))
            return a
    y = syn.contribution(group, x.reshape(k * n, -1)).view(k, n, -1)
    if a is None:
        return y.to(dtype)
    return a.add_(y)


def _shared_window(shared: SharedSource, seq: torch.Tensor, fired: torch.Tensor, past: int, k: int,
                   on_cpu: bool) -> Optional[torch.Tensor]:
    """The stacked raw sums `[W, N, C_stack, *out_spatial]` of `shared` over the source's outputs of the chunk's
    window: the W = k + max_lag - min_lag steps from `past - max_lag` (seq `[past + k, N, src]`, fired its non-zero
    counts `[past + k, N]`), silent rows skipped on the CPU; None if every row is silent."""
    lo, hi = past - shared.max_lag, past - shared.min_lag + k
    x = seq[lo:hi]
    w, n = x.shape[:2]
    flat = x.reshape(w * n, -1)
    if on_cpu:
        rows = (fired[lo:hi] > 0).reshape(-1).nonzero().squeeze(1)
        if len(rows) == 0:
            return None
        if len(rows) < w * n:
            part = shared.apply(flat[rows])
            raw = torch.zeros(w * n, *part.shape[1:], dtype=part.dtype, device=x.device)
            raw.index_copy_(0, rows, part)
            return raw.view(w, n, *part.shape[1:])
    raw = shared.apply(flat)
    return raw.view(w, n, *raw.shape[1:])


def _accumulate_shared(a: Optional[torch.Tensor], shared: SharedSource, syn: Synapse, group: int,
                       window: Optional[torch.Tensor], offset: int, k: int,
                       dtype: torch.dtype) -> Optional[torch.Tensor]:
    """a `[K, N, tgt]` (None: nothing yet) plus delay group `group` of syn, read from its SharedSource's `window`
    at the rows `offset .. offset + k` (its lag), in `dtype`."""
    if window is None:
        return a
    n = window.shape[1]
    y = shared.member_part(syn, group, window[offset:offset + k].reshape(k * n, *window.shape[2:])).view(k, n, -1)
    if a is None:
        return y.to(dtype, copy=True)     # a copy: y may be a view of the window, which other members read
    return a.add_(y)


def _run_steps(run: _Run) -> None:
    """Step-by-step engine (graph.py's semantics as written): every population in graph order at every step,
    each projection reading its source's output `lag` steps back."""
    graph, batch, count = run.graph, run.batch, run.counter is not None
    history_len = {name: lag + 1 for name, lag in _max_lags(run).items()}
    # outputs of the last steps, None where all zero: silent sources (pipeline fill and drain, quiet layers) then
    # cost one check per population instead of one sum per projection; on a GPU the check would synchronise
    history = {name: [None] * n for name, n in history_len.items()}
    skip_silent = _cpu_paths(run.device)
    # states are replaced, never written in place, so zeros can be shared; u, v and a get distinct ones (a
    # compiled kernel specialises on aliased arguments)
    def fresh(pop):
        return torch.zeros(batch, pop.size, dtype=run.state_dtype, device=run.device)
    # per population: its states (u, v; a sigma-delta population's sigma, act, residue, error)
    zeros = {pop.name: tuple(fresh(pop) for _ in range(getattr(run.updates[pop.name], "num_states", 2)))
             for pop in graph.populations}
    zeros_a = {pop.name: fresh(pop) for pop in graph.populations}
    state = dict(zeros)
    for t in range(run.steps):
        for pop in graph.populations:
            name = pop.name
            if run.reset_interval and (t - run.offsets[name]) % run.reset_interval == 0:
                state[name] = zeros[name]
            events = 0
            if pop.is_input:
                a = run.ext[name][t]
                if count:
                    events = (a != 0).sum()
            else:
                a = None
                for syn in run.into[name]:
                    for i, (lag, _, _) in enumerate(syn.groups):
                        x = history[syn.source][(t - lag) % history_len[syn.source]] if t >= lag else None
                        if x is None:
                            continue
                        if count:
                            ev, ops = syn.counts(i, x[None])
                            run.counter.projection(syn.name, slice(t, t + 1), ev, ops)
                            events = events + ev
                        contrib = syn.contribution(i, x)
                        # fixed point: two exact float32 sums need not add exactly in float32
                        a = contrib if a is None else (a.to(run.state_dtype) if graph.fixed else a) + contrib
                if a is None:
                    a = zeros_a[name]
                elif pop.neuron.graded:
                    a = a.to(run.state_dtype)
            *new, out = run.updates[name].step(*state[name], a)
            state[name] = tuple(new)
            history[name][t % history_len[name]] = out if not skip_silent or bool(out.any()) else None
            if count:
                run.counter.population(name, slice(t, t + 1), events, (out != 0).sum())
            run.keep(name, out[None], *(s[None] for s in new))
