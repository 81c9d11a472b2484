"""Projections (dense and conv synapses) with Lava's integer semantics, batched in torch.

A projection maps the source's outputs `[N, src_size]` to the target's synaptic input `[N, tgt_size]`.
Delays split it into groups of synapses that share one lag; each group reads the source at `t - lag`.
Fixed point, as `lava.proc.dense` / `lava.proc.conv`: the integer accumulation of a group is shifted by
`weight_exp` (left, or arithmetic right for a negative exponent: the ACCUMULATED sum is shifted, as Lava's
Dense does), a conv's result wraps to 24 signed bits (Lava's Conv `signed_clamp`), and a dense sum of graded
payloads wraps to int32 where it can reach 2**31 (Lava's numpy int32 `weights.dot(s_in)` and shift). Integers travel as
float64 (exact below 2**53; see neurons.py).

The sums run in float32 when that is provably exact (every output's sum of |weights| times the largest input
below 2**24: measured about twice as fast as float64 on CPU, and float64 convs fall on torch's slow path) and in
float64 otherwise: torch has no integer conv.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..graph import Graph, Population, Projection, conv_output_shape
from ..loihi import CONV_RESULT_BITS, INT32_HALF, LAVA_INT_BITS
from .counters import fan_out

FLOAT32_EXACT = 1 << (np.finfo(np.float32).nmant + 1)       # every integer below 2**24 is a float32


def wrap_signed(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Modulo wrap of integers (held in float64) into `bits` signed bits (Lava's `signed_clamp`)."""
    half = float(1 << (bits - 1))
    return torch.remainder(x + half, 2 * half) - half


def delay_groups(proj: Projection, src: Population, lag_extra: int) -> list[tuple[int, np.ndarray | None, str]]:
    """Split a projection's delays into (lag, selector, kind) groups.

    kind 'all': every synapse (selector None); 'source': a bool mask `[src_size]` of source neurons with that
    delay (axonal delay per source neuron, delay array of the source's shape); 'synapse': a bool mask of the
    dense weight's shape (per-synapse delay, as Lava's DelayDense; delay array of the weight's shape).
    """
    delay = proj.delay
    if np.isscalar(delay) or np.ndim(delay) == 0:
        d = int(delay)
        if d != delay or d < 0:
            raise InputError(f"projection '{proj.name}': delay must be a non-negative integer, got {delay}")
        return [(d + lag_extra, None, "all")]
    delay = np.asarray(delay)
    if not np.all(delay == np.round(delay)) or delay.min() < 0:
        raise InputError(f"projection '{proj.name}': delays must be non-negative integers")
    delay = delay.astype(np.int64)
    if tuple(delay.shape) == tuple(src.shape):
        flat, kind = delay.reshape(-1), "source"
    elif proj.kind == "dense" and tuple(delay.shape) == tuple(proj.weight.shape):
        flat, kind = delay, "synapse"
    else:
        raise InputError(f"projection '{proj.name}': delay of shape {delay.shape} is neither the source's shape "
                         f"{src.shape} nor (dense) the weight's shape {proj.weight.shape}")
    return [(int(d) + lag_extra, flat == d, kind) for d in np.unique(flat)]


