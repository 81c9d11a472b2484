"""What a projection costs a core: stored weight bits, real connections, and per tile of a population the input
axons, synapse memory and output axons, computed axis by axis (a conv's connectivity is separable in channels,
rows and columns).

A population is cut into a grid of tiles (one tile per core): `(c, h, w)` blocks of a `(C, H, W)` population, or
contiguous chunks of a flat one. For a target tile, every source neuron with at least one synapse into it is one
input axon; its synapses into the tile are one synapse list, stored as entries of at most `synapses_per_group`
synapses plus a header, each rounded up to whole memory words (Loihi's format, see chips/*.json). A synapse holds
its weight bits, a target index when the list is sparse (conv: the targets are not contiguous) and delay bits
when the projection has delays. A dense projection's lists are dense (no index: every neuron of the tile).

Conv weights are stored one of two ways (docs/plan.md):
    expanded  every real connection is a synapse of its own (each core holds its slice of the layer's
              synapses; what a dense-synapse compiler stores)
    shared    weight sharing through population axons (nengo-loihi's Loihi convolution): one input axon per
              source pixel, the channel carried in the spike; one synapse list per (source channel, distinct
              pattern of kernel taps that land in the tile)
For a source tile, every (source neuron, destination core) pair is one output axon.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .. import loihi
from ..graph import Projection
from .chip import Chip

CONV_WEIGHTS = ("expanded", "shared")


def stored_weight_bits(weight: np.ndarray) -> int:
    """Bits per synapse that Loihi stores for these integer weights (the sign included for mixed signs): Lava's
    rule (`lava.utils.weightutils.optimize_weight_bits`, which Lava's Loihi 2 path applies to Dense and Conv
    weights): scale the largest weight to the 8-bit range, then drop the trailing zero bits all weights share.
    0 for all-zero weights."""
    w = np.asarray(weight).astype(np.int64)
    if not w.size:
        return 0
    lo, hi = int(w.min()), int(w.max())
    if lo == hi == 0:
        return 0
    mixed = lo < 0 < hi
    if mixed:
        scale = min(loihi.MANT_MAX / hi, loihi.MANT_MIN / lo)
    else:
        scale = loihi.WEIGHT_MAX / (hi if lo >= 0 else -lo)
    exp = -(int(math.floor(math.log2(scale))) + int(mixed))
    nonzero = np.abs(w[w != 0])
    shared_zeros = int(np.min(_trailing_zeros(nonzero)))
    n = min(loihi.WEIGHT_BITS, shared_zeros) - int(mixed)
    return loihi.WEIGHT_BITS + exp - n


def _trailing_zeros(values: np.ndarray) -> np.ndarray:
    return np.log2(values & -values).round().astype(np.int64)


def delay_bits(proj: Projection) -> int:
    """Bits of the synaptic delay field the projection's synapses need: enough for its largest delay."""
    top = int(np.max(proj.delay))
    return 0 if top <= 0 else int(top).bit_length()


def index_bits(chip: Chip, neurons: int) -> int:
    """Bits of a sparse synapse's target index on a core holding `neurons` neurons."""
    return max(int(chip.index_bits_min), int(max(neurons, 1) - 1).bit_length())


