"""Loihi's fixed-point arithmetic: every bit width, shift and unit, the float <-> fixed conversions, and the one
range check of a fixed-point graph. The only place these rules are written; every stage imports them.

The numbers mirror Lava's bit-accurate CPU models, which compute what the chip computes:
- `lava.proc.lif.models.AbstractPyLifModelFixed` / `PyLifModelBitAcc` (CUBA neuron): 24-bit u and v
  (`uv_bitwidth`), decays in 1/4096 (`decay_shift` 12), the current decaying by `du + ds_offset` (ds_offset 1),
  synaptic input and threshold MSB-aligned by 6 bits (`act_shift`, `vth_shift`), bias mantissa 13 bits signed
  (`bias_mant` precision 13) with a 3-bit exponent (`bias_exp` precision 3), threshold mantissa 17 bits
  (`vth` precision 17); u wraps once into 24 bits, v saturates at +-(2**23 - 1), a neuron fires when v > vth << 6.
- `lava.proc.dense.models.PyDenseModelBitAcc` and `lava.utils.weightutils` (synapses): 8-bit weights plus sign
  (`clip_weights`: mixed signs -256..255, one sign magnitude <= 255), the accumulated sum shifted by
  `weight_exp`; `lava.proc.conv` wraps a convolution's result to 24 signed bits (`signed_clamp`).
- `lava.lib.dl.netx.hdf5` (NetX files): `du = iDecay - 1` (so iDecay 0 is a current that never decays),
  `bias_exp` 6 for every neuron, the default neuron of a dense layer without one (iDecay 0, vDecay 4096,
  vThMant 1 << 17), axonal delays up to 62 steps.

Units of a fixed-point graph (docs/graph-ir.md): `du`, `dv` in 1/4096; threshold = the mantissa vth; weights are
Lava's weight integers; a projection delivers `(sum w s) << weight_exp` (arithmetic right shift if negative),
which the neuron shifts left by `ACT_SHIFT`.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .errors import ChipRangeError, InputError

# -- the neuron (lava.proc.lif.models.AbstractPyLifModelFixed) --------------------------------------------------
STATE_BITS = 24                              # u and v registers (uv_bitwidth)
MAX_UV = 1 << (STATE_BITS - 1)               # max_uv_val = 2**23: u wraps by 2 * MAX_UV beyond +-MAX_UV
V_LIMIT = MAX_UV - 1                         # v saturates at +-(2**23 - 1)
DECAY_SHIFT = 12                             # decays are in 1/4096 (decay_shift)
DECAY_UNITY = 1 << DECAY_SHIFT               # 4096 (decay_unity)
CURRENT_DECAY_OFFSET = 1                     # ds_offset: the current decays by (du + 1) / 4096
VOLTAGE_DECAY_OFFSET = 0                     # dm_offset
DU_MIN = -CURRENT_DECAY_OFFSET               # du = -1: netx's integrator (iDecay 0), no current decay
DU_MAX = DECAY_UNITY - 1                     # du = 4095: the current does not persist
DV_MIN, DV_MAX = 0, DECAY_UNITY              # dv = 4096: the voltage does not persist (netx's vDecay 4096)
ACT_SHIFT = 6                                # synaptic input is shifted left by 6 (act_shift)
VTH_SHIFT = 6                                # so is the threshold mantissa (vth_shift)
VTH_BITS = 17                                # unsigned threshold mantissa (vth precision 17)
VTH_MAX = (1 << VTH_BITS) - 1
VTH_NEVER = 1 << VTH_BITS                    # netx's threshold for a neuron that never fires: 2**17 << 6 = 2**23
BIAS_MANT_BITS = 13                          # signed bias mantissa (bias_mant precision 13)
BIAS_MANT_MAX = (1 << (BIAS_MANT_BITS - 1)) - 1
BIAS_MANT_MIN = -(1 << (BIAS_MANT_BITS - 1))
BIAS_EXP_BITS = 3                            # bias exponent (bias_exp precision 3): 0..7
BIAS_EXP_MAX = (1 << BIAS_EXP_BITS) - 1
LAVA_INT_BITS = 32                           # Lava's numpy models compute in int32 (wrapping)
INT32_HALF = 1 << (LAVA_INT_BITS - 1)

# -- synapses (lava.proc.dense.models.PyDenseModelBitAcc, lava.utils.weightutils) ------------------------------
WEIGHT_BITS = 8                              # magnitude bits of a synaptic weight
WEIGHT_MAX = (1 << WEIGHT_BITS) - 1          # 255: one-sign weights, and mixed signs up to 255
WEIGHT_MIN = -(1 << WEIGHT_BITS)             # -256: mixed-sign weights (clip_weights)
MANT_BITS = WEIGHT_BITS                      # the quantiser's signed mantissa m (the stored weight is 2m)
MANT_MAX = (1 << (MANT_BITS - 1)) - 1        # 127
MANT_MIN = -(1 << (MANT_BITS - 1))           # -128
W_EXP_MIN, W_EXP_MAX = -8, 7                 # weight exponent range the quantiser uses (Loihi's 4-bit signed)
CONV_RESULT_BITS = 24                        # a convolution's result wraps to 24 signed bits (lava.proc.conv)
SYNAPTIC_INPUT_BITS = 16                     # the neuron's a_in port (int16, precision 16) and Dense's a_out
MAX_MESSAGE_BITS = STATE_BITS                # graded payloads: at most the 24-bit state they come from
DEFAULT_MESSAGE_BITS = 8                     # a graded input's payload bits when nothing says otherwise
GRADED_BITS = STATE_BITS                     # a graded relay's payload width when its projection names none

# -- sigma-delta neurons (lava.proc.sdn.models: PySigmaDeltaModelFixed, PyDeltaModelFixed, PySigmaModelFixed) ------
SDNN_EXP_BITS = 3                            # spike_exp and state_exp (precision 3): 0..7
SDNN_EXP_MAX = (1 << SDNN_EXP_BITS) - 1
SDNN_STATE_BITS = STATE_BITS                 # vth, sigma, act (precision 24): the threshold's register


# -- NetX files (lava.lib.dl.netx.hdf5) --------------------------------------------------------------------------
NETX_BIAS_EXP = 6                            # netx gives every CUBA neuron bias_exp 6
NETX_WEIGHT_EXP = 0                          # stored integers act at exponent 0 in netx: its dense exponent only
                                             # undoes optimize_weight_bits' own shift; its Conv has no exponent
NETX_MAX_DELAY = 62                          # netx (and Loihi's 6-bit axonal delay) allow delays 0..62
NETX_SDNN_SPIKE_EXP = 6                      # hdf5.Network(spike_exp=6): the graded spike's fraction bits
NETX_SDNN_STATE_EXP = 6                      # netx gives every sigma-delta neuron state_exp 6
NETX_SDNN_MESSAGE_BITS = 16                  # an SDNN neuron group without messageBits sends 16-bit payloads
NETX_DEFAULT_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": DECAY_UNITY, "vThMant": VTH_NEVER}


# -- decays ------------------------------------------------------------------------------------------------------
def du_from_fraction(lost: float) -> int:
    """Lava's du for a current that loses the fraction `lost` per step (it loses (du + 1) / 4096)."""
    return int(np.clip(round(float(lost) * DECAY_UNITY) - CURRENT_DECAY_OFFSET, 0, DU_MAX))


