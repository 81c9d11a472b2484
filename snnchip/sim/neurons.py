"""Neuron updates of one population for one step: float CUBA and Lava's bit-accurate fixed-point CUBA.

States are flat tensors `[N, size]`; `a` is the synaptic input of the step. The fixed-point update reproduces
`lava.proc.lif.models.PyLifModelBitAcc` operation by operation (its one-step current wrap-around, its voltage
clipping, and, when the inputs can be large enough for it to matter, its int32 overflow), so every integer matches
Lava's CPU simulation. It computes on integers held in float64, which is exact below 2**53 (the largest
intermediate, u * 4096, stays below 2**36) and needs fewer tensor operations than int64 shifts and signs:
Lava's sign(x) * (|x| >> 12) is trunc(x / 4096).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import loihi
from ..graph import Population, float_neuron_step, relay_output
from ..loihi import ACT_SHIFT, DECAY_UNITY, MAX_UV, V_LIMIT
from .sdnn import FixedSigmaDelta

INT32_HALF = float(loihi.INT32_HALF)
# Below this |a|, |a << 6| + |decayed u| (<= 2**23) stays below 2**31: Lava's int32 sums cannot overflow. The bias
# (13-bit mantissa << 3-bit exponent, Graph.validate) is far below it too.
INT32_SAFE_INPUT = loihi.INT32_HALF >> (ACT_SHIFT + 1)
SPIKE_DTYPE = torch.float32        # fixed-point spikes: 0/1, exact, and the dtype of most synaptic sums


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement int32 overflow of integers held in a float64 tensor."""
    return torch.remainder(x + INT32_HALF, 2 * INT32_HALF) - INT32_HALF


def decay_fixed(x: torch.Tensor, keep: int) -> torch.Tensor:
    """Lava's decay sign(x * keep) * (|x * keep| >> 12) = trunc(x * keep / 4096), keep = 4096 - decay constant.
    (Written with floor: torch's CPU trunc is not vectorised and measured 15x slower than floor.)"""
    y = x * (keep / DECAY_UNITY)
    return torch.copysign(torch.floor(torch.abs(y)), y)


RESETS = {"hard": 0, "soft": 1, "none": 2}


def fixed_cuba_step(u, v, a, bias, keep_u, keep_v, threshold, reset: int, reset_value, reset_amount):
    """One bit-accurate step without int32-overflow emulation (see FixedCuba), written as one pure function so
    that `torch.compile` can fuse it: every value is an integer below 2**53, so fusion cannot change a bit.
    keep_u, keep_v: decay factors / 4096; threshold (inf: never), reset_value, reset_amount: 0-d tensors."""
    current = torch.trunc(u * keep_u) + a * float(1 << ACT_SHIFT)
    wrapped = torch.where(current > MAX_UV, current - 2 * MAX_UV, current)
    u = torch.where(wrapped <= -MAX_UV, current + 2 * MAX_UV, wrapped)
    v = (torch.trunc(v * keep_v) + u + bias).clamp(-V_LIMIT, V_LIMIT)
    spiked = v > threshold
    if reset == 0:
        v = torch.where(spiked, reset_value, v)
    elif reset == 1:
        v = (v - spiked * reset_amount).clamp(-V_LIMIT, V_LIMIT)
    return u, v, spiked.to(SPIKE_DTYPE)


_COMPILED = {}


def compiled_fixed_step():
    """`fixed_cuba_step` compiled once per process for dynamic shapes (torch.compile; needs a C++ compiler)."""
    if "step" not in _COMPILED:
        # variants: batch or layer of size 1 (specialised), float32/float64 input, three resets
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED["step"] = torch.compile(fixed_cuba_step, dynamic=True)
    return _COMPILED["step"]


def bias_vector(pop: Population, dtype: torch.dtype, device) -> torch.Tensor:
    """The population's bias as a `[size]` tensor (`Population.bias_full`, the graph's one broadcasting rule)."""
    return torch.as_tensor(np.array(pop.bias_full()), device=device).to(dtype)


