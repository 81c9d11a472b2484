"""Folding BN / tdBN into the preceding convolution or dense layer (float64 numpy).

A norm in eval mode is the per-channel affine map `y = scale * x + shift` (`affine_eval()`, docs/model-contract.md),
so `norm(conv(x)) = conv'(x) + b'` with `W' = scale[o] * W[o]` and `b' = scale * b + shift`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InputError


def layer_weight(layer, name: str) -> np.ndarray:
    """The weight of a `train.layers.Conv` / `Dense` as float64 numpy: conv `[C_out, C_in/g, kH, kW]`, dense
    `[F_out, F_in]` (slayer's trailing time-kernel dimensions dropped)."""
    weight = getattr(layer, "weight", None)
    if weight is None:
        raise InputError(f"layer '{name}' ({type(layer).__name__}) has no weight")
    hook = getattr(layer, "pre_hook_fx", None)      # a training-time weight transform (e.g. quantisation)
    if hook is not None:
        weight = hook(weight)
    w = weight.detach().cpu().double().numpy()
    expect = 4 if _is_conv(layer) else 2
    while w.ndim > expect and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != expect:
        raise InputError(f"layer '{name}': weight of shape {tuple(weight.shape)} is not a "
                        f"{'conv' if expect == 4 else 'dense'} weight")
    return w


def layer_bias(layer) -> Optional[np.ndarray]:
    bias = getattr(layer, "bias", None)
    return None if bias is None else bias.detach().cpu().double().numpy().reshape(-1)


def _is_conv(layer) -> bool:
    return hasattr(layer, "stride") and hasattr(layer, "padding")


def norm_affine(norm, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale [C], shift [C]) of a norm module in eval mode."""
    if not hasattr(norm, "affine_eval"):
        raise InputError(f"norm '{name}' ({type(norm).__name__}) has no affine_eval(); cannot fold it")
    scale, shift = norm.affine_eval()
    return (scale.detach().cpu().double().numpy().reshape(-1), shift.detach().cpu().double().numpy().reshape(-1))


def fold(layer, norm, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias [C_out]) of `norm(layer(x))`; `norm` None means no norm. Bias is zeros when both lack one."""
    w = layer_weight(layer, name)
    b = layer_bias(layer)
    b = np.zeros(w.shape[0]) if b is None else b
    if norm is None:
        return w, b
    scale, shift = norm_affine(norm, name)
    if scale.shape[0] != w.shape[0]:
        raise InputError(f"norm after '{name}' has {scale.shape[0]} channels, the layer has {w.shape[0]} outputs")
    return w * scale.reshape((-1,) + (1,) * (w.ndim - 1)), scale * b + shift
