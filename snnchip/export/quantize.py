"""Loihi fixed-point quantisation of a float graph (docs/quantisation.md).

Bit widths are those of Lava's bit-accurate models, defined once in `snnchip.loihi`:
- weights: an 8-bit signed mantissa m in [-128, 127] per synapse and one exponent e in [-8, 7] per projection; the
  graph stores Lava's weight integer 2m (even, in [-256, 254]: what a mixed-sign Dense keeps after its 8-bit
  clip and 1-bit truncation, and what lava-dl's netx files hold). A projection delivers `(sum 2m s) << e`
  (arithmetic right shift of the accumulated sum if e < 0), which the neuron shifts left by 6.
- one integer scale S per population (fixed v = S * float v), shared by everything that adds into v: the
  threshold (`vth << 6 = threshold * S`, vth unsigned 17 bits), the bias (`bias_mant << bias_exp = bias * S`,
  13-bit signed mantissa, exponent 0..7), every incoming projection (`2m 2^(e+6) = w * S`), the reset.
- decays: 12-bit du, dv in 1/4096 (Lava's current decay is (du + 1)/4096).
- 24-bit u (wraps in Lava) and v (saturates): S is bounded so that the worst-case synaptic input per step
  (every source spiking) cannot wrap u, and v stays inside 24 bits on the bound (worst case, or the
  calibration data's peak with a margin). Saturations are counted in the report, never silent.
Within those bounds S is searched over an octave (the threshold mantissa vth for spiking populations) to minimise
the squared error of every incoming weight and the bias, in float units of v.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from .. import loihi
from ..errors import ChipRangeError, InputError
from ..graph import Graph, Neuron, Population, Projection
from ..loihi import (ACT_SHIFT, BIAS_EXP_MAX, DEFAULT_MESSAGE_BITS, V_LIMIT, VTH_SHIFT, encode_input,
                     quantize_bias, quantize_weight)
from ..sim import Simulator, run_samples
from .report import PopulationQuant, ProjectionQuant, QuantReport, synapse_count

DEFAULT_HORIZON = 16       # steps a non-leaky readout must hold when the graph does not say its T
BATCH = 32


def quantize(graph: Graph, calibration=None, *, message_bits: Optional[int] = None,
             horizon: Optional[int] = None, bias_exp: Optional[int] = None, weight_exp: Optional[int] = None,
             progress: bool = False, weight_bits: int = loihi.MANT_BITS,
             scales: Optional[dict] = None) -> tuple[Graph, QuantReport]:
    """Fixed-point copy of the float `graph` and what it cost.

    calibration: None, inputs x `[N, *input_shape, T]` (float, as the float graph takes them), or (x, labels).
    With data the voltage bounds come from a float simulation of it, the input scale of a graded input is chosen
    from its range, and the report holds per-population spike agreement float vs fixed (and accuracies with
    labels). message_bits: payload bits of a graded input (default: from the data, else 8).
    horizon: steps a non-leaky readout must accumulate without saturating (default T + latency; T =
    DEFAULT_HORIZON for a graph that does not record its T).
    bias_exp: one bias exponent for every population (stock netx files fix it at 6); default: chosen per
    population. weight_exp: one weight exponent for every projection (stock netx files: 0,
    `loihi.NETX_WEIGHT_EXP`, since netx re-derives exponents from the stored integers); default: chosen per
    projection. progress: tqdm bars (stderr) over the calibration batches.
    weight_bits: weight mantissa bits 2..8 (post-training quantisation at low precision; 8: Loihi's full width).
    scales: {population name: integer scale} recorded by quantisation-aware training (`train.qat`): those
    populations take exactly that scale (ChipRangeError if the chip's bounds forbid it), the others are searched,
    and no bias correction is applied (the training already saw the rounded weights).
    """
    bits = loihi.check_weight_bits(weight_bits)
    scales = dict(scales or {})
    unknown = sorted(set(scales) - {p.name for p in graph.populations})
    if unknown:
        raise InputError(f"scales given for populations the graph does not have: {', '.join(unknown[:3])}")
    if graph.fixed:
        raise InputError("quantize() needs a float graph; this one is already fixed point")
    if bias_exp is not None and not 0 <= bias_exp <= BIAS_EXP_MAX:
        raise ChipRangeError(f"bias exponent {bias_exp} is outside Loihi's 0..{BIAS_EXP_MAX}")
    if weight_exp is not None and not loihi.W_EXP_MIN <= weight_exp <= loihi.W_EXP_MAX:
        raise ChipRangeError(f"weight exponent {weight_exp} is outside {loihi.W_EXP_MIN}..{loihi.W_EXP_MAX}")
    graph.validate()
    x, labels = _split_calibration(calibration)
    if horizon is None:
        horizon = (graph.steps or DEFAULT_HORIZON) + graph.latency()
    report = QuantReport(calibration_samples=0 if x is None else int(x.shape[0]))
    inp = _single_input(graph)
    in_scale, msg_bits = _input_encoding(inp, x, message_bits, report)
    report.input_scale = in_scale
    report.weight_bits = bits
    stats = _float_stats(graph, x, progress) if x is not None else None
    # bias correction, except for a QAT model (given scales): its training already saw the rounded weights
    rates = None if stats is None or scales else {name: s["sum"] / max(s["count"], 1) for name, s in stats.items()}

    # Shallow copy: every weight, bias and neuron of `fixed` is replaced below, never modified in place.
    fixed = dataclasses.replace(graph, fixed=True, meta=dict(graph.meta),
                                populations=[dataclasses.replace(p) for p in graph.populations],
                                projections=[dataclasses.replace(q) for q in graph.projections])
    fixed.meta["input_scale"] = in_scale
    fixed.meta["message_bits"] = msg_bits
    pops = {p.name: p for p in fixed.populations}
    # What each population emits, for its targets: integer payload per float unit, and the largest |float value|.
    units = {inp.name: (in_scale, ((1 << msg_bits) - 1) / in_scale, msg_bits) if inp.neuron.graded
             else (1.0, 1.0, 0)}
    for pop in fixed.populations:
        if pop.is_input:
            _quantize_input(pop, in_scale)
            continue
        units[pop.name] = _quantize_population(fixed, pop, fixed.into(pop.name), pops, units, horizon,
                                               None if stats is None else stats[pop.name], report, bias_exp,
                                               rates, bits, scales.get(pop.name), weight_exp)
    if scales:
        report.notes.append(f"{len(scales)} of {len(fixed.populations) - 1} population scales from the checkpoint "
                            f"(quantisation-aware training), the others searched")
    fixed.validate()
    if x is not None:
        evaluate(graph, fixed, x, labels, report, progress=progress)
    return fixed, report


# -- input ---------------------------------------------------------------------------------------
def _split_calibration(calibration):
    if calibration is None:
        return None, None
    if isinstance(calibration, (tuple, list)):
        x, y = calibration
        return torch.as_tensor(x), None if y is None else torch.as_tensor(y)
    return torch.as_tensor(calibration), None


def _single_input(graph: Graph) -> Population:
    if len(graph.inputs) != 1:
        raise InputError(f"quantize() supports one input population, the graph has {len(graph.inputs)}")
    return graph.inputs[0]


def _input_encoding(inp: Population, x, message_bits, report) -> tuple[float, int]:
    """(input scale, message bits): a graded payload is round(x * scale) in `bits` bits (unsigned, or signed if
    the data has negative values)."""
    if not inp.neuron.graded:
        return 1.0, 0
    if x is None:
        bits = message_bits or DEFAULT_MESSAGE_BITS
        report.notes.append(f"no calibration data: graded input assumed to be integers in [0, {(1 << bits) - 1}]")
        return 1.0, bits
    x = x.double()
    peak = float(x.abs().max())
    signed = bool((x < 0).any())
    if torch.equal(x, x.round()):
        need = max(1, int(peak).bit_length()) + int(signed)
        bits = message_bits or need
        if need > bits:
            raise InputError(f"input values up to {peak:g} need {need} message bits, {bits} requested")
        return 1.0, bits
    bits = message_bits or DEFAULT_MESSAGE_BITS
    usable = (1 << (bits - int(signed))) - 1
    scale = 2.0 ** math.floor(math.log2(usable / peak)) if peak > 0 else 1.0
    report.notes.append(f"graded input is real-valued: payload = round(x * {scale:g}) in {bits} bits")
    return scale, bits


def _quantize_input(pop: Population, in_scale: float) -> None:
    # A pass-through: du = dv = 4095 keep nothing of u or v (v is 0 or one unit of input, and resets on a spike).
    pop.neuron = Neuron(threshold=0, du=loihi.DU_MAX, dv=loihi.DU_MAX, reset="hard", graded=pop.neuron.graded)
    pop.scale = in_scale if pop.neuron.graded else float(loihi.voltage_unit())


# -- bounds and statistics -----------------------------------------------------------------------
def _float_stats(graph: Graph, x, progress: bool = False) -> dict[str, dict]:
    """Per population: peak |u| (= |a| for du = 1), peak |v| and the spikes of the float graph on x, over the
    whole run of each sample (`sim.run_samples`: latency padding, each population reset at its depth)."""
    stats = {p.name: {"a": 0.0, "v": 0.0, "sum": 0.0, "count": 0} for p in graph.populations}
    sim = Simulator(graph)
    for start in _batches(x.shape[0], "float calibration", progress):
        res = run_samples(sim, x[start:start + BATCH].double(), record=("spikes", "u", "v"), count=False).result
        for name, s in stats.items():
            s["a"] = max(s["a"], float(res.u[name].abs().max()))
            s["v"] = max(s["v"], float(res.v[name].abs().max()))
            out = res.spikes[name]           # mean output per channel (C, or F for a flat population)
            dims = [0] + list(range(2, out.dim()))
            s["sum"] = s["sum"] + out.double().sum(dim=dims).cpu().numpy()
            s["count"] += out.numel() // out.shape[1]
    return stats


def _batches(count: int, what: str, progress: bool):
    """Batch start indices, with a tqdm bar on stderr when asked."""
    return tqdm(range(0, count, BATCH), desc=what, unit="batch", disable=not progress, file=sys.stderr,
                leave=False)


def _row_abs_max(q: Projection) -> float:
    """Largest sum of |weight| into one target neuron (every source active)."""
    w = np.abs(np.asarray(q.weight, dtype=np.float64))
    return float(w.reshape(w.shape[0], -1).sum(axis=1).max(initial=0.0))


# -- one population ------------------------------------------------------------------------------
def _quantize_population(fixed_graph, pop, incoming, pops, units, horizon, stat, report,
                         fixed_bias_exp, rates=None, bits: int = loihi.MANT_BITS,
                         given_scale: Optional[float] = None, fixed_weight_exp: Optional[int] = None
                         ) -> tuple[float, float, int]:
    """Quantise `pop` and its incoming projections in place (weights to `bits`-bit mantissas, at exponent
    `fixed_weight_exp` if given; the scale searched by `loihi.population_scale`, or `given_scale`); returns what
    it emits: (payload per float unit, largest |float value|, message bits) — a spike is (1, 1, 0); a relay's
    payload is its input, in units of 2**6 / S."""
    neuron = pop.neuron
    theta = neuron.threshold
    relay = neuron.graded
    if theta is not None and theta < 0 and not relay:
        raise InputError(f"population '{pop.name}': negative threshold {theta} cannot be represented")
    # float weight per payload unit of the source, and the largest input one step can bring (float units)
    float_w = [np.asarray(q.weight, dtype=np.float64) / units[q.source][0] for q in incoming]
    a_worst = sum(_row_abs_max(q) * units[q.source][1] for q in incoming)
    bias = np.zeros(1) if pop.bias is None else np.asarray(pop.bias, dtype=np.float64)
    b_max = float(np.abs(bias).max(initial=0.0))
    if relay:
        if b_max > 0:
            raise InputError(f"population '{pop.name}': a graded relay cannot have a bias")
        theta, b_max, bias = None, 0.0, np.zeros(1)
    keep_v = 1.0 - float(neuron.dv)
    if relay:
        # the payload is the step's input, a 24-bit signed graded spike: no state, no voltage bound
        bound_a = bound_v = a_worst
        bound_from = "worst-case"
    elif stat is not None:
        bound_a, bound_v = loihi.calibrated_bounds(stat["a"], stat["v"], b_max)
        bound_from = "calibration"
    else:
        bound_a = a_worst
        bound_v = (a_worst + b_max) / (1 - keep_v) if keep_v < 1 else horizon * (a_worst + b_max)
        if theta is not None and neuron.reset != "none":
            bound_v = max(bound_v, theta + a_worst + b_max)
        bound_from = "worst-case"
    # u (or a relay's payload) must never wrap (worst case); v saturates (explicitly) only beyond the bound.
    if given_scale is None:
        scale = loihi.population_scale(pop.name, theta, float_w, bias, a_worst, bound_v, fixed_bias_exp, bits,
                                       fixed_weight_exp)
    else:
        scale = _given_scale(pop.name, given_scale, theta, float_w, b_max, a_worst, fixed_bias_exp, bits,
                             fixed_weight_exp)

    for q, w in zip(incoming, float_w):
        mant2, exp, sat, sq_err, used = quantize_weight(w, scale, bits, fixed_weight_exp)
        norm = float(np.sqrt((w ** 2).sum()))
        q.weight = mant2
        q.weight_exp = exp
        q.num_message_bits = units[q.source][2]
        report.projections.append(ProjectionQuant(
            name=q.name, source=q.source, target=q.target, kind=q.kind, synapses=synapse_count(fixed_graph, q),
            weight_bits=used, weight_exp=exp, saturated=sat,
            rel_error=float(np.sqrt(sq_err)) / norm if norm > 0 else 0.0, num_message_bits=q.num_message_bits))
    if rates is not None and not relay:
        shift = _mean_rounding_error(incoming, float_w, units, rates, scale, pop)
        if np.any(shift):
            bias = np.broadcast_to(bias, shift.shape) - shift
            pop.bias = bias
    mant, bias_exp, _, bias_sat = quantize_bias(bias, scale, fixed_bias_exp)
    pop.bias = None if pop.bias is None else mant.reshape(np.shape(pop.bias))
    pop.bias_exp = bias_exp
    du, dv = loihi.du_from_fraction(neuron.du), loihi.dv_from_fraction(neuron.dv)
    decay_error = max(abs(loihi.du_fraction(du) - float(neuron.du)), abs(loihi.dv_fraction(dv) - float(neuron.dv)))
    vth = None if theta is None else loihi.threshold_mantissa(theta, scale)
    pop.neuron = Neuron(threshold=vth, du=du, dv=dv, reset=neuron.reset,
                        reset_value=int(round(neuron.reset_value * scale)),
                        reset_amount=int(round(neuron.reset_amount * scale)), graded=False)
    if relay:
        pop.neuron = Neuron(threshold=0, du=loihi.DU_MAX, dv=loihi.DU_MAX, graded=True)
    pop.scale = float(scale)
    report.populations.append(PopulationQuant(
        name=pop.name, shape=tuple(pop.shape), neurons=pop.size, scale=float(scale), vth=vth, bias_exp=bias_exp,
        bias_saturated=bias_sat, bound_a=float(bound_a), bound_v=float(bound_v), bound_from=bound_from,
        dv=dv, du=du, decay_error=float(decay_error)))
    if relay:
        payload_scale = scale / (1 << ACT_SHIFT)
        return payload_scale, a_worst, int(math.ceil(a_worst * payload_scale)).bit_length() + 1
    return 1.0, 1.0, 0


def _mean_rounding_error(incoming, float_w, units, rates, scale, pop) -> np.ndarray:
    """Expected extra input per step that weight rounding adds to each output channel, from the calibration
    data's mean source activity (bias correction: subtracting it from the bias removes the systematic part)."""
    flat = len(pop.shape) == 1
    shift = np.zeros(pop.shape[0] if flat else (pop.shape[0], 1, 1))
    for q, w in zip(incoming, float_w):
        # the weights were replaced by Lava's integers: their float value per payload unit minus the float one
        err = loihi.weight_value(q.weight, q.weight_exp, scale) - w
        err = err * units[q.source][0]                      # per float unit of the source's output
        rate = np.asarray(rates[q.source], dtype=np.float64)
        if q.kind == "conv":
            if q.groups != 1 or err.shape[1] != rate.shape[0]:
                continue
            per_out = np.einsum("oikl,i->o", err, rate)
        else:
            src_size = err.shape[1]
            per_out = err @ np.repeat(rate, src_size // rate.shape[0])
        shift += per_out.reshape(shift.shape)
    return shift


def _given_scale(name, scale, theta, float_w, b_max, a_worst, bias_exp, bits, weight_exp=None) -> float:
    """A scale recorded by quantisation-aware training: used as it is, if the chip's hard bounds allow it (u must
    not wrap, vth must be an integer mantissa; v beyond the training's running peaks saturates, counted in the
    report); otherwise a one-line ChipRangeError."""
    scale = float(scale)
    s_max = loihi.scale_bound(theta, float_w, b_max, a_worst, 0.0, bias_exp, bits, weight_exp)
    if not 0 < scale <= s_max * (1 + 1e-12):
        raise ChipRangeError(f"population '{name}': the checkpoint's scale {scale:.6g} exceeds the chip's bound "
                             f"{s_max:.6g} for this graph")
    if theta and abs(theta * scale / (1 << VTH_SHIFT) - round(theta * scale / (1 << VTH_SHIFT))) > 1e-6:
        raise ChipRangeError(f"population '{name}': the checkpoint's scale {scale:.6g} does not make the "
                             f"threshold an integer mantissa")
    return scale


# -- evaluation on calibration data --------------------------------------------------------------
def evaluate(graph: Graph, fixed: Graph, x, labels, report: QuantReport, progress: bool = False) -> None:
    """Spike agreement per population (over each population's sample window), fixed-point peaks and saturations,
    class agreement and accuracies, on samples x `[N, *input_shape, T]` of the float graph's input."""
    names = [p.name for p in graph.populations if not p.is_input and not p.neuron.graded]
    agree = {n: 0.0 for n in names}
    peak_u = {n: 0 for n in names}
    peak_v = {n: 0 for n in names}
    sat = {n: 0 for n in names}
    float_cls, fixed_cls = [], []
    classify = bool(graph.outputs)
    float_sim, fixed_sim = Simulator(graph), Simulator(fixed)
    for start in _batches(x.shape[0], "float vs fixed", progress):
        xb = x[start:start + BATCH].double()
        ref = run_samples(float_sim, xb, record=("spikes",), count=False)
        got = run_samples(fixed_sim, encode_input(fixed, xb), record=("spikes", "u", "v"), count=False)
        for n in names:
            same = ref.window("spikes", n) == got.window("spikes", n).to(ref.result.spikes[n].dtype)
            agree[n] += float(same.double().mean()) * len(xb)
            peak_u[n] = max(peak_u[n], int(got.result.u[n].abs().max()))
            peak_v[n] = max(peak_v[n], int(got.result.v[n].abs().max()))
            sat[n] += int((got.result.v[n].abs() >= V_LIMIT).sum())
        if classify:
            float_cls.append(ref.predict())
            fixed_cls.append(got.predict())
    count = x.shape[0]
    report.evaluation_samples = int(count)
    for p in report.populations:
        if p.name not in agree:          # a relay's payload has no spikes to agree on
            continue
        p.spike_agreement = agree[p.name] / count
        p.peak_u = peak_u[p.name] / loihi.MAX_UV
        p.peak_v = peak_v[p.name] / loihi.MAX_UV
        p.v_saturations = sat[p.name]
    if classify:
        fc, qc = torch.cat(float_cls), torch.cat(fixed_cls)
        report.argmax_agreement = float((fc == qc).double().mean())
        if labels is not None:
            y = labels.to(fc.device).long()
            report.float_accuracy = float((fc == y).double().mean())
            report.fixed_accuracy = float((qc == y).double().mean())