def dv_from_fraction(lost: float) -> int:
    """Lava's dv for a voltage that loses the fraction `lost` per step (dv / 4096; 4096 = no persistence)."""
    return int(np.clip(round(float(lost) * DECAY_UNITY), DV_MIN, DU_MAX))


def du_fraction(du: int) -> float:
    """The fraction of the current lost per step for Lava's du."""
    return (float(du) + CURRENT_DECAY_OFFSET) / DECAY_UNITY


def dv_fraction(dv: int) -> float:
    """The fraction of the voltage lost per step for Lava's dv."""
    return (float(dv) + VOLTAGE_DECAY_OFFSET) / DECAY_UNITY


def chip_decay(kept: float) -> float:
    """The fraction of the voltage kept per step that Lava's 12-bit dv represents for a float `kept`."""
    return 1.0 - dv_fraction(dv_from_fraction(1.0 - float(kept)))


def keep_u(du):
    """What Lava multiplies the current by before the shift right by 12: 4096 - (du + 1) (an int, or an int64
    array for per-neuron du)."""
    if np.ndim(du):
        return DECAY_UNITY - (np.asarray(du, dtype=np.int64) + CURRENT_DECAY_OFFSET)
    return DECAY_UNITY - (int(du) + CURRENT_DECAY_OFFSET)


