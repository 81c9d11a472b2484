"""torch Datasets of (x float32 [C, H, W, T], y int) over in-memory frames or over event files."""
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...errors import InputError
from .events import check_in_sensor, resize_events, to_frames


class FrameDataset(Dataset):
    """Frames already in memory: `frames` [N, C, H, W, T] float32, `labels` [N]."""

    def __init__(self, frames: torch.Tensor, labels: Sequence[int], augment: Optional[Callable] = None):
        if len(frames) != len(labels):
            raise InputError(f"{len(frames)} samples but {len(labels)} labels")
        self.frames = frames
        self.labels = [int(v) for v in labels]
        self.augment = augment

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.frames[i]
        if self.augment is not None:
            x = self.augment(x)
        return x, self.labels[i]


class EventFrames:
    """How events become frames: sensor `sensor_size` (H, W, P), optional resize to `size` (h, w), T frames
    split by 'number' or 'time' (over `window` (t0, t1) us, or each sample's own span), counts or `binary`."""

    def __init__(self, sensor_size, T: int, split_by: str = "number", size=None, binary: bool = False,
                 window=None):
        if split_by not in ("number", "time"):
            raise InputError(f"split_by must be 'number' or 'time', got {split_by!r}")
        if T < 1:
            raise InputError(f"T must be >= 1, got {T}")
        self.sensor_size = tuple(sensor_size)
        self.size = tuple(size) if size is not None else tuple(sensor_size[:2])
        self.T, self.split_by, self.binary, self.window = T, split_by, binary, window

    def __call__(self, events: np.ndarray) -> np.ndarray:
        H, W, P = self.sensor_size
        check_in_sensor(events, (H, W))         # before any resize, so an error names the sensor, not the frame
        if self.size != (H, W):
            events = resize_events(events, (H, W), self.size)
        return to_frames(events, (*self.size, P), self.T, self.split_by, self.window, self.binary)


class EventDataset(Dataset):
    """Event recordings read on demand: `read(item) -> events` for each of `items`, framed by `framer`.

    `events(i)` gives sample i's raw structured events (x, y, t [us], p) for feeding a simulator directly.
    """

    def __init__(self, items: Sequence, labels: Sequence[int], read: Callable, framer: EventFrames,
                 augment: Optional[Callable] = None):
        if len(items) != len(labels):
            raise InputError(f"{len(items)} samples but {len(labels)} labels")
        self.items = list(items)
        self.labels = [int(v) for v in labels]
        self.read = read
        self.framer = framer
        self.augment = augment

    def __len__(self):
        return len(self.labels)

    def events(self, i: int) -> np.ndarray:
        return self.read(self.items[i])

    def __getitem__(self, i):
        x = torch.from_numpy(self.framer(self.events(i)))
        if self.augment is not None:
            x = self.augment(x)
        return x, self.labels[i]
