"""Linear maps between populations, composed exactly (used by the NIR reader to fold chains of linear nodes).

A map takes a source population's output `[*in_shape]` to a target's synaptic input `[*out_shape]` (C order when
flattened). Kinds: `Identity` (a reshape: Flatten, pass-through nodes), `Conv` (Conv2d, SumPool2d / AvgPool2d as a
depthwise conv), `Dense` (Affine / Linear, or any composition that is not a convolution) and `Diag` (Scale:
elementwise). Biases are not part of a map: the reader carries them as full arrays and pushes them through `apply`.

`compose(outer, inner)` returns one map equal to `outer(inner(x))`, or None where the result would be a dense
matrix of more than `MAX_DENSE` entries. Two convolutions compose into one convolution when the outer one has no
padding (its taps then read only positions the inner one computed; with padding they would read the inner conv
evaluated outside its output, not zeros) and the composite's output size equals the chain's; otherwise the
composition is the product of their matrices. Every rule is exact in real arithmetic; in float64 only the order of
the sums changes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

from ..graph import conv_output_shape

MAX_DENSE = 16_000_000   # entries of a composed dense matrix (128 MB of float64); larger compositions are refused


@dataclass(frozen=True)
class Identity:
    """`y = x` reshaped from `in_shape` to `out_shape` (same size)."""
    in_shape: tuple
    out_shape: tuple


@dataclass(frozen=True)
class Conv:
    """A convolution of a `(C, H, W)` input: weight `[C_out, C_in / groups, kH, kW]`; `out_shape` may be the flat
    `(C_out * H_out * W_out,)` after a Flatten."""
    weight: np.ndarray
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    in_shape: tuple
    out_shape: tuple

    @property
    def conv_shape(self) -> tuple:
        return conv_output_shape(self.in_shape, self.weight.shape[0], self.weight.shape[2:], self.stride,
                                 self.padding, self.dilation)


@dataclass(frozen=True)
class Dense:
    """`y = W x` with `W [out_size, in_size]`."""
    weight: np.ndarray
    in_shape: tuple
    out_shape: tuple


@dataclass(frozen=True)
class Diag:
    """`y = scale * x` elementwise; `scale` flat `[size]`."""
    scale: np.ndarray
    in_shape: tuple
    out_shape: tuple


Map = Union[Identity, Conv, Dense, Diag]


def size(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def conv_forward(x: np.ndarray, weight: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """`x [B, C, H, W]` -> `[B, C_out, H_out, W_out]` (torch's conv2d, zero padding), float64 numpy."""
    b, c, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    _, ho, wo = conv_output_shape((c, h, w), c_out, (kh, kw), stride, padding, dilation)
    xp = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=np.result_type(x, weight))
    xp[:, :, ph:ph + h, pw:pw + w] = x
    out = np.zeros((b, c_out, ho, wo), dtype=xp.dtype)
    c_out_g = c_out // groups
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
            for g in range(groups):
                out[:, g * c_out_g:(g + 1) * c_out_g] += np.einsum(
                    "oc,bchw->bohw", weight[g * c_out_g:(g + 1) * c_out_g, :, i, j],
                    patch[:, g * c_in_g:(g + 1) * c_in_g])
    return out


def apply(op: Map, x: np.ndarray) -> np.ndarray:
    """`op` on a batch `x [B, *in_shape]` -> `[B, *out_shape]`."""
    b = x.shape[0]
    if isinstance(op, Identity):
        return x.reshape(b, *op.out_shape)
    if isinstance(op, Diag):
        return (x.reshape(b, -1) * op.scale).reshape(b, *op.out_shape)
    if isinstance(op, Dense):
        return (x.reshape(b, -1) @ op.weight.T).reshape(b, *op.out_shape)
    y = conv_forward(x.reshape(b, *op.in_shape), op.weight, op.stride, op.padding, op.dilation, op.groups)
    return y.reshape(b, *op.out_shape)