def keep_v(dv):
    """What Lava multiplies the voltage by before the shift right by 12: 4096 - dv (int, or int64 array)."""
    if np.ndim(dv):
        return DECAY_UNITY - (np.asarray(dv, dtype=np.int64) + VOLTAGE_DECAY_OFFSET)
    return DECAY_UNITY - (int(dv) + VOLTAGE_DECAY_OFFSET)


def du_from_netx(i_decay):
    """netx's `du = iDecay - 1` (iDecay 0 gives du -1, an integrator); per-neuron iDecay: an int64 array."""
    if np.ndim(i_decay):
        return np.asarray(i_decay, dtype=np.int64) - CURRENT_DECAY_OFFSET
    return int(i_decay) - CURRENT_DECAY_OFFSET


def netx_i_decay(du):
    """The `iDecay` a NetX file stores for Lava's du (per-neuron du: an int64 array)."""
    if np.ndim(du):
        return np.asarray(du, dtype=np.int64) + CURRENT_DECAY_OFFSET
    return int(du) + CURRENT_DECAY_OFFSET


# -- sigma-delta ---------------------------------------------------------------------------------------------
def sdnn_scale(spike_exp: int, state_exp: int) -> int:
    """What lava.proc.sdn multiplies a sigma-delta threshold and bias by (and a Delta shifts its input left by):
    1 << (spike_exp + state_exp)."""
    return 1 << (int(spike_exp) + int(state_exp))


# -- threshold, bias, voltage ------------------------------------------------------------------------------------
def effective_threshold(vth: int) -> int:
    """The voltage a neuron must exceed to fire: vth << 6."""
    return int(vth) << VTH_SHIFT


def effective_bias(mant, exp: int):
    """bias_mant << bias_exp (arithmetic right shift for a negative exponent), as Lava's `scale_bias`."""
    mant = np.asarray(mant, dtype=np.int64)
    return mant << exp if exp >= 0 else mant >> -exp


def voltage_unit() -> int:
    """The fixed-point voltage of one unit of synaptic input (a_in << 6)."""
    return 1 << ACT_SHIFT


# -- quantisation primitives (used by export.quantize and by quantisation-aware training) ------------------------
# Signed weight mantissa widths stock netx loads exactly: its `optimize_weight_bits` gives num_weight_bits 1..8, but
# a 1-bit two's-complement mantissa (-1 or 0) makes a matrix with no positive weight, which netx marks mixed-sign
# and Lava's Dense then treats as inhibitory, halving every weight (tests/export/test_weight_bits.py).
NETX_WEIGHT_BITS = (2, WEIGHT_BITS)


EXP_TOLERANCE = 1e-9                         # relative slack (in log2) of the weight exponent's choice


def check_weight_bits(bits) -> int:
    """`bits` as an int if it is a signed weight-mantissa width that stock lava-dl netx loads exactly (2..8),
    else a one-line ChipRangeError."""
    lo, hi = NETX_WEIGHT_BITS
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not lo <= int(bits) <= hi:
        raise ChipRangeError(f"weight bits {bits!r}: signed weight mantissas of {lo}..{hi} bits are what Loihi's "
                             f"synapses and stock netx (num_weight_bits) load exactly")
    return int(bits)