class FloatCuba:
    """The float semantics of graph.py (`graph.float_neuron_step`, the one definition the ONNX step graph runs
    too): u = (1 - du) u + a;  v = (1 - dv) v + u + bias;  s = v > threshold;  then the reset."""

    def __init__(self, pop: Population, dtype: torch.dtype, device) -> None:
        self.neuron = pop.neuron
        self.bias = bias_vector(pop, dtype, device)
        self.graded = pop.neuron.graded

    def step(self, u, v, a):
        """Returns (u, v, out); out is the spike tensor (0/1 in the state dtype) or, for a relay, `a`."""
        return float_neuron_step(self.neuron, u, v, a, self.bias)


class FixedCuba:
    """Lava's PyLifModelBitAcc on integer-valued float64 tensors (see module docstring); soft reset:
    v -= reset_amount, clipped to 24 bits; hard reset: v = reset_value (both in raw voltage units).

    `input_bound`: the largest |a| the population can receive (inf if unknown); below INT32_SAFE_INPUT Lava's int32
    arithmetic cannot overflow and its emulation is skipped. `compile`: run the step as one fused kernel
    (`compiled_fixed_step`) whenever no int32 emulation is needed."""

    def __init__(self, pop: Population, device, input_bound: float = float("inf"), compile: bool = False) -> None:
        n = pop.neuron
        # du, dv are in range (Graph.validate: loihi.check_fixed); du = -1 is netx's integrator (no current decay)
        self.keep_u, self.keep_v = loihi.keep_u(n.du), loihi.keep_v(n.dv)
        # per-neuron decays (netx's iDecay / vDecay vectors): [size] tensors, stepped without kernels
        self.per_neuron = bool(np.ndim(self.keep_u) or np.ndim(self.keep_v))
        if self.per_neuron:
            self.keep_u, self.keep_v = (torch.as_tensor(np.broadcast_to(k, (pop.size,)).astype(np.float64),
                                                        device=device) for k in (self.keep_u, self.keep_v))
        # integer mantissas, exponents in range: Graph.validate (loihi.check_fixed)
        self.bias = torch.as_tensor(loihi.effective_bias(pop.bias_full(), int(pop.bias_exp)), device=device,
                                    dtype=torch.float64)
        self.input_bound = input_bound
        self.emulate_int32 = input_bound >= INT32_SAFE_INPUT
        self.threshold = None if n.threshold is None else float(loihi.effective_threshold(n.threshold))
        self.reset = n.reset
        self.reset_value = float(int(n.reset_value))
        self.reset_amount = float(int(n.reset_amount))
        self.graded, self.neuron = n.graded, n
        self._bias_int = self.bias.cpu().numpy().astype(np.int64)     # the CPU kernel's form
        self.kernel = compiled_fixed_step() if compile and not self.emulate_int32 and not self.graded \
            and not self.per_neuron else None
        if self.kernel is not None:
            def scalar(x):
                return torch.tensor(x, dtype=torch.float64, device=device)
            self.kernel_args = (scalar(self.keep_u / DECAY_UNITY), scalar(self.keep_v / DECAY_UNITY),
                                scalar(float("inf") if self.threshold is None else self.threshold),
                                RESETS[self.reset], scalar(self.reset_value), scalar(self.reset_amount))

    def step(self, u, v, a):
        """u, v, a: integer-valued float64 `[N, size]`. Returns (u, v, out), out 0/1 or, for a relay, `a`."""
        if self.graded:
            out = relay_output(self.neuron, a)
            return out, out, out
        if self.kernel is not None:
            keep_u, keep_v, threshold, reset, value, amount = self.kernel_args
            return self.kernel(u, v, a, self.bias, keep_u, keep_v, threshold, reset, value, amount)
        if self.emulate_int32:
            a = a.to(torch.float64)
            current = wrap_int32(decay_fixed(u, self.keep_u) + wrap_int32(a * (1 << ACT_SHIFT)))
        else:
            current = decay_fixed(u, self.keep_u) + a * (1 << ACT_SHIFT)
        # Lava wraps once (not modulo): values above 2**23 lose 2**24, values at or below -2**23 gain it.
        wrapped = torch.where(current > MAX_UV, current - 2 * MAX_UV, current)
        u = torch.where(wrapped <= -MAX_UV, current + 2 * MAX_UV, wrapped)
        v = decay_fixed(v, self.keep_v) + u + self.bias
        if self.emulate_int32:
            v = wrap_int32(v)
        v = v.clamp(-V_LIMIT, V_LIMIT)
        if self.threshold is None:
            return u, v, torch.zeros_like(v)
        spiked = v > self.threshold
        if self.reset == "hard":
            v = torch.where(spiked, self.reset_value, v)
        elif self.reset == "soft":
            v = (v - spiked * self.reset_amount).clamp(-V_LIMIT, V_LIMIT)
        return u, v, spiked.to(SPIKE_DTYPE)

    def scan(self, a, u, v, t0: int, interval: int, offset: int, record: bool, kernel: bool, out: torch.Tensor):
        """Run K steps: a `[K, N, S]` synaptic inputs (integers in float32 or float64), u, v `[N, S]` float64 states
        before step t0 (absolute).
        States are zeroed at the start of every step t with interval > 0 and (t - offset) % interval == 0.
        kernel: the compiled CPU kernel (`kernels.fixed_cuba_scan`, same integers), else a loop of `step`.
        Writes the outputs (spikes, or a relay's payloads) into `out` `[K, N, S]`. Returns (u, v, us, vs, fired):
        the final states, every step's states `[K, N, S]` (None unless `record`) and the non-zero outputs of
        each step and sample `[K, N]` float64."""
        if self.graded:
            out.copy_(relay_output(self.neuron, a))
            return out[-1], out[-1], out, out, (out != 0).sum(dim=2).to(torch.float64)
        if not kernel:
            us, vs = [], []
            for k in range(a.shape[0]):
                if interval and (t0 + k - offset) % interval == 0:
                    u, v = torch.zeros_like(u), torch.zeros_like(v)
                u, v, out[k] = self.step(u, v, a[k])
                us.append(u)
                vs.append(v)
            return (u, v, torch.stack(us) if record else None, torch.stack(vs) if record else None,
                    out.sum(dim=2).to(torch.float64))
        from .kernels import fixed_cuba_scan   # numba: imported (and its cache loaded) on first use
        a = a.contiguous()
        u, v = u.clone().contiguous(), v.clone().contiguous()
        shape = a.shape if record else (0, 0, 0)
        us, vs = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64)
        fired = torch.empty(a.shape[:2], dtype=torch.float64)
        fixed_cuba_scan(a.numpy(), u.numpy(), v.numpy(), self._bias_int, self.keep_u, self.keep_v,
                        0 if self.threshold is None else int(self.threshold), self.threshold is not None,
                        RESETS[self.reset], int(self.reset_value), int(self.reset_amount), t0, interval, offset,
                        out.numpy(), fired.numpy(), us.numpy(), vs.numpy())
        return u, v, (us if record else None), (vs if record else None), fired


def neuron_update(pop: Population, fixed: bool, dtype: torch.dtype, device, input_bound: float = float("inf"),
                  compile: bool = False):
    """The update rule of `pop`: FixedSigmaDelta (sim/sdnn.py) for a sigma-delta population, FixedCuba for a
    fixed-point graph (`input_bound`, `compile` as there), FloatCuba
    in `dtype` otherwise (never compiled: fusion may contract float operations and change rounding)."""
    if pop.neuron.sigma_delta:
        return FixedSigmaDelta(pop, device)
    return FixedCuba(pop, device, input_bound, compile) if fixed else FloatCuba(pop, dtype, device)
