"""Activity counters of a simulation: per population and projection, per step, summed over the batch.

Projection counters are attributed to the step their inputs arrive (after the delay and, pipelined, the hop):
    input_spikes  non-zero source outputs (events)
    synops        sum over binary spikes of the source neuron's fan-out (accumulates, one per synapse)
    macs          the same for graded payloads (multiply-accumulates)
Population counters: input_spikes (events arriving on its projections, or non-zero external inputs for an
input population), neuron_updates (every neuron, every step), output_spikes (non-zero outputs).
Fan-out is structural and exact: a conv input neuron's fan-out counts the (output channel, output position)
pairs whose receptive field actually covers it, given padding, stride, dilation and groups.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..graph import Projection

POPULATION_KEYS = ("input_spikes", "neuron_updates", "output_spikes")
PROJECTION_KEYS = ("input_spikes", "synops", "macs")


def fan_out(proj: Projection, src_shape: tuple[int, ...], tgt_shape: tuple[int, ...]) -> np.ndarray:
    """Number of synapses leaving each source neuron, `[src_size]` int64."""
    if proj.kind == "dense":
        return np.full(int(np.prod(src_shape)), int(np.prod(tgt_shape)), dtype=np.int64)
    return _conv_fan_out(tuple(proj.weight.shape), tuple(src_shape), tuple(tgt_shape), tuple(proj.stride),
                         tuple(proj.padding), tuple(proj.dilation), int(proj.groups))


@functools.lru_cache(maxsize=256)
def _conv_fan_out(weight_shape, src_shape, tgt_shape, stride, padding, dilation, groups) -> np.ndarray:
    """Fan-out depends on the geometry only: a transposed conv of ones counts, for each input, the
    (output channel, output position, kernel tap) triples that reach it (float32: exact, counts < 2**24)."""
    c_out, c_in_g, kh, kw = weight_shape
    _, h, w = src_shape
    _, ho, wo = tgt_shape
    ones_out = torch.ones(1, c_out, ho, wo)
    ones_w = torch.ones(c_out, c_in_g, kh, kw)
    full = [((ho, wo)[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * ((kh, kw)[i] - 1) + 1 for i in range(2)]
    extra = [(h, w)[i] - full[i] for i in range(2)]
    # Rows/columns that the strided kernel never reaches come back as output padding (fan-out 0).
    counts = F.conv_transpose2d(ones_out, ones_w, stride=stride, padding=padding, output_padding=tuple(extra),
                                groups=groups, dilation=dilation)
    counts = counts.reshape(-1).round().long().numpy()
    counts.flags.writeable = False
    return counts


@dataclass
class Counters:
    """Per-step counts `[T]` (summed over `batch` samples) for every population and projection."""
    batch: int
    steps: int
    sizes: dict[str, int]
    populations: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    projections: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def summary(self) -> dict:
        """Totals per sample (over all steps) and firing rates (output spikes per neuron per step), JSON-ready."""
        pops = {}
        for name, c in self.populations.items():
            total = {k: float(c[k].sum()) / self.batch for k in POPULATION_KEYS}
            total["firing_rate"] = total["output_spikes"] / max(1, self.sizes[name] * self.steps)
            pops[name] = total
        projs = {name: {k: float(c[k].sum()) / self.batch for k in PROJECTION_KEYS}
                 for name, c in self.projections.items()}
        totals = {"synops": sum(p["synops"] for p in projs.values()),
                  "macs": sum(p["macs"] for p in projs.values()),
                  "neuron_updates": sum(p["neuron_updates"] for p in pops.values()),
                  "output_spikes": sum(p["output_spikes"] for p in pops.values())}
        return {"batch": self.batch, "steps": self.steps, "per_sample": totals,
                "populations": pops, "projections": projs}


class CounterRecorder:
    """Accumulates per-step counts `[T]` on the simulation's device (no synchronisation until `result`).

    `steps` slices the steps a call covers; counts are `[K]` tensors or 0-d for a single step. Several calls for
    the same steps add up (one per delay group of a projection)."""

    def __init__(self, batch: int, steps: int, sizes: dict[str, int], graded: dict[str, bool], device) -> None:
        """sizes: population name -> neurons; graded: projection name -> whether its source sends payloads."""
        def zeros():
            return torch.zeros(steps, dtype=torch.float64, device=device)
        self.batch, self.steps, self.sizes, self.graded = batch, steps, sizes, graded
        self.pop = {name: {"input_spikes": zeros(), "output_spikes": zeros()} for name in sizes}
        self.proj = {name: {"input_spikes": zeros(), "ops": zeros()} for name in graded}

    def population(self, name: str, steps: slice, inputs, outputs) -> None:
        c = self.pop[name]
        c["input_spikes"][steps] += inputs
        c["output_spikes"][steps] += outputs

    def projection(self, name: str, steps: slice, events, ops) -> None:
        c = self.proj[name]
        c["input_spikes"][steps] += events
        c["ops"][steps] += ops

    def result(self) -> Counters:
        def ints(values: torch.Tensor) -> np.ndarray:
            return values.cpu().numpy().round().astype(np.int64)
        pops = {name: {"input_spikes": ints(c["input_spikes"]),
                       "neuron_updates": np.full(self.steps, self.batch * self.sizes[name], dtype=np.int64),
                       "output_spikes": ints(c["output_spikes"])} for name, c in self.pop.items()}
        projs = {}
        for name, c in self.proj.items():
            ops, none = ints(c["ops"]), np.zeros(self.steps, dtype=np.int64)
            projs[name] = {"input_spikes": ints(c["input_spikes"]), "synops": none if self.graded[name] else ops,
                           "macs": ops if self.graded[name] else none}
        return Counters(batch=self.batch, steps=self.steps, sizes=dict(self.sizes), populations=pops,
                        projections=projs)
