"""Loihi fixed-point quantisation of a float graph (docs/quantisation.md).

Bit widths are those of Lava's bit-accurate models (`lava.proc.lif.models.PyLifModelBitAcc`,
`lava.proc.dense.models.PyDenseModelBitAcc`, `lava.utils.weightutils`):
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

from ..cli_util import UserError
from ..graph import Graph, Neuron, Population, Projection
from .report import PopulationQuant, ProjectionQuant, QuantReport, synapse_count

MANT_MAX, MANT_MIN = 127, -128
W_EXP_MIN, W_EXP_MAX = -8, 7
ACT_SHIFT = 6
VTH_MAX = (1 << 17) - 1
BIAS_MANT_MAX, BIAS_MANT_MIN, BIAS_EXP_MAX = 4095, -4096, 7
UV_LIMIT = (1 << 23) - 1
DECAY_UNITY = 4096
DEFAULT_MESSAGE_BITS = 8
CALIBRATION_MARGIN = 1.25
SEARCH_POINTS = 16
BATCH = 32


def quantize(graph: Graph, calibration=None, *, message_bits: Optional[int] = None,
             horizon: Optional[int] = None, bias_exp: Optional[int] = None,
             progress: bool = False) -> tuple[Graph, QuantReport]:
    """Fixed-point copy of the float `graph` and what it cost.

    calibration: None, inputs x `[N, *input_shape, T]` (float, as the float graph takes them), or (x, labels).
    With data the voltage bounds come from a float simulation of it, the input scale of a graded input is chosen
    from its range, and the report holds per-population spike agreement float vs fixed (and accuracies with
    labels). message_bits: payload bits of a graded input (default: from the data, else 8).
    horizon: steps a non-leaky readout must accumulate without saturating (default T + latency).
    bias_exp: one bias exponent for every population (stock netx files fix it at 6); default: chosen per
    population. progress: tqdm bars (stderr) over the calibration batches.
    """
    if graph.fixed:
        raise ValueError("quantize() needs a float graph; this one is already fixed point")
    if bias_exp is not None and not 0 <= bias_exp <= BIAS_EXP_MAX:
        raise UserError(f"bias exponent {bias_exp} is outside Loihi's 0..{BIAS_EXP_MAX}")
    graph.validate()
    x, labels = _split_calibration(calibration)
    if horizon is None:
        horizon = int(graph.meta.get("T", 16)) + graph.latency()
    report = QuantReport(calibration_samples=0 if x is None else int(x.shape[0]))
    inp = _single_input(graph)
    in_scale, bits = _input_encoding(inp, x, message_bits, report)
    report.input_scale = in_scale
    stats = _float_stats(graph, x, progress) if x is not None else None
    rates = None if stats is None else {name: s["sum"] / max(s["count"], 1) for name, s in stats.items()}

    # Shallow copy: every weight, bias and neuron of `fixed` is replaced below, never modified in place.
    fixed = dataclasses.replace(graph, fixed=True, meta=dict(graph.meta),
                                populations=[dataclasses.replace(p) for p in graph.populations],
                                projections=[dataclasses.replace(q) for q in graph.projections])
    fixed.meta["input_scale"] = in_scale
    fixed.meta["message_bits"] = bits
    pops = {p.name: p for p in fixed.populations}
    # What each population emits, for its targets: integer payload per float unit, and the largest |float value|.
    units = {inp.name: (in_scale, ((1 << bits) - 1) / in_scale, bits) if inp.neuron.graded else (1.0, 1.0, 0)}
    for pop in fixed.populations:
        if pop.is_input:
            _quantize_input(pop, in_scale)
            continue
        units[pop.name] = _quantize_population(fixed, pop, fixed.into(pop.name), pops, units, horizon,
                                               None if stats is None else stats[pop.name], report, bias_exp,
                                               rates)
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
        raise UserError(f"quantize() supports one input population, the graph has {len(graph.inputs)}")
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
            raise UserError(f"input values up to {peak:g} need {need} message bits, {bits} requested")
        return 1.0, bits
    bits = message_bits or DEFAULT_MESSAGE_BITS
    usable = (1 << (bits - int(signed))) - 1
    scale = 2.0 ** math.floor(math.log2(usable / peak)) if peak > 0 else 1.0
    report.notes.append(f"graded input is real-valued: payload = round(x * {scale:g}) in {bits} bits")
    return scale, bits


def encode_input(fixed: Graph, x) -> torch.Tensor:
    """The integer input a fixed graph takes for the float graph's input x `[N, *shape, T]`: spikes (x > 0) for a
    binary input, round(x * meta['input_scale']) for a graded one (UserError if it exceeds the message bits)."""
    x = torch.as_tensor(x)
    inp = _single_input(fixed)
    if not inp.neuron.graded:
        return (x > 0).to(torch.int64)
    payload = torch.round(x.double() * float(fixed.meta.get("input_scale", 1.0))).to(torch.int64)
    bits = int(fixed.meta.get("message_bits", DEFAULT_MESSAGE_BITS))
    if payload.numel() and int(payload.abs().max()) >= (1 << bits):
        raise UserError(f"input payload {int(payload.abs().max())} does not fit the graph's {bits} message bits")
    return payload


def _quantize_input(pop: Population, in_scale: float) -> None:
    # A pass-through: du = dv = 4095 keep nothing of u or v below 4096 (v is 0 or 1 << 6 and resets on a spike).
    pop.neuron = Neuron(threshold=0, du=DECAY_UNITY - 1, dv=DECAY_UNITY - 1, reset="hard",
                        graded=pop.neuron.graded)
    pop.scale = in_scale if pop.neuron.graded else float(1 << ACT_SHIFT)


# -- bounds and statistics -----------------------------------------------------------------------
def _float_stats(graph: Graph, x, progress: bool = False) -> dict[str, dict]:
    """Per population: peak |u| (= |a| for du = 1), peak |v| and the spikes of the float graph on x."""
    from ..sim import Simulator
    reset = _sample_reset(graph, x)
    x = _pad_for_latency(graph, x.double())
    stats = {p.name: {"a": 0.0, "v": 0.0, "sum": 0.0, "count": 0} for p in graph.populations}
    sim = Simulator(graph)
    for start in _batches(x.shape[0], "float calibration", progress):
        res = sim.run(x[start:start + BATCH], record=("spikes", "u", "v"), count=False, reset_interval=reset)
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


def _sample_reset(graph: Graph, x: torch.Tensor) -> Optional[int]:
    """A pipelined graph's populations start at their depth (docs/graph-ir.md, Timing): reset each one there."""
    return int(x.shape[-1]) if graph.timing == "pipelined" else None


