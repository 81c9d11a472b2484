"""Exact composition of linear maps on a membrane input (MS-ResNet's shortcut, docs/graph-ir.md).

MS-ResNet carries a real-valued membrane input `I` along its shortcut. `I` is a sum of convolutions of spike
trains plus a per-channel bias, so it is held as a `MembraneSum`: a list of `Term`s (a bias-free conv of one
population's output) and a bias `[C]`. A downsampling shortcut is linear, so it is pushed into every term:
- 1x1 conv (stride s_d) after a conv (k, stride s, pad p): a conv (k, stride s*s_d, pad p),
  `W'[o, i] = sum_m W_d[o, m] W[m, i]`; bias `b' = W_d b + b_d`.
- k_p x k_p average pool (stride s_p) after a conv (k, s, p): a conv (k + s (k_p - 1), stride s*s_p, pad p),
  `W'[..., a, b] = mean over (dy, dx) of W[..., a - s dy, b - s dx]`; bias unchanged.
Both are exact for every input size (the nested output-size floors agree; see the tests).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..graph import conv_output_shape


@dataclass(frozen=True)
class Term:
    """`conv(output of population source)`: weight `[C_out, C_src, kH, kW]`, no bias, no groups, no dilation."""
    source: str
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


@dataclass
class MembraneSum:
    """`I = sum of terms + bias[:, None, None]`, of shape `shape` (C, H, W)."""
    shape: tuple[int, int, int]
    terms: list[Term] = field(default_factory=list)
    bias: np.ndarray = None

    def add(self, term: Term, bias: np.ndarray) -> None:
        self.terms.append(term)
        self.bias = bias.copy() if self.bias is None else self.bias + bias

    def conv1x1(self, weight: np.ndarray, bias: np.ndarray, stride: tuple[int, int], where: str) -> "MembraneSum":
        """`conv1x1(I) + bias` with a `[C_out, C, 1, 1]` weight, pushed into every term."""
        if weight.ndim != 4 or weight.shape[2:] != (1, 1) or weight.shape[1] != self.shape[0]:
            raise InputError(f"'{where}': shortcut conv weight {weight.shape} is not a 1x1 conv of "
                            f"{self.shape[0]} channels")
        mix = weight[:, :, 0, 0]
        terms = [replace(t, weight=np.einsum("om,mikl->oikl", mix, t.weight),
                         stride=(t.stride[0] * stride[0], t.stride[1] * stride[1])) for t in self.terms]
        shape = conv_output_shape(self.shape, weight.shape[0], (1, 1), stride, (0, 0), (1, 1))
        return MembraneSum(shape, terms, mix @ self.bias + bias)

    def avgpool(self, kernel: tuple[int, int], stride: tuple[int, int]) -> "MembraneSum":
        """Average pool (no padding) of I, pushed into every term (the bias is spatially constant)."""
        terms = []
        for t in self.terms:
            (sh, sw), (kh, kw) = t.stride, t.weight.shape[2:]
            w = np.zeros(t.weight.shape[:2] + (kh + sh * (kernel[0] - 1), kw + sw * (kernel[1] - 1)))
            for dy in range(kernel[0]):
                for dx in range(kernel[1]):
                    w[:, :, sh * dy:sh * dy + kh, sw * dx:sw * dx + kw] += t.weight
            w /= kernel[0] * kernel[1]
            terms.append(replace(t, weight=w, stride=(sh * stride[0], sw * stride[1])))
        shape = conv_output_shape(self.shape, self.shape[0], kernel, stride, (0, 0), (1, 1))
        return MembraneSum(shape, terms, self.bias.copy())

