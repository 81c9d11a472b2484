"""Run a graph on Lava's CPU simulator: samples streamed back to back, read out per sample.

`run_on_lava(graph, x)` builds the graph's Lava processes (`builder.build_lava`), injects the samples of `x`
(`[N, *input_shape, T]`) one after another, `steps_per_sample` (default T) apart, and runs
`N * steps_per_sample + depth` steps (depth: of the deepest population). Every population restarts at the step the sample reaches it, so each
sample runs as if alone. The same stream given to `snnchip.sim.simulate(graph, stream, reset_interval=
steps_per_sample)` must give the same integers at every step (`LavaResult.stream_*` against
`snnchip.sim.sample_stream(...)`).

Float runs: `select_tag='floating_pt'` needs a float graph; `as_float(fixed_graph)` reads a fixed graph's
integers in float without rounding (in units of the synaptic input: v register / 64).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .. import loihi
from ..errors import InputError
from ..formats.netx import write_netx
from ..graph import Graph
from ..sim.samples import sample_stream
from .builder import NetxNetwork, build_lava, netx_compatible
from .runconfig import TagRunConfig
from .watchdog import DEFAULT_TIMEOUT_S


@dataclass
class LavaResult:
    """What a Lava run produced.

    outputs / spikes: population -> `[N, *shape, steps_per_sample]`, each sample's window starting at the step
    the sample reaches that population (its depth): readout voltage (fixed: raw 24-bit integers) of the output
    populations, spikes of the recorded ones (and of spiking outputs).
    stream_outputs / stream_spikes: the same populations over the whole run, `[*shape, num_steps]`.
    stream_u / stream_v: recorded states ('u', 'v' in `record`) over the whole run, `[*shape, num_steps]`.
    seconds: wall time of the Lava run (compile, start, steps, read-out); processes: Lava processes in it;
    via: 'netx' (stock netx built it) or 'builder' (`build_lava`).
    """
    steps_per_sample: int
    num_steps: int
    latency: int
    seconds: float
    processes: int
    via: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    stream_outputs: dict[str, np.ndarray] = field(default_factory=dict)
    stream_spikes: dict[str, np.ndarray] = field(default_factory=dict)
    stream_u: dict[str, np.ndarray] = field(default_factory=dict)
    stream_v: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray | dict[str, np.ndarray]:
        """The readout of the single output population (a dict if there are several)."""
        return next(iter(self.outputs.values())) if len(self.outputs) == 1 else self.outputs

    @property
    def steps_per_second(self) -> float:
        return self.num_steps / self.seconds if self.seconds > 0 else float("inf")


def run_on_lava(graph: Graph, x, select_tag: str = "fixed_pt", *, record=(),
                steps_per_sample: int | None = None, run_cfg=None, via: str = "auto", netx_file=None,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> LavaResult:
    """Run `graph` (pipelined) on Lava's CPU simulator with the samples of `x`; see the module docstring.

    select_tag 'fixed_pt' needs a fixed graph, 'floating_pt' a float one. record: population names whose
    spikes are returned too, and 'u' / 'v' for their states (`build_lava`). run_cfg: a Lava run configuration
    (default: `TagRunConfig(select_tag)`, Lava's CPU simulator; `hardware.loihi2_run_config()` for Loihi 2).
    via: 'netx' (stock netx loads a NetX file: chains only, fixed point, no recorded states; every block's
    spikes come back), 'builder' (`build_lava`), or 'auto' (netx when it can). netx_file: the file stock netx
    loads, the one `graph` was read from (stock netx then runs the original, whatever snnchip made of it);
    default: `write_netx(graph)` into a temporary folder. timeout_s: the watchdog's limit on the Lava run
    (`watchdog.run_steps`: LavaTimeout after stopping its processes). `LavaResult.via` says which ran.
    Raises ValueError (one line) for a graph or input Lava cannot run."""
    if select_tag not in ("fixed_pt", "floating_pt"):
        raise InputError(f"select_tag must be 'fixed_pt' or 'floating_pt', got {select_tag!r}")
    if graph.fixed != (select_tag == "fixed_pt"):
        kind = "fixed-point" if graph.fixed else "float"
        raise InputError(f"a {kind} graph cannot run with select_tag '{select_tag}'"
                         + (" (use as_float(graph) to read its integers in float)" if graph.fixed else ""))
    first = np.asarray(next(iter(x.values())) if isinstance(x, Mapping) else x)
    n, t = first.shape[0], first.shape[-1]
    interval = steps_per_sample or t
    # Run until the last sample has passed the deepest population, so that every window is complete.
    tail = max(graph.depths().values())
    num_steps = n * interval + tail
    stream = sample_stream(graph, x, interval, extra_steps=tail)
    if via not in ("auto", "netx", "builder"):
        raise InputError(f"via must be 'auto', 'netx' or 'builder', got {via!r}")
    use_netx = via == "netx" or (via == "auto" and graph.fixed and not record and netx_compatible(graph))
    if netx_file is not None and via != "netx":
        raise InputError("netx_file is the file stock netx runs: it needs via='netx'")
    if use_netx and netx_file is None and not (graph.fixed and not record and netx_compatible(graph)):
        raise InputError("stock netx cannot run this graph exactly (a fixed-point chain without delays, "
                         "sigma-delta neurons and recorded layers is needed); use via='builder'")
    if use_netx and (not graph.fixed or set(record) & {"u", "v"}):
        raise InputError("stock netx runs fixed-point files and records spikes (and the readout) only")
    flat = {name: data.reshape(-1, num_steps) for name, data in stream.items()}
    with tempfile.TemporaryDirectory() as tmp:
        if use_netx:
            path = str(netx_file) if netx_file is not None else str(Path(tmp) / "network.net")
            if netx_file is None:
                write_netx(graph, path)
            net = NetxNetwork(graph, interval, num_steps, graph.depths(), path)
        else:
            net = build_lava(graph, steps_per_sample=interval, num_steps=num_steps, record=record)
        start = time.perf_counter()
        records = net.run(flat, run_cfg or TagRunConfig(select_tag), timeout_s)
        seconds = time.perf_counter() - start
    # netx: per block a neuron, a synapse (not the Input block) and a spike sink; the source; the voltage probe
    processes = (3 * len(net.layers) + 2 - int(not graph.inputs[0].neuron.graded) if use_netx
                 else len(net.neurons) + len(net.synapses) + len(net.sinks) + len(flat))
    result = LavaResult(steps_per_sample=interval, num_steps=num_steps, latency=net.latency, seconds=seconds,
                        processes=processes, via="netx" if use_netx else "builder")
    for (name, what), data in records.items():
        pop = graph.population(name)
        data = data.reshape(*pop.shape, num_steps)
        d = net.depth[name]
        if what == "v" and "v" in record:
            result.stream_v[name] = data
        if what == "u":
            result.stream_u[name] = data
            continue
        if what == "v" and not pop.is_output:
            continue
        stream_dict, window_dict = ((result.stream_outputs, result.outputs) if what == "v"
                                    else (result.stream_spikes, result.spikes))
        stream_dict[name] = data
        window_dict[name] = np.stack([data[..., k * interval + d:(k + 1) * interval + d] for k in range(n)])
    return result


def as_float(graph: Graph) -> Graph:
    """A float graph computing a fixed graph's arithmetic without rounding, in units of its synaptic input
    (Loihi's v register divided by 2**ACT_SHIFT): weights w * 2**weight_exp, threshold vth, bias
    mant * 2**bias_exp / 2**ACT_SHIFT, reset values likewise, du and dv the fractions lost per step
    (`loihi.du_fraction`, `dv_fraction`). Inputs are unchanged."""
    if not graph.fixed:
        return graph.copy()
    out = graph.copy()
    out.fixed = False
    unit = float(loihi.voltage_unit())
    for pop in out.populations:
        n = pop.neuron
        if np.ndim(n.du) or np.ndim(n.dv):
            raise InputError(f"population '{pop.name}': per-neuron decays have no float reading here "
                             f"(run it in fixed point)")
        n.du, n.dv = loihi.du_fraction(n.du), loihi.dv_fraction(n.dv)
        n.threshold = None if n.threshold is None else float(n.threshold)
        n.reset_value, n.reset_amount = float(n.reset_value) / unit, float(n.reset_amount) / unit
        if pop.bias is not None:
            pop.bias = np.asarray(pop.bias, dtype=np.float64) * 2.0 ** pop.bias_exp / unit
        pop.bias_exp = 0
        pop.scale = None
    for q in out.projections:
        q.weight = np.asarray(q.weight, dtype=np.float64) * 2.0 ** q.weight_exp
        q.weight_exp = 0
    return out
