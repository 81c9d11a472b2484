"""Multi-step spiking neurons on `[N, C, H, W, T]` / `[N, F, T]` tensors (time last, as slayer).

One neuron model covers the seeds' variants (seed 000 eq. 1-2, seed 001 unified form, seed 004 ablations):

    h[t] = decay * u[t-1] + I[t]                     # decay = fraction kept per step (tau_mem); 1.0 = IF
    o[t] = h[t] > threshold                          # strict >, as Loihi and the MS-ResNet code
    u[t] = h[t] (1 - o[t]) + reset_value o[t]        # reset 'hard'
         = h[t] - spike_value o[t]                   # reset 'soft' (seed 001 SRIF: U = H - O)
         = h[t]                                      # reset 'none'

The step's gradient is a surrogate (`snnchip.train.surrogate`). With `mpr`, the step function sees phi(h)
(seed 001's membrane potential rectifier); phi(h) > 0.5 iff h > 0.5, so spikes are unchanged and only the
gradients differ. The reset term is detached from the graph (as `spike.detach()` in the MS-ResNet code), so BPTT
flows through the leak only: du[t]/dh[t] = 1 - o[t] (hard) or 1 (soft, none).

The T-step loop runs inside one autograd Function whose backward is BPTT written out by hand: the forward
keeps no per-step autograd graph, which makes it several times faster than stepping with autograd.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from .. import loihi
from ..errors import InputError
from .surrogate import SURROGATES, mpr, mpr_grad

Reset = Literal["hard", "soft", "none"]


@dataclass
class NeuronConfig:
    """Parameters of a spiking neuron (see the module docstring for the dynamics). Units: the membrane's."""
    threshold: float = 0.5
    decay: float = 0.25
    reset: Reset = "hard"
    reset_value: float = 0.0
    spike_value: float = 1.0
    mpr: bool = False
    surrogate: str = "rect"
    surrogate_width: float = 1.0

    def __post_init__(self):
        if self.reset not in ("hard", "soft", "none"):
            raise InputError(f"reset must be 'hard', 'soft' or 'none', not {self.reset!r}")
        if self.surrogate not in SURROGATES:
            raise InputError(f"unknown surrogate {self.surrogate!r}; choose from {sorted(SURROGATES)}")
        if not 0.0 <= self.decay <= 1.0:
            raise InputError(f"decay (fraction kept per step) must be in [0, 1], got {self.decay}")
        if self.mpr and self.threshold != 0.5:
            raise InputError("MPR is firing-invariant only for threshold 0.5 (spikes 0/1, seed 001)")


PRESETS = {
    "lif": dict(decay=0.25, reset="hard"),   # MS-ResNet (seed 000, Table VII)
    "if": dict(decay=1.0, reset="hard"),
    "srif": dict(decay=1.0, reset="soft"),   # seed 001
}


def neuron_config(name: str = "lif", **overrides) -> NeuronConfig:
    """A preset ('lif', 'if', 'srif') with fields overridden."""
    if name not in PRESETS:
        raise InputError(f"unknown neuron preset {name!r}; choose from {sorted(PRESETS)}")
    return NeuronConfig(**{**PRESETS[name], **overrides})


