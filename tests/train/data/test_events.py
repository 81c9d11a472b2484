import numpy as np
import pytest
import torch

from snnchip.train.data import FlipRoll, make_events, to_frames
from snnchip.train.data.events import frame_index, resize_events


def _events(x, y, t, p):
    return make_events(np.array(x), np.array(y), np.array(t), np.array(p))


def test_make_events_sorts_by_time_stably():
    ev = _events([0, 1, 2, 3], [0, 0, 0, 0], [30, 10, 10, 20], [1, 0, 1, 0])
    assert ev["t"].tolist() == [10, 10, 20, 30] and ev["x"].tolist() == [1, 2, 3, 0]


def test_split_by_number_spreads_every_event():
    ev = _events(np.zeros(10, int), np.zeros(10, int), np.arange(10), np.zeros(10, int))
    # 10 events in 3 frames: boundaries 10*i//3 = 0, 3, 6 -> sizes 3, 3, 4
    assert frame_index(ev, 3, "number").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    # fewer events than frames: frame i starts at n*i//T
    assert frame_index(ev[:2], 4, "number").tolist() == [1, 3]


def test_split_by_time_window_and_span():
    ev = _events([0] * 5, [0] * 5, [0, 24, 25, 99, 100], [0] * 5)
    assert frame_index(ev, 4, "time", window=(0, 100)).tolist() == [0, 0, 1, 3, -1]
    assert frame_index(ev, 4, "time").tolist() == [0, 0, 0, 3, 3]      # own span 0..100 inclusive: 101 us
    with pytest.raises(ValueError, match="split_by"):
        frame_index(ev, 4, "words")


def test_to_frames_counts_per_polarity_and_binary():
    ev = _events([1, 1, 2, 0], [0, 0, 1, 1], [0, 1, 2, 3], [1, 1, 0, 1])
    f = to_frames(ev, (2, 3, 2), 2, "number")
    assert f.shape == (2, 2, 3, 2) and f.dtype == np.float32
    assert f[1, 0, 1, 0] == 2 and f[0, 1, 2, 1] == 1 and f[1, 1, 0, 1] == 1 and f.sum() == 4
    assert to_frames(ev, (2, 3, 2), 2, binary=True)[1, 0, 1, 0] == 1
    merged = to_frames(ev, (2, 3, 1), 1)
    assert merged.shape == (1, 2, 3, 1) and merged[0, 0, 1, 0] == 2 and merged.sum() == 4
    with pytest.raises(ValueError, match="outside"):
        to_frames(ev, (1, 3, 2), 2)


def test_resize_events_keeps_every_count():
    rng = np.random.default_rng(0)
    ev = _events(rng.integers(0, 128, 500), rng.integers(0, 128, 500), np.arange(500), rng.integers(0, 2, 500))
    small = resize_events(ev, (128, 128), (48, 48))
    assert small["x"].max() < 48 and small["y"].max() < 48
    assert np.array_equal(small["x"], ev["x"] * 48 // 128)
    f = to_frames(small, (48, 48, 2), 10)
    assert f.sum() == 500


def test_flip_roll_same_for_all_steps():
    x = torch.arange(2 * 4 * 5 * 3, dtype=torch.float32).reshape(2, 4, 5, 3)
    torch.manual_seed(1)
    outs = [FlipRoll(flip=1.0, roll=0)(x), FlipRoll(flip=0.0, roll=2)(x)]
    assert torch.equal(outs[0], x.flip(2))
    rolled = outs[1]
    assert any(torch.equal(torch.roll(x, (dy, dx), (1, 2)), rolled) for dy in range(-2, 3) for dx in range(-2, 3))
