"""What quantisation did, per projection and per population: the `QuantReport` and its per-layer table."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch


@dataclass
class ProjectionQuant:
    """One projection: mantissa bits actually used (sign included, of 8), exponent, weights clipped to the
    mantissa range, relative L2 error of the represented float weights, synapse count, graded message bits."""
    name: str
    source: str
    target: str
    kind: str
    synapses: int
    weight_bits: Optional[int] = None
    weight_exp: Optional[int] = None
    saturated: Optional[int] = None
    rel_error: Optional[float] = None
    num_message_bits: int = 0


@dataclass
class PopulationQuant:
    """One population: its integer scale (fixed v per float unit of v), threshold mantissa, bias exponent,
    the bound on |a| and |v| the scale was chosen for (float units; 'calibration' or 'worst-case'), clipped bias
    mantissas, decay error, and with calibration data: spike agreement float vs fixed (fraction of neuron-steps),
    peak |u|, |v| of the fixed run as a fraction of the 24-bit range, voltage saturations seen."""
    name: str
    shape: tuple
    neurons: int
    scale: Optional[float] = None
    vth: Optional[int] = None
    bias_exp: Optional[int] = None
    bias_saturated: Optional[int] = None
    bound_a: Optional[float] = None
    bound_v: Optional[float] = None
    bound_from: Optional[str] = None
    dv: Optional[float] = None
    du: Optional[float] = None
    decay_error: Optional[float] = None
    spike_agreement: Optional[float] = None
    peak_u: Optional[float] = None
    peak_v: Optional[float] = None
    v_saturations: Optional[int] = None


@dataclass
class QuantReport:
    projections: list[ProjectionQuant] = field(default_factory=list)
    populations: list[PopulationQuant] = field(default_factory=list)
    input_scale: float = 1.0
    weight_bits: Optional[int] = None          # the weight mantissa width asked for (2..8)
    calibration_samples: int = 0
    evaluation_samples: int = 0
    float_accuracy: Optional[float] = None
    fixed_accuracy: Optional[float] = None
    argmax_agreement: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def table(self) -> str:
        """Per-layer table: one row per population (neurons, fan-in synapses, spike agreement) followed by its
        incoming projections (weight bits, exponent, saturations, relative error)."""
        lines = [f"{'layer':<34} {'shape':<16} {'neurons':>8} {'synapses':>10} {'wbits':>5} {'exp':>4} "
                 f"{'sat':>5} {'error':>8} {'agree':>7}"]
        by_target: dict[str, list[ProjectionQuant]] = {}
        for q in self.projections:
            by_target.setdefault(q.target, []).append(q)
        for p in self.populations:
            incoming = by_target.get(p.name, [])
            synapses = sum(q.synapses for q in incoming)
            agree = "" if p.spike_agreement is None else f"{100 * p.spike_agreement:6.2f}%"
            lines.append(f"{p.name:<34} {'x'.join(map(str, p.shape)):<16} {p.neurons:>8} {synapses:>10} "
                         f"{'':>5} {'':>4} {p.bias_saturated or '':>5} {'':>8} {agree:>7}")
            for q in incoming:
                bits, exp, sat = (_blank(q.weight_bits), _blank(q.weight_exp), _blank(q.saturated))
                err = "" if q.rel_error is None else f"{q.rel_error:.2e}"
                lines.append(f"  <- {q.source:<30} {'':<16} {'':>8} {q.synapses:>10} {bits:>5} {exp:>4} {sat:>5} "
                             f"{err:>8}")
        lines.append(f"total: {sum(p.neurons for p in self.populations)} neurons, "
                     f"{sum(q.synapses for q in self.projections)} synapses, {len(self.projections)} projections")
        summary = [] if self.weight_bits is None else [f"weight mantissas: {self.weight_bits} bits"]
        if self.float_accuracy is not None:
            summary.append(f"accuracy float {100 * self.float_accuracy:.2f}% fixed {100 * self.fixed_accuracy:.2f}%")
        if self.argmax_agreement is not None:
            summary.append(f"class agreement float vs fixed {100 * self.argmax_agreement:.2f}% "
                           f"on {self.evaluation_samples} samples")
        return "\n".join(lines + summary + [f"note: {n}" for n in self.notes])


def _blank(value) -> str:
    return "" if value is None else str(value)


def synapse_count(graph, proj) -> int:
    """Synapses of a projection: dense F_out * F_in; conv: (output neuron, kernel tap) pairs inside the input."""
    if proj.kind == "dense":
        return int(np.prod(np.shape(proj.weight)))
    src = graph.population(proj.source).shape
    w_shape = np.shape(proj.weight)
    ones = torch.ones(1, *src, dtype=torch.float32)
    kernel = torch.ones(w_shape[0], src[0] // proj.groups, *w_shape[2:], dtype=torch.float32)
    taps = torch.nn.functional.conv2d(ones, kernel, stride=proj.stride, padding=proj.padding,
                                      dilation=proj.dilation, groups=proj.groups)
    return int(taps.double().sum())


def layer_report(graph) -> QuantReport:
    """The per-layer table of a float graph (shapes, neurons, synapses; no fixed-point columns)."""
    return QuantReport(
        populations=[PopulationQuant(name=p.name, shape=tuple(p.shape), neurons=p.size)
                     for p in graph.populations if not p.is_input],
        projections=[ProjectionQuant(name=q.name, source=q.source, target=q.target, kind=q.kind,
                                     synapses=synapse_count(graph, q)) for q in graph.projections])
