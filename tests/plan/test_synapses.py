"""The plan's per-tile counts (input axons, synapse memory, output axons) equal counts made one synapse at a time
from the explicit synapse matrix; stored weight bits equal Lava's own rule; real synapses equal the simulator's
fan-out."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnchip.graph import Projection
from snnchip.plan import load_chip
from snnchip.plan.synapses import (Tiling, delay_bits, incoming, index_bits, list_bits, outgoing, real_synapses,
                                   stored_weight_bits)
from snnchip.sim.counters import fan_out

CHIP = load_chip("loihi2")

GEOMETRIES = [
    dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1),
    dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1), groups=2),
    dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2), groups=1),
]


def conv_taps(weight_shape, src_shape, stride, padding, dilation, groups):
    """Per kernel tap (a, b): the boolean synapse matrix [src_size, tgt_size] of the synapses using that tap,
    by convolving every one-hot input with a kernel that is one at that tap only."""
    c_out, c_in_g, kh, kw = weight_shape
    size = int(np.prod(src_shape))
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *src_shape)
    taps = {}
    for a, b in itertools.product(range(kh), range(kw)):
        w = torch.zeros(weight_shape, dtype=torch.float64)
        w[:, :, a, b] = 1.0
        out = F.conv2d(basis, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        taps[(a, b)] = out.reshape(size, -1).numpy() > 0
    return taps, tuple(out.shape[1:])


def tiles(shape, tile):
    """Flat C-order neuron indices of every tile of a grid cut, in grid order."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    grid = [range(0, n, t) for n, t in zip(shape, tile)]
    for start in itertools.product(*grid):
        yield index[tuple(slice(s, s + t) for s, t in zip(start, tile))].reshape(-1)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("tile", [(6, 2, 3), (3, 5, 8), (1, 1, 1), (6, 9, 8)])