def list_bits(n: np.ndarray, bits_per_synapse: int, chip: Chip) -> np.ndarray:
    """Memory bits of synapse lists of `n` synapses each (an array): entries of at most `synapses_per_group`
    synapses plus a header, each rounded up to whole words."""
    n = np.asarray(n, dtype=np.int64)
    group, word, head = int(chip.synapses_per_group), int(chip.memory_word_bits), int(chip.group_header_bits)
    full, rest = n // group, n % group
    words_full = -(-(group * bits_per_synapse + head) // word)
    words_rest = np.where(rest > 0, -(-(rest * bits_per_synapse + head) // word), 0)
    return (full * words_full + words_rest) * word


def real_synapses(proj: Projection, src_shape: tuple, tgt_shape: tuple) -> int:
    """Synapses that exist: every (source, target) pair of a dense projection; the kernel taps of a conv that
    land inside the source (no padding taps)."""
    if proj.kind == "dense":
        return int(np.prod(src_shape)) * int(np.prod(tgt_shape))
    taps = 1
    for axis in (1, 2):
        n_in, n_out, k, stride, pad, dil = _conv_geometry(proj, src_shape, tgt_shape, axis)
        taps *= int(_incoming_counts(n_in, k, stride, pad, dil, 0, n_out).sum())
    return int(proj.weight.shape[0]) * int(proj.weight.shape[1]) * taps


# -- per axis (cached: the planner tries many cuts of the same geometry) -----------------------------------------
def _cached(fn):
    """lru_cache for functions of ints returning arrays, made read-only because every caller shares them."""
    @functools.lru_cache(maxsize=8192)
    def wrapper(*args):
        out = fn(*args)
        for array in (out if isinstance(out, tuple) else (out,)):
            array.flags.writeable = False
        return out
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _incoming_counts(n_in: int, k: int, s: int, p: int, d: int, o0: int, o1: int) -> np.ndarray:
    """For output positions [o0, o1) of a conv axis: per source position, how many of them it reaches `[n_in]`."""
    counts = np.zeros(int(n_in), dtype=np.int64)
    out = np.arange(o0, o1)
    for tap in range(int(k)):
        src = out * int(s) - int(p) + tap * int(d)
        np.add.at(counts, src[(src >= 0) & (src < n_in)], 1)
    return counts


def _incoming_pattern_sizes(n_in: int, k: int, s: int, p: int, d: int, o0: int, o1: int) -> np.ndarray:
    """For output positions [o0, o1) of a conv axis: the sizes of the distinct non-empty sets of kernel taps by
    which a source position reaches them (the synapse lists a shared-weight conv stores)."""
    taps = np.zeros((int(n_in), int(k)), dtype=bool)
    out = np.arange(o0, o1)
    for tap in range(int(k)):
        src = out * int(s) - int(p) + tap * int(d)
        taps[src[(src >= 0) & (src < n_in)], tap] = True
    distinct = {tuple(row) for row in taps if row.any()}
    return np.array(sorted(sum(row) for row in distinct), dtype=np.int64)


def _stack_histograms(rows: list[np.ndarray]) -> np.ndarray:
    """Histograms of non-negative int rows, one per row, over the values 0..max (value 0 dropped: no synapses)."""
    top = max((int(r.max(initial=0)) for r in rows), default=0)
    h = np.stack([np.bincount(r, minlength=top + 1)[: top + 1] for r in rows]).astype(np.int64)
    h[:, 0] = 0
    return h


@_cached
def _axis_in(n_in: int, n_out: int, k: int, s: int, p: int, d: int, tile: int, shared: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """A conv axis cut into output tiles of size `tile`: per tile, (histogram over source positions of how many
    of its outputs each reaches `[tiles, V]` -- or, shared, of the sizes of the distinct tap patterns --, source
    positions with a synapse into it `[tiles]`)."""
    ranges = [(a, min(a + tile, n_out)) for a in range(0, n_out, tile)]
    counts = [_incoming_counts(n_in, k, s, p, d, lo, hi) for lo, hi in ranges]
    pixels = np.array([np.count_nonzero(c) for c in counts], dtype=np.int64)
    if shared:
        return _stack_histograms([_incoming_pattern_sizes(n_in, k, s, p, d, lo, hi) for lo, hi in ranges]), pixels
    return _stack_histograms(counts), pixels


@_cached
def _channels_in(c_out: int, c_in: int, groups: int, tile: int) -> np.ndarray:
    """Output channels cut into tiles of size `tile`: per tile, histogram over source channels of how many of
    its channels each feeds `[tiles, V]`."""
    out_group, in_group = _channel_groups(c_out, c_in, groups)
    per_tile = [np.bincount(out_group[a:a + tile], minlength=groups)[in_group] for a in range(0, c_out, tile)]
    return _stack_histograms(per_tile)


@_cached
def _axis_out(n_in: int, n_out: int, k: int, s: int, p: int, d: int, tile: int) -> np.ndarray:
    """Per source position of a conv axis: how many output tiles of size `tile` it reaches `[n_in]`."""
    reached = np.zeros((int(n_in), -(-int(n_out) // int(tile))), dtype=bool)
    src = np.arange(n_in)
    for tap in range(int(k)):
        num = src + int(p) - tap * int(d)
        ok = (num % int(s) == 0) & (num >= 0) & (num // int(s) < n_out)
        reached[src[ok], (num[ok] // int(s)) // int(tile)] = True
    return reached.sum(axis=1)


@_cached
def _channels_out(c_out: int, c_in: int, groups: int, tile: int) -> np.ndarray:
    """Per source channel: how many output-channel tiles of size `tile` it feeds `[c_in]`."""
    out_group, in_group = _channel_groups(c_out, c_in, groups)
    tile_of = np.arange(c_out) // tile
    per_group = np.array([len(np.unique(tile_of[out_group == g])) for g in range(groups)], dtype=np.int64)
    return per_group[in_group]


def _channel_groups(c_out: int, c_in: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Group of every output channel `[c_out]` and of every input channel `[c_in]`."""
    return np.arange(c_out) // (c_out // groups), np.arange(c_in) // (c_in // groups)


@dataclass(frozen=True)
class Tiling:
    """A population cut into a grid of tiles of size `tile` (per axis; the last tile of an axis may be smaller)."""
    shape: tuple[int, ...]
    tile: tuple[int, ...]

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-n // t) for n, t in zip(self.shape, self.tile))

    @property
    def cores(self) -> int:
        return int(np.prod(self.grid))

    def ranges(self, axis: int) -> list[tuple[int, int]]:
        n, t = self.shape[axis], self.tile[axis]
        return [(a, min(a + t, n)) for a in range(0, n, t)]

    def sizes(self) -> np.ndarray:
        """Neurons of every tile, `grid`-shaped."""
        per_axis = [np.array([b - a for a, b in self.ranges(i)]) for i in range(len(self.shape))]
        return _outer(per_axis)


def _outer(vectors: list[np.ndarray]) -> np.ndarray:
    out = vectors[0]
    for v in vectors[1:]:
        out = np.multiply.outer(out, v)
    return out


def is_spatial(shape: tuple) -> bool:
    return len(shape) == 3


# -- per projection, per tile ----------------------------------------------------------------------------------
def _conv_geometry(proj: Projection, src_shape: tuple, tgt_shape: tuple, axis: int) -> tuple[int, ...]:
    """(n_in, n_out, kernel, stride, padding, dilation) of a conv along spatial axis 1 (rows) or 2 (columns)."""
    return (int(src_shape[axis]), int(tgt_shape[axis]), int(proj.weight.shape[1 + axis]),
            int(proj.stride[axis - 1]), int(proj.padding[axis - 1]), int(proj.dilation[axis - 1]))


def incoming(proj: Projection, src_shape: tuple, target: Tiling, weight_bits: int, chip: Chip,
             conv_weights: str) -> tuple[np.ndarray, np.ndarray]:
    """(input axons, synapse memory bits) that `proj` takes on every tile of its target, each `grid`-shaped."""
    dbits = delay_bits(proj)
    if proj.kind == "dense":
        f_in = int(np.prod(src_shape))
        memory = f_in * list_bits(target.sizes(), weight_bits + dbits, chip)
        return np.full(target.grid, f_in, dtype=np.int64), memory
    shared = conv_weights == "shared"
    c_out = int(proj.weight.shape[0])
    hc = _channels_in(c_out, int(src_shape[0]), int(proj.groups), int(target.tile[0]))
    (hh, ph), (hw, pw) = (_axis_in(*_conv_geometry(proj, src_shape, target.shape, a), int(target.tile[a]), shared)
                          for a in (1, 2))
    if shared:
        # one input axon per source pixel: the channel travels with the spike
        axons = _outer([np.ones(len(hc), dtype=np.int64), ph, pw])
    else:
        axons = _outer([hc.sum(axis=1), ph, pw])
    bps = weight_bits + dbits + index_bits(chip, int(np.prod(target.tile)))
    cost = list_bits(_outer([np.arange(m.shape[1]) for m in (hc, hh, hw)]), bps, chip)
    memory = np.einsum("ax,by,cz,xyz->abc", hc, hh, hw, cost)
    return axons.astype(np.int64), memory.astype(np.int64)


def outgoing(proj: Projection, source: Tiling, tgt: Tiling) -> np.ndarray:
    """Output axons `proj` takes on every tile of its source (`grid`-shaped): one per (source neuron, target
    tile it reaches)."""
    if proj.kind == "dense" or not is_spatial(source.shape):
        return source.sizes() * tgt.cores
    per_axis = [_channels_out(int(proj.weight.shape[0]), int(source.shape[0]), int(proj.groups), int(tgt.tile[0]))]
    for a in (1, 2):
        n_in, n_out, k, s, p, d = _conv_geometry(proj, source.shape, tgt.shape, a)
        per_axis.append(_axis_out(n_in, n_out, k, s, p, d, int(tgt.tile[a])))
    sums = [np.add.reduceat(v, np.arange(0, len(v), source.tile[i])) for i, v in enumerate(per_axis)]
    return _outer(sums)