def mantissa_range(bits: int = MANT_BITS) -> tuple[int, int]:
    """(m_min, m_max) of a signed two's-complement `bits`-bit mantissa."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def quantize_weight(w: np.ndarray, scale: float, bits: int = MANT_BITS, exp: Optional[int] = None):
    """Float weights `w` (per payload unit of the source) into a target of integer scale `scale`.

    Returns (Lava weight integers 2m as int32, exponent e, saturated count, squared error in float units, mantissa
    bits used): m is a signed `bits`-bit mantissa with m * 2**(e + ACT_SHIFT + 1) = w * scale, e in
    [W_EXP_MIN, W_EXP_MAX] (the smallest that fits, unless `exp` pins it), rounded to nearest; what does not fit
    is clipped (and counted)."""
    check_weight_bits(bits)
    if exp is not None and not W_EXP_MIN <= exp <= W_EXP_MAX:
        raise ChipRangeError(f"weight exponent {exp} is outside {W_EXP_MIN}..{W_EXP_MAX}")
    m_min, m_max = mantissa_range(bits)
    unit = 1 << (ACT_SHIFT + 1)
    x = w * scale / unit                # = m * 2**e
    peak = max(max(float(x.max(initial=0.0)), 0.0) / m_max,
               max(-float(x.min(initial=0.0)), 0.0) / -m_min)
    pinned = exp is not None
    if not pinned:
        # the tolerance keeps weights already on this grid (quantisation-aware training's) at their own exponent
        exp = 0 if peak == 0 else int(np.clip(math.ceil(math.log2(peak) - EXP_TOLERANCE), W_EXP_MIN, W_EXP_MAX))
    m = np.round(x / 2.0 ** exp)
    if not pinned and exp < W_EXP_MAX and (m.max(initial=0) > m_max or m.min(initial=0) < m_min):
        exp += 1                        # log2 rounding put the peak just over the edge
        m = np.round(x / 2.0 ** exp)
    saturated = int(((m > m_max) | (m < m_min)).sum())
    m = np.clip(m, m_min, m_max)
    err = float(((m * 2.0 ** exp - x) ** 2).sum()) * (unit / scale) ** 2
    # two's-complement bits of the widest mantissa (-128 fits 8 bits, +128 would need 9)
    used = max(int(m.max(initial=0)).bit_length(), int(-m.min(initial=0) - 1).bit_length()) + 1 if np.any(m) else 0
    return (2 * m).astype(np.int32), exp, saturated, err, used


def weight_value(weight, exp: int, scale: float) -> np.ndarray:
    """The float weight (per payload unit of the source, in float units of the target's v) that Lava's weight
    integers `weight` with exponent `exp` represent in a target of integer scale `scale`."""
    return np.asarray(weight, dtype=np.float64) * 2.0 ** (exp + ACT_SHIFT) / scale


def quantize_bias(bias: np.ndarray, scale: float, exp: Optional[int] = None):
    """Float bias into a population of integer scale `scale`: (mantissa int32, exponent 0..7 (the smallest that
    fits, unless given), squared error in float units, saturated count)."""
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
    return m.astype(np.int32), exp, err, sat


def threshold_mantissa(theta: float, scale: float) -> int:
    """vth for a float threshold `theta` in a population of integer scale `scale`: round(theta * scale / 64)."""
    return int(round(theta * scale / (1 << VTH_SHIFT)))


# -- the per-population scale (export.quantize and quantisation-aware training share it) --------------------------
SCALE_SEARCH_POINTS = 16                     # scales tried in the top octave below a population's bound
CALIBRATION_MARGIN = 1.25                    # headroom over the peaks seen on calibration data


def calibrated_bounds(peak_a: float, peak_v: float, b_max: float) -> tuple[float, float]:
    """(bound of |u|, bound of |v|) from the peaks of a population's synaptic input and voltage on data, in float
    units: the peaks (v plus one step of input and bias) with CALIBRATION_MARGIN."""
    return peak_a * CALIBRATION_MARGIN, (peak_v + peak_a + b_max) * CALIBRATION_MARGIN


def candidate_scales(name: str, theta, s_max: float) -> list[float]:
    """Scales in the top octave below s_max; for a spiking population those that make vth an integer."""
    if theta is None or theta == 0:
        return [s_max * 2.0 ** (-k / SCALE_SEARCH_POINTS) for k in range(SCALE_SEARCH_POINTS)]
    vth_max = math.floor(theta * s_max / (1 << VTH_SHIFT))
    if vth_max < 1:
        raise InputError(f"population '{name}': threshold {theta:g} cannot be represented: the 24-bit headroom "
                        f"allows at most {s_max:.3g} units per volt, below the {(1 << VTH_SHIFT) / theta:.3g} "
                        f"a threshold mantissa of 1 needs")
    vths = sorted({max(1, math.floor(vth_max * 2.0 ** (-k / SCALE_SEARCH_POINTS)))
                   for k in range(SCALE_SEARCH_POINTS)})
    return [v * (1 << VTH_SHIFT) / theta for v in vths]


def scale_bound(theta, float_ws, b_max: float, a_worst: float, bound_v: float, bias_exp: Optional[int] = None,
                bits: int = MANT_BITS, weight_exp: Optional[int] = None) -> float:
    """The largest integer scale (fixed v per float unit) a population may take: the worst-case input of one step
    `a_worst` must not wrap u, the voltage bound `bound_v` must fit v, and the threshold (17 bits), the largest
    bias `b_max` (13-bit mantissa, exponent `bias_exp` or up to 7) and the largest incoming weight of `float_ws`
    (a `bits`-bit mantissa at exponent 7, or at `weight_exp` when that pins every exponent) must be
    representable; the weights only as far as a threshold mantissa of 1 still fits (beyond, the largest weights
    saturate, counted). Units: float units of v."""
    limits = [V_LIMIT / max(a_worst, 1e-300), V_LIMIT / max(bound_v, 1e-300)]
    if b_max > 0:
        limits.append(BIAS_MANT_MAX * (1 << (BIAS_EXP_MAX if bias_exp is None else bias_exp)) / b_max)
    w_peak = max((float(np.abs(w).max(initial=0.0)) for w in float_ws), default=0.0)
    if w_peak > 0:
        # weights beyond the largest exponent saturate (counted) rather than leave no threshold mantissa >= 1
        top = W_EXP_MAX if weight_exp is None else weight_exp
        limits.append(max(mantissa_range(bits)[1] * 2.0 ** (top + 1 + ACT_SHIFT) / w_peak,
                          (1 << VTH_SHIFT) / theta if theta else 0.0))
    if theta:
        limits.append(VTH_MAX * (1 << VTH_SHIFT) / theta)
    return min(limits)


def population_scale(name: str, theta, float_ws, bias, a_worst: float, bound_v: float,
                     bias_exp: Optional[int] = None, bits: int = MANT_BITS, weight_exp: Optional[int] = None) -> float:
    """The one integer scale of a population (docs/quantisation.md): among `candidate_scales` below `scale_bound`,
    the one that minimises the squared error of every incoming weight (`float_ws`, each per payload unit of its
    source, quantised to `bits`-bit mantissas, at exponent `weight_exp` if given) and of the bias, in float units
    of v."""
    bias = np.zeros(1) if bias is None else np.asarray(bias, dtype=np.float64)
    s_max = scale_bound(theta, float_ws, float(np.abs(bias).max(initial=0.0)), a_worst, bound_v, bias_exp, bits,
                        weight_exp)
    best = None
    for scale in candidate_scales(name, theta, s_max):
        err = (sum(quantize_weight(w, scale, bits, weight_exp)[3] for w in float_ws)
               + quantize_bias(bias, scale, bias_exp)[2])
        if best is None or err < best[0]:
            best = (err, scale)
    return best[1]


# -- synapse limits ----------------------------------------------------------------------------------------------
def fits_synapse(weight: np.ndarray) -> bool:
    """True if Lava's fixed-point Dense keeps these integer weights unclipped: mixed signs -256..255, one sign
    magnitude <= 255."""
    if not np.size(weight):
        return True
    lo, hi = int(np.min(weight)), int(np.max(weight))
    return WEIGHT_MIN <= lo and hi <= WEIGHT_MAX if lo < 0 < hi else max(-lo, hi) <= WEIGHT_MAX


def netx_dense_exact(weight: np.ndarray) -> bool:
    """True if netx's weight-bit optimiser (`optimize_weight_bits`, then Lava's clip and truncation) keeps these
    integer dense weights exactly: mixed signs within [-256, 254], excitatory within [0, 255], inhibitory
    within [-255, -1], and not all zero (netx divides by the largest weight)."""
    lo, hi = int(np.min(weight)), int(np.max(weight))
    if hi < 0:
        return lo >= WEIGHT_MIN + 1
    if lo >= 0:
        return 0 < hi <= WEIGHT_MAX
    return lo >= WEIGHT_MIN and hi <= WEIGHT_MAX - 1


def dense_weights(weight: np.ndarray, exp: int, name: str) -> tuple[np.ndarray, int, int]:
    """Integer weights and exponent that Lava's fixed-point Dense keeps exactly, and its `num_weight_bits`.

    Lava clips weights to 8 bits plus sign and drops the low bits beyond `num_weight_bits`. Weights out of range
    are halved while even (exponent + 1, which leaves every shifted sum unchanged); anything else cannot run on
    Loihi unchanged and raises ChipRangeError."""
    if weight.size and not np.all(weight == np.round(weight)):
        raise ChipRangeError(f"projection '{name}': fixed-point weights must be integers")
    weight = np.asarray(weight).astype(np.int64)
    while weight.size and not fits_synapse(weight) and not np.any(weight % 2):
        weight, exp = weight // 2, exp + 1
    if not fits_synapse(weight):
        raise ChipRangeError(f"projection '{name}': weights {weight.min()}..{weight.max()} exceed Loihi's "
                             f"{WEIGHT_BITS}-bit synapses (mixed signs: {WEIGHT_MIN}..{WEIGHT_MAX}, one sign: "
                             f"magnitude <= {WEIGHT_MAX})")
    mixed = weight.size and weight.min() < 0 < weight.max()
    # Mixed-sign weights carry the sign in an extra bit: 9 weight bits keep all 8 magnitude bits.
    return weight, exp, WEIGHT_BITS + 1 if mixed else WEIGHT_BITS


# -- inputs ------------------------------------------------------------------------------------------------------
def encode_input(fixed, x):
    """The integer input a fixed graph takes for the float graph's input x `[N, *shape, T]` (a torch tensor):
    spikes (x > 0) for a binary input, round(x * input_scale) for a graded one (InputError if a payload does not
    fit the graph's message bits)."""
    import torch
    x = torch.as_tensor(x)
    if len(fixed.inputs) != 1:
        raise InputError(f"the graph has {len(fixed.inputs)} input populations; encode_input needs one")
    if not fixed.inputs[0].neuron.graded:
        return (x > 0).to(torch.int64)
    payload = torch.round(x.double() * fixed.input_scale).to(torch.int64)
    bits = fixed.message_bits
    if payload.numel() and int(payload.abs().max()) >= (1 << bits):
        raise InputError(f"input payload {int(payload.abs().max())} does not fit the graph's {bits} message bits")
    return payload


# -- the range check of a fixed-point graph ----------------------------------------------------------------------
INT64_MAX = np.iinfo(np.int64).max          # not a register: the widest integer numpy and the kernels compute in


def integers(value, what: str, error: type = ChipRangeError) -> np.ndarray:
    """`value` as an int64 array, refused in one line (`error`, naming `what`) unless every entry is a finite
    integer within int64: non-numeric, NaN / inf, fractions, and values beyond int64 (which numpy's cast would
    silently wrap, e.g. 1e30 to int64 min) are never converted."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT64_MAX:
        raise error(f"{what} {value} is beyond 64-bit integers (and any register of the chip)")
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise error(f"{what} is not numeric (dtype {array.dtype})")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise error(f"{what} is complex")
    flat = array.reshape(-1)
    if not np.all(np.isfinite(flat)):
        raise error(f"{what} must be finite integers, found {flat[~np.isfinite(flat)][0]}")
    if not np.array_equal(flat, np.round(flat)):
        raise error(f"{what} must be finite integers, found {flat[flat != np.round(flat)][0]}")
    if flat.size:
        wide = np.abs(flat) >= 2.0 ** 63 if np.issubdtype(array.dtype, np.floating) else flat > INT64_MAX
        if np.any(wide):
            raise error(f"{what} {flat[wide][0]:g} is beyond 64-bit integers (and any register of the chip)")
    return array.astype(np.int64)


def _integer(value, what: str) -> np.ndarray:
    return integers(value, what)


def _within(value, lo: int, hi: int, what: str) -> None:
    array = _integer(value, what)
    if array.size and (array.min() < lo or array.max() > hi):
        raise ChipRangeError(f"{what} {array.min()}..{array.max()} is outside {lo}..{hi}")


def check_message_bits(bits, what: str) -> None:
    """A graded payload's bits: 0 (binary spikes) .. MAX_MESSAGE_BITS."""
    _within(bits, 0, MAX_MESSAGE_BITS, what)


def _check_sigma_delta(pop, where: str) -> None:
    n = pop.neuron
    _within(n.spike_exp, 0, SDNN_EXP_MAX, f"{where}: spike_exp")
    _within(n.state_exp, 0, SDNN_EXP_MAX, f"{where}: state_exp")
    scale = sdnn_scale(n.spike_exp, n.state_exp)
    if n.model == "sigma":
        if n.threshold is not None or pop.bias is not None:
            raise ChipRangeError(f"{where}: a sigma neuron has no threshold and no bias")
        return
    if n.threshold is None:
        raise ChipRangeError(f"{where}: a {n.model} neuron needs a threshold")
    _within(n.threshold, 0, ((1 << (SDNN_STATE_BITS - 1)) - 1) // scale, f"{where}: threshold mantissa")
    if pop.bias is not None:
        if n.model == "delta":
            raise ChipRangeError(f"{where}: a delta neuron has no bias")
        limit = 1 << (SDNN_STATE_BITS - 1)      # Lava's models keep more than the bias's 16 bits: the state's 24
        _within(pop.bias, -limit // scale, (limit - 1) // scale, f"{where}: bias")
    _within(pop.bias_exp, 0, 0, f"{where}: bias exponent (sigma-delta biases are scaled by spike_exp + state_exp)")


def check_fixed(graph) -> None:
    """Raise ChipRangeError (one line, naming the population or projection and the field) for any parameter of a
    fixed-point graph that the chip's registers cannot hold. `Graph.validate()` calls it for fixed graphs."""
    for pop in graph.populations:
        n, where = pop.neuron, f"population '{pop.name}'"
        if n.graded:
            continue          # a relay forwards its input; it has no neuron state of its own
        if n.sigma_delta:
            _check_sigma_delta(pop, where)
            continue
        _within(n.du, DU_MIN, DU_MAX, f"{where}: du")
        _within(n.dv, DV_MIN, DV_MAX, f"{where}: dv")
        if n.threshold is not None:
            _within(n.threshold, 0, VTH_NEVER, f"{where}: threshold mantissa")
        _within(n.reset_value, -V_LIMIT, V_LIMIT, f"{where}: reset value")
        _within(n.reset_amount, -V_LIMIT, V_LIMIT, f"{where}: reset amount")
        if pop.bias is not None:
            _within(pop.bias, BIAS_MANT_MIN, BIAS_MANT_MAX, f"{where}: bias mantissa")
        _within(pop.bias_exp, 0, BIAS_EXP_MAX, f"{where}: bias exponent")
    for proj in graph.projections:
        where = f"projection '{proj.name}'"
        _integer(proj.weight, f"{where}: weights")
        if not fits_synapse(proj.weight):
            w = np.asarray(proj.weight)
            raise ChipRangeError(f"{where}: weights {w.min()}..{w.max()} exceed Loihi's {WEIGHT_BITS}-bit "
                                 f"synapses (mixed signs: {WEIGHT_MIN}..{WEIGHT_MAX}, one sign: magnitude <= "
                                 f"{WEIGHT_MAX})")
        _within(proj.weight_exp, W_EXP_MIN, W_EXP_MAX, f"{where}: weight exponent")
        check_message_bits(proj.num_message_bits, f"{where}: message bits")
