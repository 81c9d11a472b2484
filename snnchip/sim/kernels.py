"""Compiled CPU kernel: Lava's bit-accurate CUBA neuron over a run of steps, in one call (numba).

The time-batched executor computes a population's synaptic input for many steps at once; what remains is the
neuron's own recurrence, which a Python loop of torch operations would run at a few microseconds per operation.
This kernel runs it in machine code on int64, operation by operation as `lava.proc.lif.models.PyLifModelBitAcc`
(and as `neurons.FixedCuba.step`, which `tests/sim` check it against): int32 wrap-around of every sum, Lava's
one-step 24-bit current wrap, 24-bit voltage clip, decays sign(x) * (|x * keep| >> 12), strict `>` firing.
States travel as integer-valued float64 (the executor's representation); every value is exact.
"""
from __future__ import annotations

import numba
import numpy as np

from ..loihi import ACT_SHIFT, DECAY_SHIFT, DECAY_UNITY, INT32_HALF, MAX_UV, V_LIMIT
from .neurons import RESETS

INT32_MASK = 2 * INT32_HALF - 1
ROUND_TO_ZERO = DECAY_UNITY - 1        # added to negative products so that >> DECAY_SHIFT truncates toward 0
RESET_HARD, RESET_SOFT = RESETS["hard"], RESETS["soft"]


@numba.njit(inline="always")
def _wrap32(x):
    return ((x + INT32_HALF) & INT32_MASK) - INT32_HALF


@numba.njit(inline="always")
def _decay(x, keep):
    """sign(y) * (|y| >> 12) for y = x * keep, without a branch: add 4095 to negative y before the shift."""
    y = x * keep
    return (y + ((y >> 63) & ROUND_TO_ZERO)) >> DECAY_SHIFT


@numba.njit(inline="always")
def _update(u, v, a, bias, keep_u, keep_v, threshold, reset, reset_value, reset_amount):
    """One neuron, one step: (u, v, spiked) after synaptic input a (all int64)."""
    current = _wrap32(_decay(u, keep_u) + _wrap32(a << ACT_SHIFT))
    wrapped = current - 2 * MAX_UV if current > MAX_UV else current     # Lava wraps once, not modulo
    u = current + 2 * MAX_UV if wrapped <= -MAX_UV else wrapped
    v = min(max(_wrap32(_decay(v, keep_v) + u + bias), -V_LIMIT), V_LIMIT)
    spiked = v > threshold
    if reset == RESET_HARD:
        v = reset_value if spiked else v
    elif reset == RESET_SOFT:
        v = min(max(v - (reset_amount if spiked else 0), -V_LIMIT), V_LIMIT)
    return u, v, spiked


@numba.njit(cache=True, nogil=True)
def fixed_cuba_scan(a, u, v, bias, keep_u, keep_v, threshold, fires, reset, reset_value, reset_amount,
                    t0, interval, offset, spikes, fired, rec_u, rec_v):
    """Advance one population over K steps.

    a: synaptic input `[K, N, S]` (integer-valued float32 or float64); u, v: state `[N, S]` float64, updated in
    place; bias: effective bias (mantissa shifted by its exponent) `[S]` int64; keep_u, keep_v: 4096 minus the
    decay constants (Lava's ds_offset included); threshold: vth << 6, used when `fires`; reset: RESET_*;
    t0: the absolute step of a[0]; interval > 0: zero u and v at the start of every step t with
    (t - offset) % interval == 0 (netx's periodic reset). Writes spikes `[K, N, S]` (0/1), the number of spikes
    of each step and sample into fired `[K, N]` and, unless they are empty, the states after each step into rec_u,
    rec_v `[K, N, S]`.
    """
    steps, batch, size = a.shape
    # Two copies of the inner loop: with one, the vectoriser turns the `if record` stores into masked stores
    # to the empty arrays' address, which cost a microcode assist each when that page is read-only (after any
    # fork, copy-on-write): measured 30x slower.
    record = rec_u.shape[0] > 0
    threshold = threshold if fires else 1 << 62
    uu = np.empty(size, np.int64)       # one sample's states, as integers, for the whole run
    vv = np.empty(size, np.int64)
    for n in range(batch):
        for j in range(size):
            uu[j] = np.int64(u[n, j])
            vv[j] = np.int64(v[n, j])
        for k in range(steps):
            if interval > 0 and (t0 + k - offset) % interval == 0:
                uu[:] = 0
                vv[:] = 0
            count = 0
            if record:
                for j in range(size):
                    uu[j], vv[j], spiked = _update(uu[j], vv[j], np.int64(a[k, n, j]), bias[j], keep_u, keep_v,
                                                   threshold, reset, reset_value, reset_amount)
                    spikes[k, n, j] = spiked
                    count += spiked
                    rec_u[k, n, j] = uu[j]
                    rec_v[k, n, j] = vv[j]
            else:
                for j in range(size):
                    uu[j], vv[j], spiked = _update(uu[j], vv[j], np.int64(a[k, n, j]), bias[j], keep_u, keep_v,
                                                   threshold, reset, reset_value, reset_amount)
                    spikes[k, n, j] = spiked
                    count += spiked
            fired[k, n] = count
        for j in range(size):
            u[n, j] = uu[j]
            v[n, j] = vv[j]
