"""`digits-dvs`: scikit-learn's 8x8 handwritten digits (1797 samples, shipped with scikit-learn) recorded by an
emulated DVS that watches each digit move in three saccades, the way N-MNIST was recorded from MNIST.

Recording: the digit (white on a dark screen, intensity 0.05 .. 1) is upsampled bilinearly by `SCALE` onto a
16x16 sensor and moved along an isosceles triangle of three saccades (100 ms each, cosine velocity profile),
sampled every 500 us; `dvs_emulator` turns the log intensity into ON/OFF events (threshold 0.25 +- 0.03
mismatch per pixel, 1 ms refractory period). Everything derives from `seed` (only the mismatch is random).

Split (deterministic, per class): in each class, samples are taken in scikit-learn's order and every fifth
(positions 4, 9, 14, ... within the class) is a test sample: 1442 train / 355 test.

The recording is built once (a few seconds) and cached as an .npz under `root` (default
`~/.cache/snnchip/digits-dvs`), written atomically; a cache that cannot be read is rebuilt.
"""
import hashlib
import json
from pathlib import Path

import numpy as np

from .cache import atomic_save_npz, default_root
from .dvs_emulator import DVSSensor, emulate

VERSION = 2
SENSOR = DVSSensor(height=16, width=16)
SCALE = 1.5                     # 8x8 digit -> 12x12 pixels on the sensor
SACCADE_US = 100_000
STEP_US = 500
AMPLITUDE = 2.0                 # saccade triangle side, sensor pixels
BACKGROUND, FOREGROUND = 0.05, 1.0
DURATION_US = 3 * SACCADE_US
TEST_EVERY = 5


def saccade_path(times_us: np.ndarray) -> np.ndarray:
    """Digit offset (dy, dx) in sensor pixels at each time [K, 2]: three saccades around a triangle centred
    on the sensor, each with a cosine (smooth start and stop) velocity profile."""
    a = AMPLITUDE
    corners = np.array([[-a / 2, -a / 2], [a / 2, 0.0], [-a / 2, a / 2], [-a / 2, -a / 2]])
    corners -= corners[:3].mean(axis=0)
    which = np.minimum(times_us // SACCADE_US, 2).astype(int)
    s = (times_us - which * SACCADE_US) / SACCADE_US
    ease = (1 - np.cos(np.pi * s)) / 2
    return corners[which] + (corners[which + 1] - corners[which]) * ease[:, None]


def _interpolation(n_out: int, n_in: int, centre: float) -> np.ndarray:
    """Bilinear weights [n_out, n_in + 2] from a padded row (or column) of n_in digit pixels to n_out sensor
    pixels, the digit's middle at sensor coordinate `centre`."""
    src = (np.arange(n_out) - centre) / SCALE + (n_in - 1) / 2 + 1      # +1: the zero padding
    src = np.clip(src, 0, n_in + 1)
    lo = np.minimum(np.floor(src).astype(int), n_in)
    frac = src - lo
    weights = np.zeros((n_out, n_in + 2))
    weights[np.arange(n_out), lo] = 1 - frac
    weights[np.arange(n_out), lo + 1] += frac
    return weights


def pad(images: np.ndarray) -> np.ndarray:
    """Digits [N, 8, 8] (0..1) with a one-pixel border of background, [N, 10, 10], as `render` reads them."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2))
    padded[:, 1:-1, 1:-1] = images
    return padded


def render(padded: np.ndarray, offset) -> np.ndarray:
    """Intensity seen by the sensor [N, H, W] of padded digits [N, 10, 10] (see `pad`) shifted by `offset`
    (dy, dx) pixels: the upsampled digit sampled bilinearly (separable: rows, then columns), background
    outside it."""
    _, hp, wp = padded.shape
    rows = _interpolation(SENSOR.height, hp - 2, (SENSOR.height - 1) / 2 + offset[0])    # [H, hp]
    cols = _interpolation(SENSOR.width, wp - 2, (SENSOR.width - 1) / 2 + offset[1])      # [W, wp]
    return BACKGROUND + (FOREGROUND - BACKGROUND) * (rows @ padded @ cols.T)


def record(images: np.ndarray, seed: int):
    """Events of digits [N, 8, 8] (0..1): (events, offsets) as `dvs_emulator.emulate`."""
    times = np.arange(0, DURATION_US + 1, STEP_US, dtype=np.int64)
    path = saccade_path(times)
    padded = pad(images)
    return emulate(SENSOR, lambda k: np.log(render(padded, path[k])), times, seed)


def split_mask(labels: np.ndarray) -> np.ndarray:
    """True for test samples: every TEST_EVERY-th sample of each class, in the order given."""
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test[idx[TEST_EVERY - 1::TEST_EVERY]] = True
    return test


def _params(seed: int) -> dict:
    return dict(version=VERSION, seed=seed, sensor=[SENSOR.height, SENSOR.width, SENSOR.threshold,
                SENSOR.threshold_sigma, SENSOR.refractory_us], scale=SCALE, saccade_us=SACCADE_US,
                step_us=STEP_US, amplitude=AMPLITUDE, intensity=[BACKGROUND, FOREGROUND])


def cache_path(root, seed: int) -> Path:
    key = hashlib.sha256(json.dumps(_params(seed), sort_keys=True).encode()).hexdigest()[:12]
    return Path(root if root is not None else default_root()) / "digits-dvs" / f"digits-dvs-{key}.npz"


def build(seed: int = 0):
    """Record all 1797 digits: dict with events, offsets, labels [1797], test mask [1797], params JSON."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = digits.images / 16.0
    labels = digits.target.astype(np.int64)
    events, offsets = record(images, seed)
    return dict(events=events, offsets=offsets, labels=labels, test=split_mask(labels),
                params=np.array(json.dumps(_params(seed), sort_keys=True)))


def load(root=None, seed: int = 0):
    """The recording (as `build`), from the cache or built and cached."""
    path = cache_path(root, seed)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in ("events", "offsets", "labels", "test", "params")}
            if str(data["params"]) == json.dumps(_params(seed), sort_keys=True) and data["offsets"][-1] == len(
                    data["events"]) and data["events"].dtype.names == ("x", "y", "t", "p"):
                return data
        except Exception:   # any unreadable cache (truncated zip, missing key, foreign file) is rebuilt
            pass
    data = build(seed)
    atomic_save_npz(path, **data)
    return data


def load_split(split: str, root, T: int, augment, framer_opts: dict, seed: int = 0, **unknown):
    """The `split` of digits-dvs as an EventDataset (frames split by time over the whole 300 ms recording,
    so frame t covers the same part of the saccades in every sample)."""
    from ...errors import InputError
    from .datasets import EventDataset, EventFrames
    if unknown:
        raise InputError(f"digits-dvs: unknown option(s) {', '.join(sorted(unknown))}")
    data = load(root, seed)
    events, offsets = data["events"], data["offsets"]
    index = np.flatnonzero(data["test"] == (split == "test"))
    sensor = (SENSOR.height, SENSOR.width, 2)
    framer = EventFrames(sensor, T, window=(0, DURATION_US + 1), **framer_opts)
    return EventDataset([(int(offsets[i]), int(offsets[i + 1])) for i in index], data["labels"][index],
                        _Slice(events), framer, augment)


class _Slice:
    """events[start:end] of one recording (a class, not a lambda, so DataLoader workers can pickle it)."""

    def __init__(self, events: np.ndarray):
        self.events = events

    def __call__(self, span) -> np.ndarray:
        return self.events[span[0]:span[1]]