class _MultiStep(torch.autograd.Function):
    """Spikes [..., T] from input currents [..., T]; backward is hand-written BPTT.

    Internally time-major (`[T, ...]`, contiguous), so each step works on a contiguous slice."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
        cur = current.movedim(-1, 0).contiguous()
        h_all = torch.empty_like(cur)
        spikes = torch.empty_like(cur)
        u = torch.zeros_like(cur[0])
        for t in range(cur.shape[0]):
            h = torch.add(cur[t], u, alpha=cfg.decay) if t else cur[t]
            h_all[t] = h
            fired = h > cfg.threshold
            spikes[t] = fired
            if cfg.reset == "hard":
                u = h.masked_fill(fired, cfg.reset_value)
            elif cfg.reset == "soft":
                u = h - cfg.spike_value * spikes[t]
            else:
                u = h
        ctx.save_for_backward(h_all, spikes)
        ctx.cfg = cfg
        return spikes.movedim(0, -1)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):
        h_all, spikes = ctx.saved_tensors
        cfg = ctx.cfg
        seen = mpr(h_all) if cfg.mpr else h_all
        dspike = SURROGATES[cfg.surrogate](seen - cfg.threshold, cfg.surrogate_width)
        if cfg.mpr:
            dspike = dspike * mpr_grad(h_all)
        grad_o = grad_spikes.movedim(-1, 0)
        grad_h_all = grad_o * dspike  # the direct term of every step, then BPTT adds the leak path
        keep = (1 - spikes) * cfg.decay if cfg.reset == "hard" else None
        for t in range(grad_h_all.shape[0] - 2, -1, -1):
            if keep is None:
                grad_h_all[t].add_(grad_h_all[t + 1], alpha=cfg.decay)
            else:
                grad_h_all[t].addcmul_(grad_h_all[t + 1], keep[t])
        return grad_h_all.movedim(0, -1), None


class SpikingNeuron(torch.nn.Module):
    """A population of neurons applied to currents `[N, ..., T]`; returns spikes of the same shape."""

    def __init__(self, config: NeuronConfig | None = None):
        super().__init__()
        self.config = config or NeuronConfig()

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return _MultiStep.apply(current, self.config)

    @property
    def device_params(self) -> dict:
        """Loihi CUBA parameters in the form of slayer's `neuron.cuba.Neuron.device_params`: 12-bit decays
        (iDecay 4096: no persistent current; vDecay = 4096 (1 - decay)) and the threshold mantissa at slayer's
        weight scale 2^6. Only a hard reset to 0 is a CUBA neuron; MPR and the surrogate shape training only."""
        cfg = self.config
        if cfg.reset != "hard" or cfg.reset_value != 0:
            raise InputError(f"a Loihi CUBA neuron resets hard to 0; this neuron has reset={cfg.reset!r}, "
                             f"reset_value={cfg.reset_value}")
        return {"type": "CUBA", "iDecay": loihi.netx_i_decay(loihi.DU_MAX),
                "vDecay": int(round(loihi.DECAY_UNITY * (1 - cfg.decay))),
                "vThMant": int(cfg.threshold * (1 << loihi.VTH_SHIFT)), "refDelay": 1, "gradedSpike": False}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items())


class _Spike(torch.autograd.Function):
    """One step's spike o = h > threshold with the configured surrogate (and MPR) as its gradient."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
        ctx.save_for_backward(h)
        ctx.cfg = cfg
        return (h > cfg.threshold).to(h.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (h,) = ctx.saved_tensors
        cfg = ctx.cfg
        seen = mpr(h) if cfg.mpr else h
        d = SURROGATES[cfg.surrogate](seen - cfg.threshold, cfg.surrogate_width)
        return grad * (d * mpr_grad(h) if cfg.mpr else d), None


def spike(h: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """o[t] from h[t] for one step, differentiable through the surrogate."""
    return _Spike.apply(h, cfg)


def after_reset(h: torch.Tensor, o: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """u[t] from h[t] and the (detached) spikes o[t]."""
    if cfg.reset == "hard":
        return h * (1 - o) + cfg.reset_value * o
    if cfg.reset == "soft":
        return h - cfg.spike_value * o
    return h


def reference_step_by_step(current: torch.Tensor, cfg: NeuronConfig) -> torch.Tensor:
    """The same neuron stepped with autograd (slow; the reference the fused Function is tested against)."""
    u = torch.zeros_like(current[..., 0])
    out = []
    for t in range(current.shape[-1]):
        h = u * cfg.decay + current[..., t]
        o = spike(h, cfg)
        out.append(o)
        u = after_reset(h, o.detach(), cfg)
    return torch.stack(out, dim=-1)
