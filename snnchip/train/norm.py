"""Normalisation over `[N, C, H, W, T]` / `[N, F, T]`: statistics per channel over N, T and space.

`TdBN` is threshold-dependent BN (Zheng et al., seeds 000/001): `y = lambda * alpha * V_th * (x - mean) /
sqrt(var + eps) + beta`; `BN` is the same without the alpha * V_th factor. Both are `_BatchNorm`s, so
`snnchip.train.distributed.sync_norms` can make them use global-batch statistics under torchrun.
"""
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InputError


class TdBN(_BatchNorm):
    """tdBN with gain `weight * alpha_vth` (alpha * V_th, a buffer) and shift `bias`."""

    def __init__(self, num_features: int, alpha: float = 1.0, threshold: float = 0.5, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=True, track_running_stats=True)
        self.register_buffer("alpha_vth", torch.tensor(float(alpha * threshold)))

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (3, 4, 5):
            raise InputError(f"{type(self).__name__} expects [N, C, ..., T] input with 3-5 dims, got {x.dim()}")

    @property
    def gain(self) -> torch.Tensor:
        """The per-channel factor applied after standardisation [C]."""
        return self.weight * self.alpha_vth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.gain, self.bias, self.training,
                            self.momentum, self.eps)

    def affine_eval(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale [C], shift [C]) with `y = scale * x + shift` in eval mode."""
        scale = self.gain / torch.sqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale


class BN(TdBN):
    """Plain BN on the same statistics (no alpha * V_th)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, alpha=1.0, threshold=1.0, eps=eps, momentum=momentum)


def make_norm(kind: str, channels: int, threshold: float):
    if kind == "tdbn":
        return TdBN(channels, alpha=1.0, threshold=threshold)
    if kind == "bn":
        return BN(channels)
    raise InputError(f"unknown norm {kind!r}; choose 'tdbn' or 'bn'")
