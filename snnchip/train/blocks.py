"""Residual blocks on `[N, C, H, W, T]` (seed 000, Fig. 2a and Fig. 6), and the stem and head around them.

| kind | input -> output | forward |
|---|---|---|
| `ms` (SR-A, MS-ResNet) | membrane -> membrane | `I + norm2(conv2(lif2(norm1(conv1(lif1(I))))))` |
| `sr_b` | membrane -> membrane | `norm2(sc(I) + conv2(lif2(norm1(conv1(lif1(I))))))` (BN after the add) |
| `sr_c` | real -> real | `sc(x) + lif2(norm2(conv2(lif1(norm1(conv1(x))))))` (shortcut after the LIF) |
| `vanilla` | spikes -> spikes | `lif2(norm2(conv2(lif1(norm1(conv1(s))))) + sc(s))` (LIF after the add) |
| `plain` | spikes -> spikes | `lif2(norm2(conv2(lif1(norm1(conv1(s))))))` |

SR-B and SR-C are our reading of seed 000's Fig. 6 from its text (§V-C: SR-B separates CONV and BN; SR-C's
convolutions do not receive spikes). `sc` is the identity or a `Shortcut` (1x1 conv + norm, optionally after a
2x2 average pool: the ImageNet-104 variant).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from .layers import Conv, Dense
from .neurons import NeuronConfig, SpikingNeuron
from .norm import make_norm

KINDS = ("ms", "sr_b", "sr_c", "vanilla", "plain")


class Shortcut(nn.Module):
    """Downsampling shortcut: `norm(conv1x1(pool(x)))`; `pool` is None or an AvgPool over (H, W)."""

    def __init__(self, in_c: int, out_c: int, stride: int, norm: str, threshold: float, avgpool: bool):
        super().__init__()
        self.pool = nn.AvgPool3d((stride, stride, 1)) if avgpool and stride > 1 else None
        self.conv = Conv(in_c, out_c, 1, 1 if self.pool is not None else stride)
        self.norm = make_norm(norm, out_c, threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x if self.pool is None else self.pool(x)))


class Block(nn.Module):
    """A two-conv (3x3) basic block of one of `KINDS`."""

    def __init__(self, kind: str, in_c: int, out_c: int, stride: int, neuron: NeuronConfig, norm: str,
                 avgpool_shortcut: bool = False, zero_init: bool = True):
        super().__init__()
        if kind not in KINDS:
            raise InputError(f"unknown block kind {kind!r}; choose from {KINDS}")
        self.kind = kind
        th = neuron.threshold
        self.lif1 = SpikingNeuron(neuron)
        self.conv1 = Conv(in_c, out_c, 3, stride, 1)
        self.norm1 = make_norm(norm, out_c, th)
        self.lif2 = SpikingNeuron(neuron)
        self.conv2 = Conv(out_c, out_c, 3, 1, 1)
        self.norm2 = make_norm(norm, out_c, th)
        needs_sc = kind != "plain" and (stride != 1 or in_c != out_c)
        self.shortcut = Shortcut(in_c, out_c, stride, norm, th, avgpool_shortcut) if needs_sc else None
        if zero_init and kind in ("ms", "sr_c", "vanilla"):
            nn.init.zeros_(self.norm2.weight)  # seed 000 V-B: the residual path starts as the identity

    def _sc(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.shortcut is None else self.shortcut(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kind
        if k == "ms":
            return self._sc(x) + self.norm2(self.conv2(self.lif2(self.norm1(self.conv1(self.lif1(x))))))
        if k == "sr_b":
            return self.norm2(self._sc(x) + self.conv2(self.lif2(self.norm1(self.conv1(self.lif1(x))))))
        if k == "sr_c":
            return self._sc(x) + self.lif2(self.norm2(self.conv2(self.lif1(self.norm1(self.conv1(x))))))
        residual = self.norm2(self.conv2(self.lif1(self.norm1(self.conv1(x)))))
        return self.lif2(residual + self._sc(x) if k == "vanilla" else residual)


class ConvNorm(nn.Module):
    """The stem (encoding layer): conv + norm on the input frames, then `lif` (None: output is a membrane input)."""

    def __init__(self, in_c: int, out_c: int, kernel: int, stride: int, norm: str, neuron: NeuronConfig,
                 spiking: bool):
        super().__init__()
        self.conv = Conv(in_c, out_c, kernel, stride, kernel // 2)
        self.norm = make_norm(norm, out_c, neuron.threshold)
        self.lif = SpikingNeuron(neuron) if spiking else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return y if self.lif is None else self.lif(y)


class Head(nn.Module):
    """Final LIF (None when the blocks already end in spikes), global average pool, dropout, FC, mean over T.
    `[N, C, H, W, T] -> [N, classes]`."""

    def __init__(self, channels: int, num_classes: int, neuron: NeuronConfig | None, dropout: float):
        super().__init__()
        self.lif = SpikingNeuron(neuron) if neuron is not None else None
        self.dropout = nn.Dropout(dropout)
        self.fc = Dense(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.lif is None else self.lif(x)
        return self.fc(self.dropout(s.mean(dim=(2, 3)))).mean(dim=-1)
