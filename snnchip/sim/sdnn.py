"""Sigma-delta neurons, bit-exact as Lava's fixed-point process models (`lava.proc.sdn.models`).

One population's update for one step on flat `[N, size]` tensors. The states are (sigma, act, residue, error),
integers held in int64 tensors and wrapped to int32 after every operation where Lava's numpy int32 arithmetic
would wrap. With `scale = 2**(spike_exp + state_exp)` (`loihi.sdnn_scale`), per step and neuron:

    sigma_delta (PySigmaDeltaModelFixed):
        sigma   = sigma + a                                   # sigma decoding of the graded input
        act_new = relu(sigma + bias * scale)  (or identity)   # activation
        delta   = act_new - act + residue                     # delta encoding
        cum_error: error = error + delta; send delta where |error| >= vth * scale; error = 0 where sent
        else:      send delta where |delta| >= vth * scale
        residue = delta - sent;  act = act_new;  out = sent >> state_exp
    delta (PyDeltaModelFixed, netx's SDNN input layer): act_new = a << (spike_exp + state_exp); no sigma, no
        bias; the same encoding.
    sigma (PySigmaModelFixed, netx's `sigma_output` readout): sigma = sigma + a; out = sigma.

Lava compares `>=` (its docstrings say `>`; the code decides). The executor records sigma as `u` and act as `v`
(for a sigma population both are sigma), and `residue`, `error` under their names.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import loihi
from ..graph import Population

STATES = ("sigma", "act", "residue", "error")
_HALF = loihi.INT32_HALF


def wrap_int32(x: torch.Tensor) -> torch.Tensor:
    """Two's-complement int32 wrap of an int64 tensor (numpy int32 overflow)."""
    return torch.remainder(x + _HALF, 2 * _HALF) - _HALF


class FixedSigmaDelta:
    """The update of one sigma-delta population (module docstring). `step(sigma, act, residue, error, a)` returns
    the new states and the payloads sent, all int64 `[N, size]`."""

    num_states = len(STATES)

    def __init__(self, pop: Population, device) -> None:
        n = pop.neuron
        self.model = n.model
        self.relu = n.activation == "relu"
        self.cum_error = bool(n.cum_error)
        self.state_exp = int(n.state_exp)
        scale = loihi.sdnn_scale(n.spike_exp, n.state_exp)
        self.in_shift = int(n.spike_exp) + int(n.state_exp)
        self.vth = 0 if n.threshold is None else int(n.threshold) * scale
        self.bias = torch.as_tensor(np.asarray(pop.bias_full(), dtype=np.int64) * scale, device=device)
        self.graded = False

    def step(self, sigma, act, residue, error, a):
        a = a.to(torch.int64)
        sigma, act, residue, error = (s.to(torch.int64) for s in (sigma, act, residue, error))
        if self.model == "sigma":
            sigma = wrap_int32(sigma + a)
            return sigma, sigma, residue, error, sigma
        if self.model == "delta":
            new = wrap_int32(a << self.in_shift)
        else:
            sigma = wrap_int32(sigma + a)
            new = wrap_int32(sigma + self.bias)
            if self.relu:
                new = new.clamp(min=0)
        delta = wrap_int32(wrap_int32(new - act) + residue)
        if self.cum_error:
            error = wrap_int32(error + delta)
            sent = torch.where(error.abs() >= self.vth, delta, torch.zeros_like(delta))
            error = torch.where(sent != 0, torch.zeros_like(error), error)
        else:
            sent = torch.where(delta.abs() >= self.vth, delta, torch.zeros_like(delta))
        residue = wrap_int32(delta - sent)
        return sigma, new, residue, error, sent >> self.state_exp

    def out_bound(self) -> float:
        """The largest |payload| this population can send (int32 states, shifted right by state_exp)."""
        return float(_HALF if self.model == "sigma" else _HALF >> self.state_exp)