def _pad_for_latency(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """Append zero steps so a pipelined graph's outputs see the whole input."""
    extra = graph.latency() if graph.timing == "pipelined" else 0
    if extra == 0:
        return x
    return torch.cat([x, torch.zeros(*x.shape[:-1], extra, dtype=x.dtype)], dim=-1)


def _row_abs_max(q: Projection) -> float:
    """Largest sum of |weight| into one target neuron (every source active)."""
    w = np.abs(np.asarray(q.weight, dtype=np.float64))
    return float(w.reshape(w.shape[0], -1).sum(axis=1).max(initial=0.0))


# -- one population ------------------------------------------------------------------------------
def _quantize_population(fixed_graph, pop, incoming, pops, units, horizon, stat, report,
                         fixed_bias_exp, rates=None) -> tuple[float, float, int]:
    """Quantise `pop` and its incoming projections in place; returns what it emits: (payload per float unit,
    largest |float value|, message bits) — a spike is (1, 1, 0); a relay's payload is its input, in units of
    2**6 / S."""
    neuron = pop.neuron
    theta = neuron.threshold
    relay = neuron.graded
    if theta is not None and theta < 0 and not relay:
        raise UserError(f"population '{pop.name}': negative threshold {theta} cannot be represented")
    # float weight per payload unit of the source, and the largest input one step can bring (float units)
    float_w = [np.asarray(q.weight, dtype=np.float64) / units[q.source][0] for q in incoming]
    a_worst = sum(_row_abs_max(q) * units[q.source][1] for q in incoming)
    bias = np.zeros(1) if pop.bias is None else np.asarray(pop.bias, dtype=np.float64)
    b_max = float(np.abs(bias).max(initial=0.0))
    if relay:
        if b_max > 0:
            raise UserError(f"population '{pop.name}': a graded relay cannot have a bias")
        theta, b_max, bias = None, 0.0, np.zeros(1)
    keep_v = 1.0 - float(neuron.dv)
    if relay:
        # the payload is the step's input, a 24-bit signed graded spike: no state, no voltage bound
        bound_a = bound_v = a_worst
        bound_from = "worst-case"
    elif stat is not None:
        bound_a = stat["a"] * CALIBRATION_MARGIN
        bound_v = (stat["v"] + stat["a"] + b_max) * CALIBRATION_MARGIN
        bound_from = "calibration"
    else:
        bound_a = a_worst
        bound_v = (a_worst + b_max) / (1 - keep_v) if keep_v < 1 else horizon * (a_worst + b_max)
        if theta is not None and neuron.reset != "none":
            bound_v = max(bound_v, theta + a_worst + b_max)
        bound_from = "worst-case"
    # u (or a relay's payload) must never wrap (worst case); v saturates (explicitly) only beyond the bound.
    limits = [UV_LIMIT / max(a_worst, 1e-300), UV_LIMIT / max(bound_v, 1e-300)]
    if b_max > 0:
        limits.append(BIAS_MANT_MAX * (1 << (BIAS_EXP_MAX if fixed_bias_exp is None else fixed_bias_exp)) / b_max)
    w_peak = max((float(np.abs(w).max(initial=0.0)) for w in float_w), default=0.0)
    if w_peak > 0:
        limits.append(MANT_MAX * 2.0 ** (W_EXP_MAX + 1 + ACT_SHIFT) / w_peak)
    if theta:
        limits.append(VTH_MAX * (1 << ACT_SHIFT) / theta)
    s_max = min(limits)
    candidates = _candidate_scales(pop.name, theta, s_max)
    best = None
    for scale in candidates:
        err = sum(_quantize_weight(w, scale)[3] for w in float_w) + _quantize_bias(bias, scale, fixed_bias_exp)[2]
        if best is None or err < best[0]:
            best = (err, scale)
    scale = best[1]

    for q, w in zip(incoming, float_w):
        mant2, exp, sat, sq_err, used = _quantize_weight(w, scale)
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
    mant, bias_exp, _, bias_sat = _quantize_bias(bias, scale, fixed_bias_exp, with_saturation=True)
    pop.bias = None if pop.bias is None else mant.reshape(np.shape(pop.bias))
    pop.bias_exp = bias_exp
    du = int(np.clip(round(float(neuron.du) * DECAY_UNITY) - 1, 0, DECAY_UNITY - 1))
    dv = int(np.clip(round(float(neuron.dv) * DECAY_UNITY), 0, DECAY_UNITY - 1))
    decay_error = max(abs((du + 1) / DECAY_UNITY - float(neuron.du)), abs(dv / DECAY_UNITY - float(neuron.dv)))
    vth = None if theta is None else int(round(theta * scale / (1 << ACT_SHIFT)))
    pop.neuron = Neuron(threshold=vth, du=du, dv=dv, reset=neuron.reset,
                        reset_value=int(round(neuron.reset_value * scale)),
                        reset_amount=int(round(neuron.reset_amount * scale)), graded=False)
    if relay:
        pop.neuron = Neuron(threshold=0, du=DECAY_UNITY - 1, dv=DECAY_UNITY - 1, graded=True)
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
        err = (np.asarray(q.weight, dtype=np.float64) * 2.0 ** (q.weight_exp + ACT_SHIFT) / scale - w)
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


def _candidate_scales(name: str, theta, s_max: float) -> list[float]:
    """Scales in the top octave below s_max; for a spiking population those that make vth an integer."""
    if theta is None or theta == 0:
        return [s_max * 2.0 ** (-k / SEARCH_POINTS) for k in range(SEARCH_POINTS)]
    vth_max = math.floor(theta * s_max / (1 << ACT_SHIFT))
    if vth_max < 1:
        raise UserError(f"population '{name}': threshold {theta:g} cannot be represented: the 24-bit headroom "
                        f"allows at most {s_max:.3g} units per volt, below the {(1 << ACT_SHIFT) / theta:.3g} "
                        f"a threshold mantissa of 1 needs")
    vths = sorted({max(1, math.floor(vth_max * 2.0 ** (-k / SEARCH_POINTS))) for k in range(SEARCH_POINTS)})
    return [v * (1 << ACT_SHIFT) / theta for v in vths]


def _quantize_weight(w: np.ndarray, scale: float):
    """(Lava weights 2m as int32, exponent, saturated count, squared error in float units, mantissa bits used)."""
    x = w * scale / (1 << (ACT_SHIFT + 1))            # = m * 2**e
    peak = max(max(float(x.max(initial=0.0)), 0.0) / MANT_MAX, max(-float(x.min(initial=0.0)), 0.0) / -MANT_MIN)
    exp = 0 if peak == 0 else int(np.clip(math.ceil(math.log2(peak)), W_EXP_MIN, W_EXP_MAX))
    m = np.round(x / 2.0 ** exp)
    if exp < W_EXP_MAX and (m.max(initial=0) > MANT_MAX or m.min(initial=0) < MANT_MIN):
        exp += 1                                        # log2 rounding put the peak just over the edge
        m = np.round(x / 2.0 ** exp)
    saturated = int(((m > MANT_MAX) | (m < MANT_MIN)).sum())
    m = np.clip(m, MANT_MIN, MANT_MAX)
    err = float(((m * 2.0 ** exp - x) ** 2).sum()) * ((1 << (ACT_SHIFT + 1)) / scale) ** 2
    # two's-complement bits of the widest mantissa (-128 fits 8 bits, +128 would need 9)
    used = max(int(m.max(initial=0)).bit_length(), int(-m.min(initial=0) - 1).bit_length()) + 1 if np.any(m) else 0
    return (2 * m).astype(np.int32), exp, saturated, err, used


def _quantize_bias(bias: np.ndarray, scale: float, exp: Optional[int] = None, with_saturation: bool = False):
    """(mantissa int32, exponent 0..7 (the smallest that fits, unless given), squared error in float units
    [, saturated count])."""
    x = bias * scale
    peak = float(np.abs(x).max(initial=0.0))
    if exp is None:
        exp = 0
        while exp < BIAS_EXP_MAX and peak / (1 << exp) > BIAS_MANT_MAX:
            exp += 1
    m = np.round(x / (1 << exp))
    sat = int(((m > BIAS_MANT_MAX) | (m < BIAS_MANT_MIN)).sum())
    m = np.clip(m, BIAS_MANT_MIN, BIAS_MANT_MAX)
    err = float(((m * (1 << exp) - x) ** 2).sum()) / scale ** 2
    if with_saturation:
        return m.astype(np.int32), exp, err, sat
    return m.astype(np.int32), exp, err


# -- evaluation on calibration data --------------------------------------------------------------
def evaluate(graph: Graph, fixed: Graph, x, labels, report: QuantReport, progress: bool = False) -> None:
    """Spike agreement per population, fixed-point peaks and saturations, class agreement and accuracies."""
    from ..sim import Simulator
    reset = _sample_reset(graph, x)
    steps = int(x.shape[-1])
    depth = graph.meta.get("depth", {}) if graph.timing == "pipelined" else {}
    x = _pad_for_latency(graph, x.double())
    names = [p.name for p in graph.populations if not p.is_input and not p.neuron.graded]
    agree = {n: 0.0 for n in names}
    peak_u = {n: 0 for n in names}
    peak_v = {n: 0 for n in names}
    sat = {n: 0 for n in names}
    float_cls, fixed_cls = [], []
    readout = graph.outputs[0].name if graph.outputs else None
    float_sim, fixed_sim = Simulator(graph), Simulator(fixed)
    for start in _batches(x.shape[0], "float vs fixed", progress):
        xb = x[start:start + BATCH]
        ref = float_sim.run(xb, record=("spikes",), count=False, reset_interval=reset)
        got = fixed_sim.run(encode_input(fixed, xb), record=("spikes", "u", "v"), count=False, reset_interval=reset)
        for n in names:
            window = slice(depth.get(n, 0), depth.get(n, 0) + steps)      # the steps that hold the sample
            same = ref.spikes[n][..., window] == got.spikes[n][..., window].to(ref.spikes[n].dtype)
            agree[n] += float(same.double().mean()) * len(xb)
            peak_u[n] = max(peak_u[n], int(got.u[n].abs().max()))
            peak_v[n] = max(peak_v[n], int(got.v[n].abs().max()))
            sat[n] += int((got.v[n].abs() >= UV_LIMIT).sum())
        if readout is not None:
            float_cls.append(ref.outputs[readout][..., -1].argmax(dim=1))
            fixed_cls.append(got.outputs[readout][..., -1].argmax(dim=1))
    count = x.shape[0]
    report.evaluation_samples = int(count)
    for p in report.populations:
        if p.name not in agree:          # a relay's payload has no spikes to agree on
            continue
        p.spike_agreement = agree[p.name] / count
        p.peak_u = peak_u[p.name] / (UV_LIMIT + 1)
        p.peak_v = peak_v[p.name] / (UV_LIMIT + 1)
        p.v_saturations = sat[p.name]
    if readout is not None:
        fc, qc = torch.cat(float_cls), torch.cat(fixed_cls)
        report.argmax_agreement = float((fc == qc).double().mean())
        if labels is not None:
            y = labels.to(fc.device).long()
            report.float_accuracy = float((fc == y).double().mean())
            report.fixed_accuracy = float((qc == y).double().mean())