class Synapse:
    """One projection, ready to run: `groups` of (lag, weight, source mask), applied by `contribution`."""

    def __init__(self, graph: Graph, proj: Projection, dtype: torch.dtype, device,
                 source_bound: float = float("inf")) -> None:
        """source_bound: the largest |output| of the source (1 for spikes; graded payloads: known from the input
        or the relay's own inputs, else inf); it decides whether float32 sums are exact."""
        self.name = proj.name
        self.source, self.target = proj.source, proj.target
        src, tgt = graph.population(proj.source), graph.population(proj.target)
        self.src_shape, self.tgt_shape = tuple(src.shape), tuple(tgt.shape)
        self.kind = proj.kind
        self.fixed = graph.fixed
        self.graded_input = src.neuron.sends_payloads
        self.weight_exp = int(proj.weight_exp) if graph.fixed else 0
        weight = np.asarray(proj.weight, dtype=np.float64)
        if graph.fixed and not np.all(weight == np.round(weight)):
            raise InputError(f"projection '{proj.name}': fixed-point weights must be integers")
        if not graph.fixed and proj.weight_exp != 0:
            raise InputError(f"projection '{proj.name}': weight_exp is fixed-point only, got {proj.weight_exp}")
        self._check_shapes(proj, weight)
        self.stride, self.padding = tuple(proj.stride), tuple(proj.padding)
        self.dilation, self.groups_conv = tuple(proj.dilation), int(proj.groups)
        rows = float(np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max(initial=0))
        # the largest |output| (inf if the source's payloads are unbounded): see neurons.FixedCuba
        peak = source_bound if self.graded_input else 1.0
        self.bound_raw = rows * peak * 2.0 ** max(self.weight_exp, 0) if rows else 0.0
        self.bound = self.bound_raw
        if self.kind == "conv":    # the 24-bit wrap bounds a conv's output whatever its input
            self.bound = min(self.bound, float(1 << (CONV_RESULT_BITS - 1)))
        if graph.fixed:
            self.dtype = torch.float32 if self.bound_raw / 2.0 ** max(self.weight_exp, 0) < FLOAT32_EXACT \
                else torch.float64
        else:
            self.dtype = dtype
        lag_extra = 1 if graph.timing == "pipelined" else 0
        self.proj, self.device = proj, device
        self.groups, self._selects = [], []
        for lag, select, kind in delay_groups(proj, src, lag_extra):
            w = weight if kind != "synapse" else np.where(select, weight, 0.0)
            mask = None
            if kind == "source":
                mask = torch.as_tensor(select, device=device)
            self.groups.append((lag, torch.as_tensor(w, dtype=self.dtype, device=device), mask))
            self._selects.append(select if kind == "synapse" else None)
        self._fan_out = None
        self.max_lag = max(lag for lag, _, _ in self.groups)

    def _check_shapes(self, proj: Projection, weight: np.ndarray) -> None:
        src_size, tgt_size = int(np.prod(self.src_shape)), int(np.prod(self.tgt_shape))
        if proj.kind == "dense":
            if weight.ndim != 2 or weight.shape != (tgt_size, src_size):
                raise InputError(f"projection '{proj.name}': dense weight {weight.shape} does not map "
                                 f"{self.src_shape} to {self.tgt_shape} (expected ({tgt_size}, {src_size}))")
        elif proj.kind == "conv":
            if len(self.src_shape) != 3 or len(self.tgt_shape) != 3 or weight.ndim != 4:
                raise InputError(f"projection '{proj.name}': conv needs (C, H, W) populations and a 4-d weight")
            c_in, groups = self.src_shape[0], int(proj.groups)
            if c_in % groups or weight.shape[0] % groups or weight.shape[1] != c_in // groups:
                raise InputError(f"projection '{proj.name}': conv weight {weight.shape} does not fit {c_in} input "
                                 f"channels in {groups} groups")
            out = conv_output_shape(self.src_shape, weight.shape[0], weight.shape[2:], proj.stride, proj.padding,
                                    proj.dilation)
            if out != self.tgt_shape:
                raise InputError(f"projection '{proj.name}': conv output {out} does not match "
                                 f"target '{proj.target}' {self.tgt_shape}")
        else:
            raise InputError(f"projection '{proj.name}': unsupported kind '{proj.kind}'")

    @property
    def fan_out(self) -> list:
        """Per delay group: the fan-out of each source neuron (`[src_size]` float64), or one float if uniform
        (dense: counted as events x fan-out without a product per neuron). Computed on first use."""
        if self._fan_out is None:
            fan = fan_out(self.proj, self.src_shape, self.tgt_shape)
            self._fan_out = []
            for select in self._selects:
                group_fan = select.sum(axis=0) if select is not None else fan
                uniform = group_fan.size and np.all(group_fan == group_fan[0])
                self._fan_out.append(float(group_fan[0]) if uniform else
                                     torch.tensor(group_fan, dtype=torch.float64, device=self.device))
        return self._fan_out

    def _apply(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.kind == "dense":
            return x @ w.T
        n = x.shape[0]
        y = F.conv2d(x.view(n, *self.src_shape), w, stride=self.stride, padding=self.padding,
                     dilation=self.dilation, groups=self.groups_conv)
        return y.reshape(n, -1)

    def contribution(self, group: int, x: torch.Tensor) -> torch.Tensor:
        """Delay group `group`'s synaptic input `[B, tgt_size]` from the source's outputs `x` `[B, src_size]`
        (B: samples, or steps x samples). Fixed point: exact integers, float32 when below 2**24, else float64."""
        _, w, mask = self.groups[group]
        if mask is not None:
            x = x * mask
        return self.finish(self._apply(x.to(self.dtype), w))

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        """Lava's integer rules on a group's raw sums `[B, tgt_size]`: int32 wrap of a dense sum that can reach
        2**31, the exponent's shift, the conv's 24-bit wrap; never writes into y (it may be shared)."""
        if not self.fixed:
            return y
        int32 = self.kind == "dense" and self.bound_raw >= INT32_HALF
        if int32:
            y = wrap_signed(y.to(torch.float64), LAVA_INT_BITS)
        # scaling by a power of two is exact in float32 too; the 24-bit wrap needs float64's headroom
        if self.weight_exp > 0:
            y = y * float(1 << self.weight_exp)
        elif self.weight_exp < 0:     # arithmetic right shift = floor division by 2**-exp
            y = (y * 2.0 ** self.weight_exp).floor_()
        if self.kind == "conv" and self.bound_raw >= 1 << (CONV_RESULT_BITS - 1):
            y = wrap_signed(y.to(torch.float64), CONV_RESULT_BITS)
        elif int32 and self.weight_exp > 0:
            y = wrap_signed(y, LAVA_INT_BITS)
        return y

    def counts(self, group: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Events (non-zero inputs) and their synaptic operations, per step `[K]` float64, for the source's
        outputs `x` `[K, N, src_size]` reaching the target through delay group `group`."""
        mask = self.groups[group][2]
        if mask is not None:
            x = x * mask
        nz = (x != 0).to(torch.float64) if self.graded_input else x.to(torch.float64)
        events = nz.sum(dim=(1, 2))
        fan = self.fan_out[group]
        ops = events * fan if isinstance(fan, float) else (nz @ fan).sum(dim=1)
        return events, ops



class SharedSource:
    """Delay groups of several projections that read one source with one geometry, computed as ONE operation.

    MS-ResNet's composed lowering gives every LIF population a projection from each earlier block; along identity
    shortcuts these carry the same weight (only the delay differs), and projections of one source with one
    stride feed many targets. Here the distinct weights are stacked along the output channels (identical ones
    once), applied once to the source's outputs over a window of steps covering every member's lag, and each
    member (syn, group) reads its channels at its own lag, then applies its own exponent and 24-bit wrap: the
    same integers as `Synapse.contribution` member by member.
    Members: delay groups without a source mask of Synapses with equal source, kind, stride, padding, dilation,
    kernel size and sum dtype, and no conv groups.
    """

    def __init__(self, members: list[tuple[Synapse, int]]) -> None:
        first = members[0][0]
        self.source, self.kind, self.dtype = first.source, first.kind, first.dtype
        self.members = members
        weights, spans, self.channels = [], [], {}   # (syn name, group) -> (first, last + 1) stacked channel
        for syn, group in members:
            w = syn.groups[group][1]
            same = [span for seen, span in zip(weights, spans) if seen.shape == w.shape and torch.equal(seen, w)]
            if not same:
                start = spans[-1][1] if spans else 0
                weights.append(w)
                spans.append((start, start + w.shape[0]))
            self.channels[(syn.name, group)] = same[0] if same else spans[-1]
        self.weight = torch.cat(weights)
        self.lags = {(syn.name, group): syn.groups[group][0] for syn, group in members}
        self.min_lag, self.max_lag = min(self.lags.values()), max(self.lags.values())
        self.out_spatial = (1,) if self.kind == "dense" else tuple(first.tgt_shape[1:])
        self.distinct = len(weights)

    @staticmethod
    def key(syn: Synapse, group: int):
        """What members of one SharedSource have in common; None for a group that cannot share (source mask)."""
        _, w, mask = syn.groups[group]
        if mask is not None or syn.groups_conv != 1:   # stacked outputs would regroup a grouped conv
            return None
        geometry = () if syn.kind == "dense" else (syn.stride, syn.padding, syn.dilation, syn.groups_conv,
                                                   tuple(w.shape[1:]))
        return syn.source, syn.kind, syn.dtype, geometry

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked raw sums `[B, C_stack, *out_spatial]` for source outputs x `[B, src_size]`."""
        first = self.members[0][0]
        y = first._apply(x.to(self.dtype), self.weight)
        return y.view(x.shape[0], -1, *self.out_spatial)

    def member_part(self, syn: Synapse, group: int, raw: torch.Tensor) -> torch.Tensor:
        """Member (syn, group)'s synaptic input `[B, tgt_size]` from the stacked raw sums `raw` (rows already at
        its lag): its channels through `syn.finish` (a view of raw where no integer rule applies)."""
        c0, c1 = self.channels[(syn.name, group)]
        return syn.finish(raw[:, c0:c1].reshape(raw.shape[0], -1))


def share_sources(synapses: list[Synapse]) -> dict[tuple[str, int], SharedSource]:
    """(projection name, delay group) -> its SharedSource, for every delay group that shares one with another
    (groups that share nothing are absent: they run on their own, `Synapse.contribution`)."""
    buckets: dict = {}
    for syn in synapses:
        for group in range(len(syn.groups)):
            key = SharedSource.key(syn, group)
            if key is not None:
                buckets.setdefault(key, []).append((syn, group))
    shared = {}
    for members in buckets.values():
        if len(members) > 1:
            merged = SharedSource(members)
            shared.update({(syn.name, group): merged for syn, group in members})
    return shared
