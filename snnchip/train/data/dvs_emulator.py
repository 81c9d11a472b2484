"""A DVS (dynamic vision sensor) pixel model, vectorised over a batch of scenes watched by one sensor.

Each pixel remembers the log intensity at its last event; when the present log intensity differs from it by
more than the pixel's contrast threshold it emits an event (ON for an increase, OFF for a decrease) and moves
its memory one threshold towards the present value. Thresholds differ per pixel (Gaussian mismatch, fixed for
the sensor), a pixel is silent for a refractory period after each event, and an event's timestamp is where the
log intensity, linearly interpolated between the two samples around it, crossed the threshold. A change
larger than one threshold yields one event per sample step, the rest follows at the start of later steps (as a
real pixel resets and fires again).
"""
from dataclasses import dataclass

import numpy as np

from .events import EVENT_DTYPE


@dataclass(frozen=True)
class DVSSensor:
    """Sensor parameters. Thresholds are in natural-log units of intensity; times in microseconds."""
    height: int
    width: int
    threshold: float = 0.25
    threshold_sigma: float = 0.03
    refractory_us: int = 1000
    min_threshold: float = 0.05   # physical floor: a mismatch draw can never make a pixel fire on no change

    def thresholds(self, seed: int) -> np.ndarray:
        """Per-pixel contrast thresholds [2, H, W] (OFF, ON), drawn once per sensor from `seed`."""
        rng = np.random.default_rng(seed)
        draw = rng.normal(self.threshold, self.threshold_sigma, size=(2, self.height, self.width))
        return np.maximum(draw, self.min_threshold)


def emulate(sensor: DVSSensor, log_intensity, times_us: np.ndarray, seed: int):
    """Events of N scenes, each watched by the same sensor.

    log_intensity(k) -> [N, H, W] log intensity of every scene at sample k (k = 0 .. len(times_us)-1);
    pixels start adapted to sample 0. Returns (events, offsets): one EVENT_DTYPE array of all scenes'
    events, scene i's time-ordered events being events[offsets[i]:offsets[i+1]].
    """
    off_thr, on_thr = sensor.thresholds(seed)
    level = np.array(log_intensity(0), dtype=np.float64)
    n, H, W = level.shape
    # flat per-pixel state; only the few pixels that fire in a step are touched beyond the comparisons
    on_thr = np.broadcast_to(on_thr, level.shape).ravel()
    off_thr = np.broadcast_to(off_thr, level.shape).ravel()
    memory = level.ravel().copy()
    ready_at = np.full(memory.shape, np.iinfo(np.int64).min, dtype=np.int64)
    columns = []
    for k in range(1, len(times_us)):
        t0, t1 = int(times_us[k - 1]), int(times_us[k])
        previous, level = level, np.asarray(log_intensity(k), dtype=np.float64)
        delta = level.ravel() - memory
        fired = (delta > on_thr) | (delta < -off_thr)
        fired &= ready_at <= t1
        idx = np.flatnonzero(fired)
        if idx.size == 0:
            continue
        on = delta[idx] > 0
        cross = memory[idx] + np.where(on, on_thr[idx], -off_thr[idx])
        memory[idx] = cross
        before, after = previous.ravel()[idx], level.ravel()[idx]
        # a crossing the pixel was already past at t0 (held back by refractoriness or the one-event-per-step
        # limit) fires at the start of the step
        within = (before - cross) * (after - cross) < 0
        frac = np.where(within, (cross - before) / np.where(within, after - before, 1.0), 0.0)
        t = t0 + np.rint(frac * (t1 - t0)).astype(np.int64)
        t = np.maximum(t, ready_at[idx])
        ready_at[idx] = t + sensor.refractory_us
        columns.append((idx, t, on.astype(np.uint8)))
    if columns:
        idx, t, p = (np.concatenate(c) for c in zip(*columns))
    else:
        idx = t = p = np.zeros(0, dtype=np.int64)
    s, rest = np.divmod(idx, H * W)
    y, x = np.divmod(rest, W)
    order = np.lexsort((t, s))
    events = np.empty(len(order), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x[order], y[order], t[order], p[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(s, minlength=n))]).astype(np.int64)
    return events, offsets