def matrix(op: Map) -> Optional[np.ndarray]:
    """`op` as a dense `[out_size, in_size]` matrix, or None if it would exceed MAX_DENSE entries."""
    n_in, n_out = size(op.in_shape), size(op.out_shape)
    if isinstance(op, Dense):
        return op.weight
    if n_in * n_out > MAX_DENSE:
        return None
    if isinstance(op, Identity):
        return np.eye(n_out, n_in)
    if isinstance(op, Diag):
        return np.diag(op.scale.astype(np.float64))
    out = np.empty((n_out, n_in))
    chunk = max(1, MAX_DENSE // (4 * max(n_in, n_out)))
    for start in range(0, n_in, chunk):
        stop = min(n_in, start + chunk)
        basis = np.zeros((stop - start, n_in))
        basis[np.arange(stop - start), np.arange(start, stop)] = 1.0
        out[:, start:stop] = apply(op, basis.reshape(-1, *op.in_shape)).reshape(stop - start, n_out).T
    return out


def dense(op: Map) -> Optional[Dense]:
    m = matrix(op)
    return None if m is None else Dense(m, op.in_shape, op.out_shape)


def with_shapes(op: Map, in_shape=None, out_shape=None) -> Map:
    """The same map with its input / output reshaped (sizes unchanged)."""
    return replace(op, in_shape=tuple(in_shape or op.in_shape), out_shape=tuple(out_shape or op.out_shape))


def full_weight(op: Conv) -> np.ndarray:
    """A grouped conv's weight with the groups expanded to `[C_out, C_in, kH, kW]` (zeros across groups)."""
    if op.groups == 1:
        return op.weight
    c_out, c_in_g = op.weight.shape[:2]
    w = np.zeros((c_out, c_in_g * op.groups) + op.weight.shape[2:], dtype=op.weight.dtype)
    c_out_g = c_out // op.groups
    for g in range(op.groups):
        w[g * c_out_g:(g + 1) * c_out_g, g * c_in_g:(g + 1) * c_in_g] = op.weight[g * c_out_g:(g + 1) * c_out_g]
    return w


def per_channel(values: np.ndarray, shape: tuple) -> Optional[np.ndarray]:
    """`values` (flat, of a `(C, H, W)` shape) as one value per channel `[C]` if constant over (H, W), else None."""
    if len(shape) != 3:
        return None
    v = np.asarray(values, dtype=np.float64).reshape(shape)
    return v[:, 0, 0].copy() if np.all(v == v[:, :1, :1]) else None


def _conv_conv(outer: Conv, inner: Conv) -> Optional[Conv]:
    if any(outer.padding) or tuple(outer.in_shape) != tuple(inner.conv_shape):
        return None
    wo, wi = full_weight(outer), full_weight(inner)
    (s1h, s1w), (d1h, d1w), (d2h, d2w) = inner.stride, inner.dilation, outer.dilation
    k1h, k1w = wi.shape[2:]
    k2h, k2w = wo.shape[2:]
    kh, kw = (k2h - 1) * d2h * s1h + (k1h - 1) * d1h + 1, (k2w - 1) * d2w * s1w + (k1w - 1) * d1w + 1
    w = np.zeros((wo.shape[0], wi.shape[1], kh, kw), dtype=np.result_type(wo, wi))
    for m in range(k2h):
        for n in range(k2w):
            oh, ow = m * d2h * s1h, n * d2w * s1w
            w[:, :, oh:oh + (k1h - 1) * d1h + 1:d1h, ow:ow + (k1w - 1) * d1w + 1:d1w] += np.einsum(
                "om,mikl->oikl", wo[:, :, m, n], wi)
    composite = Conv(w, (s1h * outer.stride[0], s1w * outer.stride[1]), tuple(inner.padding), (1, 1), 1,
                     tuple(inner.in_shape), tuple(outer.out_shape))
    return composite if composite.conv_shape == tuple(outer.conv_shape) else None


def compose(outer: Map, inner: Map) -> Optional[Map]:
    """One map equal to `outer(inner(x))` (outer.in_shape and inner.out_shape have the same size), or None if the
    only form is a dense matrix above MAX_DENSE entries."""
    if isinstance(outer, Identity):
        return with_shapes(inner, out_shape=outer.out_shape)
    if isinstance(inner, Identity):
        if isinstance(outer, Conv) and tuple(inner.in_shape) != tuple(outer.in_shape):
            flat = dense(outer)         # a conv of a reshaped source: only its matrix reads the source's layout
            return None if flat is None else with_shapes(flat, in_shape=inner.in_shape)
        return with_shapes(outer, in_shape=inner.in_shape)
    if isinstance(outer, Diag):
        if isinstance(inner, Diag):
            return Diag(outer.scale * inner.scale, inner.in_shape, outer.out_shape)
        if isinstance(inner, Dense):
            return Dense(inner.weight * outer.scale[:, None], inner.in_shape, outer.out_shape)
        if isinstance(inner, Conv):
            gain = per_channel(outer.scale, inner.conv_shape)
            if gain is not None:
                return replace(inner, weight=inner.weight * gain[:, None, None, None], out_shape=outer.out_shape)
    if isinstance(outer, Conv) and isinstance(inner, Conv):
        composite = _conv_conv(outer, inner)
        if composite is not None:
            return composite
    if isinstance(outer, Conv) and isinstance(inner, Diag) and tuple(inner.out_shape) == tuple(outer.in_shape):
        gain = per_channel(inner.scale, outer.in_shape)
        if gain is not None:
            c_in_g = outer.weight.shape[1]
            w = outer.weight * gain.reshape(outer.groups, 1, c_in_g).repeat(
                outer.weight.shape[0] // outer.groups, axis=0).reshape(outer.weight.shape[0], c_in_g, 1, 1)
            return replace(outer, weight=w, in_shape=inner.in_shape)
    mo, mi = matrix(outer), matrix(inner)
    if mo is None or mi is None or mo.shape[0] * mi.shape[1] > MAX_DENSE:
        return None
    return Dense(mo @ mi, tuple(inner.in_shape), tuple(outer.out_shape))


def scale_rows(op: Map, gain: np.ndarray) -> Optional[Map]:
    """`gain * op(x)` elementwise over the output (`gain` flat `[out_size]`); None if too large as dense."""
    if np.all(gain == 1.0):
        return op
    return compose(Diag(np.asarray(gain, dtype=np.float64).reshape(-1), op.out_shape, op.out_shape), op)
