"""Activity counters of a simulation: per population and projection, per step, summed over the batch.

Projection counters are attributed to the step the source emits (before any delay):
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
    """Accumulates counts on the simulation's device without synchronising every step."""

    def __init__(self, batch: int, steps: int, sizes: dict[str, int]) -> None:
        self.batch, self.steps, self.sizes = batch, steps, sizes
        self.pop: dict[str, dict[str, list]] = {}
        self.proj: dict[str, dict[str, list]] = {}

    def population(self, name: str, inputs, outputs) -> None:
        c = self.pop.setdefault(name, {k: [] for k in POPULATION_KEYS})
        c["input_spikes"].append(inputs)
        c["neuron_updates"].append(self.batch * self.sizes[name])
        c["output_spikes"].append(outputs)

    def projection(self, name: str, events, ops, graded: bool) -> None:
        c = self.proj.setdefault(name, {k: [] for k in PROJECTION_KEYS})
        c["input_spikes"].append(events)
        c["macs" if graded else "synops"].append(ops)
        c["synops" if graded else "macs"].append(0)

    def result(self) -> Counters:
        def stack(values):
            return np.array([round(float(v)) for v in values], dtype=np.int64)
        return Counters(batch=self.batch, steps=self.steps, sizes=dict(self.sizes),
                        populations={n: {k: stack(v) for k, v in c.items()} for n, c in self.pop.items()},
                        projections={n: {k: stack(v) for k, v in c.items()} for n, c in self.proj.items()})