def test_conv_tile_counts_equal_explicit_synapse_matrix(geometry, tile):
    src_shape, weight_shape = (4, 9, 8), (6, 4 // geometry["groups"], 3, 3)
    taps, tgt_shape = conv_taps(weight_shape, src_shape, **geometry)
    matrix = np.any(list(taps.values()), axis=0)                     # [src, tgt]
    tile = tuple(min(t, n) for t, n in zip(tile, tgt_shape))
    target = Tiling(tgt_shape, tile)
    delay = np.zeros(src_shape, dtype=int)
    delay[0, 0, 0] = 5                                                # an axonal delay: 3 delay bits everywhere
    proj = Projection("c", "a", "b", "conv", np.ones(weight_shape), delay=delay, **geometry)
    weight_bits = 3
    for mode in ("expanded", "shared"):
        axons, memory = incoming(proj, src_shape, target, weight_bits, CHIP, mode)
        bps = weight_bits + 3 + index_bits(CHIP, int(np.prod(tile)))
        for i, cols in enumerate(tiles(tgt_shape, tile)):
            per_source = matrix[:, cols].sum(axis=1)                  # synapses of each source into the tile
            if mode == "expanded":
                want_axons = np.count_nonzero(per_source)
                want_memory = int(list_bits(per_source[per_source > 0], bps, CHIP).sum())
            else:
                # one axon per source pixel; one list per (source channel, distinct set of taps into the tile)
                pixels = per_source.reshape(src_shape).any(axis=0)
                want_axons = np.count_nonzero(pixels)
                lists = set()
                for src in np.flatnonzero(per_source):
                    pattern = frozenset(t for t, m in taps.items() if m[src, cols].any())
                    lists.add((src // (src_shape[1] * src_shape[2]), pattern, int(per_source[src])))
                want_memory = int(sum(list_bits(n, bps, CHIP) for _, _, n in lists))
            assert axons.reshape(-1)[i] == want_axons, (mode, i)
            assert memory.reshape(-1)[i] == want_memory, (mode, i)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("src_tile, tgt_tile", [((4, 3, 3), (6, 2, 3)), ((1, 9, 2), (2, 5, 1)), ((2, 2, 8), (6, 9, 8))])
def test_output_axons_equal_distinct_target_cores_per_source_neuron(geometry, src_tile, tgt_tile):
    src_shape, weight_shape = (4, 9, 8), (6, 4 // geometry["groups"], 3, 3)
    taps, tgt_shape = conv_taps(weight_shape, src_shape, **geometry)
    matrix = np.any(list(taps.values()), axis=0)
    tgt_tile = tuple(min(t, n) for t, n in zip(tgt_tile, tgt_shape))
    core_of = np.empty(int(np.prod(tgt_shape)), dtype=int)
    for core, cols in enumerate(tiles(tgt_shape, tgt_tile)):
        core_of[cols] = core
    reached = np.array([len(set(core_of[matrix[s]])) for s in range(matrix.shape[0])])
    proj = Projection("c", "a", "b", "conv", np.ones(weight_shape), **geometry)
    got = outgoing(proj, Tiling(src_shape, src_tile), Tiling(tgt_shape, tgt_tile))
    want = [reached[rows].sum() for rows in tiles(src_shape, src_tile)]
    np.testing.assert_array_equal(got.reshape(-1), want)


def test_dense_tiles_store_one_dense_list_per_source():
    proj = Projection("d", "a", "b", "dense", np.ones((70, 30)), delay=0)
    target = Tiling((70,), (32,))
    axons, memory = incoming(proj, (2, 3, 5), target, 5, CHIP, "expanded")
    np.testing.assert_array_equal(axons, [30, 30, 30])
    # no index bits: 32 synapses of 5 bits + a 10-bit header = 170 bits = 3 words; the last tile has 6 synapses
    np.testing.assert_array_equal(memory, [30 * 3 * 64, 30 * 3 * 64, 30 * 1 * 64])
    np.testing.assert_array_equal(outgoing(proj, Tiling((2, 3, 5), (2, 3, 3)), target), [[[18 * 3, 12 * 3]]])


def test_list_bits_round_each_entry_up_to_whole_words():
    # 64 synapses per entry, 10-bit header, 64-bit words (Loihi's format)
    assert list_bits(0, 8, CHIP) == 0
    assert list_bits(1, 8, CHIP) == 64                     # 18 bits -> one word
    assert list_bits(64, 8, CHIP) == 9 * 64                # 522 bits -> 9 words
    assert list_bits(65, 8, CHIP) == 9 * 64 + 64           # a second entry of one synapse
    np.testing.assert_array_equal(list_bits(np.array([6, 7]), 9, CHIP), [64, 2 * 64])


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_real_synapses_equal_the_simulators_fan_out(geometry):
    src_shape, weight = (4, 9, 8), np.ones((6, 4 // geometry["groups"], 3, 3))
    _, tgt_shape = conv_taps(weight.shape, src_shape, **geometry)
    proj = Projection("c", "a", "b", "conv", weight, **geometry)
    assert real_synapses(proj, src_shape, tgt_shape) == int(fan_out(proj, src_shape, tgt_shape).sum())
    dense = Projection("d", "a", "b", "dense", np.ones((7, 288)))
    assert real_synapses(dense, src_shape, (7,)) == int(fan_out(dense, src_shape, (7,)).sum()) == 7 * 288


def _lava_bits(w):
    from lava.utils.weightutils import determine_sign_mode, optimize_weight_bits
    return optimize_weight_bits(w, determine_sign_mode(w)).num_weight_bits


def test_stored_weight_bits_follow_lavas_rule():
    rng = np.random.default_rng(0)
    cases = [np.zeros((3, 4), dtype=int), np.array([[255, 3]]), np.array([[-255, -1]]), np.array([[-256, 254]]),
             np.array([[-3, 3]]), np.array([[-4, 6]]), np.array([[127, -128]]), np.array([[1, 0]])]
    for shift in range(4):
        for lo, hi in ((-128, 127), (0, 255), (-255, 0), (-8, 8), (0, 4), (-2, 1)):
            w = rng.integers(lo, hi + 1, size=(5, 7)) << shift
            mixed = w.min() < 0 < w.max()
            cases.append(np.clip(w, -256 if mixed else -255, 254 if mixed else 255))   # Lava's ranges
    for w in cases:
        assert stored_weight_bits(w) == _lava_bits(w), w
    assert stored_weight_bits(np.array([[-6, 6, 2]])) == 3          # -3..3 once the shared zero bit is dropped


def test_delay_bits_hold_the_largest_delay():
    proj = Projection("d", "a", "b", "dense", np.ones((2, 2)), delay=0)
    assert delay_bits(proj) == 0
    proj.delay = np.array([[0, 1], [7, 2]])
    assert delay_bits(proj) == 3
    proj.delay = 8
    assert delay_bits(proj) == 4
