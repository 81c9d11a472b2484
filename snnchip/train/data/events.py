"""Event arrays and their integration into frames.

Events are numpy structured arrays with Tonic's field names (`x`, `y` pixel column and row, `t` microseconds,
`p` polarity 0 = OFF / 1 = ON), so Tonic's transforms apply to them unchanged. Frames are float32
`[C, H, W, T]` (C = polarities), the layout the models read.
"""
import numpy as np

from ...errors import InputError

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.uint8)])


def make_events(x, y, t, p) -> np.ndarray:
    """Structured event array from equal-length columns, sorted by time (stable, so equal times keep order)."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    if len(events) > 1 and np.any(np.diff(events["t"]) < 0):
        events = events[np.argsort(events["t"], kind="stable")]
    return events


def frame_index(events: np.ndarray, T: int, split_by: str = "number", window=None) -> np.ndarray:
    """Which of T frames each event falls in, [num_events] int64.

    split_by='number': frame i holds events [n*i//T, n*(i+1)//T) of the n time-ordered events (as SpikingJelly's
    `integrate_events_by_fixed_frames_number`; every event lands in a frame, unlike Tonic's `n_event_bins`,
    which drops the remainder). split_by='time': T equal slices of `window` = (t_start, t_end) in us (end
    exclusive; default: first event to last event inclusive); events outside the window get -1.
    """
    n = len(events)
    if split_by == "number":
        # inverse of the boundaries n*i//T: event j is in the last frame whose start is <= j
        starts = (n * np.arange(T, dtype=np.int64)) // T
        return np.searchsorted(starts, np.arange(n, dtype=np.int64), side="right") - 1
    if split_by == "time":
        t = events["t"]
        if window is None:
            if n == 0:
                return np.zeros(0, dtype=np.int64)
            window = (int(t.min()), int(t.max()) + 1)
        start, end = int(window[0]), int(window[1])
        if end <= start:
            raise InputError(f"time window ({start}, {end}) us is empty")
        idx = ((t - start) * T) // (end - start)
        idx[(t < start) | (t >= end)] = -1
        return idx
    raise InputError(f"split_by must be 'number' or 'time', got {split_by!r}")


def check_in_sensor(events: np.ndarray, sensor_hw) -> None:
    """Raise InputError unless every event lies on the sensor of `sensor_hw` = (H, W) pixels."""
    H, W = sensor_hw
    if len(events) == 0:
        return
    x, y = events["x"], events["y"]
    if x.min() < 0 or y.min() < 0 or x.max() >= W or y.max() >= H:
        raise InputError(f"events outside the {W}x{H} sensor (x {x.min()}..{x.max()}, y {y.min()}..{y.max()})")


def to_frames(events: np.ndarray, sensor_size, T: int, split_by: str = "number", window=None,
              binary: bool = False) -> np.ndarray:
    """Integrate events into frames, float32 [P, H, W, T] with `sensor_size` = (H, W, P).

    Each pixel of frame t counts the events of its polarity (P = 2: channel 0 OFF, 1 ON; P = 1: both merged);
    `binary=True` gives 1 where the count is positive. Events outside the sensor raise, never wrap.
    """
    H, W, P = sensor_size
    frames = np.zeros((P, H, W, T), dtype=np.float32)
    if len(events) == 0:
        return frames
    check_in_sensor(events, (H, W))
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    f = frame_index(events, T, split_by, window)
    keep = f >= 0
    p = events["p"].astype(np.int64) if P == 2 else np.zeros(len(events), dtype=np.int64)
    if P == 2 and p.max() > 1:
        raise InputError(f"polarity values must be 0 or 1, got {p.max()}")
    flat = ((p * H + y) * W + x) * T + f
    counts = np.bincount(flat[keep], minlength=P * H * W * T).astype(np.float32)
    frames = counts.reshape(P, H, W, T)
    if binary:
        frames = (frames > 0).astype(np.float32)
    return frames


def resize_events(events: np.ndarray, sensor_hw, size) -> np.ndarray:
    """Map events from a sensor of `sensor_hw` = (H, W) onto `size` = (h, w) pixels: x' = x*w // W, y' = y*h // H
    (Tonic's `Downsample` by a spatial factor, exact for non-integer ratios such as 128 -> 48), so counts of the
    source pixels that land on one output pixel add up."""
    (H, W), (h, w) = sensor_hw, size
    out = events.copy()
    out["x"] = (events["x"].astype(np.int64) * w) // W
    out["y"] = (events["y"].astype(np.int64) * h) // H
    return out
