"""Surrogate derivatives of the spike step, by name, and seed 001's membrane potential rectifier (MPR).

Each surrogate maps x = h - threshold and a width a to d(spike)/dh; all integrate to 1 over x.
"""
import math

import torch


def rect(x: torch.Tensor, a: float) -> torch.Tensor:
    """Rectangular (seed 000 eq. 3): 1/a inside |x| <= a/2."""
    return (x.abs() <= a / 2).to(x.dtype) / a


def triangle(x: torch.Tensor, a: float) -> torch.Tensor:
    """Triangle of half-width a and height 1/a (seed 002's gamma * max(0, 1 - |u/V_th - 1|) shape)."""
    return torch.clamp(1 - x.abs() / a, min=0) / a


def sigmoid(x: torch.Tensor, a: float) -> torch.Tensor:
    """Derivative of sigmoid(4x/a): slope 1/a at the threshold."""
    s = torch.sigmoid(4 * x / a)
    return 4 / a * s * (1 - s)


def tanh(x: torch.Tensor, a: float) -> torch.Tensor:
    """Derivative of (1 + tanh(2x/a)) / 2: slope 1/a at the threshold."""
    return (1 - torch.tanh(2 * x / a) ** 2) / a


SURROGATES = {"rect": rect, "triangle": triangle, "sigmoid": sigmoid, "tanh": tanh}

_MPR_K = 1 / (2 * math.tanh(1.5))


def mpr(u: torch.Tensor) -> torch.Tensor:
    """phi(u) of seed 001: 1 - (1-u)^(1/3) for u < 0; tanh(3(u - 1/2)) / (2 tanh(3/2)) + 1/2 on [0, 1];
    u^(1/3) for u > 1. Monotonic with phi(1/2) = 1/2, so phi(u) > 1/2 iff u > 1/2 (firing-invariant)."""
    low = 1 - torch.clamp(1 - u, min=1).pow(1 / 3)
    mid = _MPR_K * torch.tanh(3 * (u - 0.5)) + 0.5
    high = torch.clamp(u, min=1).pow(1 / 3)
    return torch.where(u < 0, low, torch.where(u > 1, high, mid))


def mpr_grad(u: torch.Tensor) -> torch.Tensor:
    """d phi / du."""
    low = torch.clamp(1 - u, min=1).pow(-2 / 3) / 3
    mid = 3 * _MPR_K * (1 - torch.tanh(3 * (u - 0.5)) ** 2)
    high = torch.clamp(u, min=1).pow(-2 / 3) / 3
    return torch.where(u < 0, low, torch.where(u > 1, high, mid))
