"""Synapse layers in slayer's layout, on `[N, C, H, W, T]` / `[N, F, T]` tensors.

Weights use slayer's shapes (`[C_out, C_in/groups, kH, kW, 1]` for conv, `[F_out, F_in, 1, 1, 1]` for dense; the
trailing 1s are slayer's time kernel) and the same `pre_hook_fx` hook slayer applies to the weight before use
(e.g. `lava.lib.dl.slayer.utils.quantize` for quantisation-aware training), so weights move between these layers
and `lava.lib.dl.slayer.synapse` layers unchanged. The convolution is slayer's (a conv3d with time kernel 1):
`benchmarks/train_throughput.py` measured T-folded conv2d at 0.97-1.54x its time on MS-ResNet20's convs (CPU).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Conv(torch.nn.Module):
    """2D convolution applied at every time step: `[N, C_in, H, W, T] -> [N, C_out, H', W', T]`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, pre_hook_fx: Optional[Callable] = None):
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.weight = torch.nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size, 1))
        self.bias = None
        self.pre_hook_fx = pre_hook_fx
        torch.nn.init.kaiming_normal_(self.weight[..., 0], mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.pre_hook_fx is None else self.pre_hook_fx(self.weight)
        return F.conv3d(x, weight, None, (*self.stride, 1), (*self.padding, 0), (*self.dilation, 1), self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}")


class Dense(torch.nn.Module):
    """Fully connected layer at every time step: `[N, F_in, T] -> [N, F_out, T]` (inputs of more dims are flattened)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 pre_hook_fx: Optional[Callable] = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features, 1, 1, 1))
        bound = 1 / math.sqrt(in_features)
        torch.nn.init.uniform_(self.weight, -bound, bound)
        self.bias = torch.nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None
        self.pre_hook_fx = pre_hook_fx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.pre_hook_fx is None else self.pre_hook_fx(self.weight)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        y = torch.einsum("oi,nit->not", weight.reshape(self.out_features, self.in_features), x)
        return y if self.bias is None else y + self.bias[:, None]

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class RecurrentDense(torch.nn.Module):
    """A dense spiking layer with a lateral connection: `I[t] = W x[t] + R s[t-1]`, `s = neuron(I)`.

    The lateral input needs the layer's own previous spikes, so synapse and neuron step together here
    (seed 004's recurrence ablation; exports as netx `dense_rec`). `[N, F_in, T] -> spikes [N, F_out, T]`.
    """

    def __init__(self, in_features: int, out_features: int, neuron, pre_hook_fx: Optional[Callable] = None):
        super().__init__()
        self.ff = Dense(in_features, out_features, bias=False, pre_hook_fx=pre_hook_fx)
        self.rec_weight = torch.nn.Parameter(torch.zeros(out_features, out_features, 1, 1, 1))
        torch.nn.init.uniform_(self.rec_weight, -0.5 / math.sqrt(out_features), 0.5 / math.sqrt(out_features))
        self.neuron = neuron

    @property
    def weight(self) -> torch.nn.Parameter:
        return self.ff.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .neurons import after_reset, spike
        current = self.ff(x)
        rec = self.rec_weight.reshape(self.rec_weight.shape[0], -1)
        cfg = self.neuron.config
        u = torch.zeros_like(current[..., 0])
        prev = torch.zeros_like(u)
        spikes = []
        for t in range(current.shape[-1]):
            h = u * cfg.decay + current[..., t] + prev @ rec.t()
            prev = spike(h, cfg)
            u = after_reset(h, prev.detach(), cfg)
            spikes.append(prev)
        return torch.stack(spikes, dim=-1)
