"""Datasets for training and evaluation: `load_dataset(name, split, ...)` and `dataset_info(name)`.

Every dataset yields (x float32 [C, H, W, T], y int). Event datasets (C = polarities: 0 OFF, 1 ON) also give
their raw events through `dataset.events(i)` (structured x, y, t [us], p; see `events.EVENT_DTYPE`).

| name | source | sensor -> input | T | split |
|---|---|---|---|---|
| digits-dvs | embedded (scikit-learn digits, emulated DVS, saccades) | 2x16x16 | 8 | every 5th per class is test |
| cifar10-dvs | original AEDAT 2.0 release or Tonic's AEDAT4 | 2x128x128 -> 2x48x48 | 10 | per class by file index 9:1 |
| nmnist | the .bin files (Train/, Test/) | 2x34x34 | 10 | the dataset's own |
| dvs-gesture | AEDAT 3.1 + _labels.csv | 2x128x128 -> 2x32x32 | 16 | users 1-23 train, 24-29 test |
| cifar10 | the python pickle batches | 3x32x32 (image repeated) | 4 | the dataset's own |
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from ...errors import InputError
from ...resources import check_memory
from .augment import FlipRoll
from .datasets import EventDataset, EventFrames, FrameDataset
from .events import EVENT_DTYPE, make_events, to_frames
from .samples import add_dataset_arguments, iter_batches, load_samples

__all__ = ["load_dataset", "dataset_info", "augmentation", "DatasetInfo", "EVENT_DTYPE", "make_events", "to_frames",
           "EventDataset", "EventFrames", "FrameDataset", "FlipRoll", "NAMES", "iter_batches", "load_samples",
           "add_dataset_arguments"]


@dataclass(frozen=True)
class DatasetInfo:
    """Defaults of a dataset: input channels, classes, input size (H, W) after any resize, time steps T;
    `sensor_size` (H, W, P) of the recording for event data (None for images); `flip`/`roll` = the
    augmentation `augment=True` applies (a horizontal flip would swap classes of digits and gestures)."""
    in_channels: int
    num_classes: int
    input_size: Tuple[int, int]
    T: int
    sensor_size: Optional[Tuple[int, int, int]] = None
    split_by: str = "number"
    binary: bool = False
    flip: float = 0.0
    roll: int = 0


_INFO = {
    "digits-dvs": DatasetInfo(2, 10, (16, 16), 8, (16, 16, 2), "time", True, 0.0, 2),
    "cifar10-dvs": DatasetInfo(2, 10, (48, 48), 10, (128, 128, 2), "number", False, 0.5, 5),
    "nmnist": DatasetInfo(2, 10, (34, 34), 10, (34, 34, 2), "number", False, 0.0, 2),
    "dvs-gesture": DatasetInfo(2, 11, (32, 32), 16, (128, 128, 2), "number", False, 0.0, 3),
    "cifar10": DatasetInfo(3, 10, (32, 32), 4, None, "number", False, 0.5, 4),
}
NAMES = tuple(_INFO)


def dataset_info(name: str) -> DatasetInfo:
    """Defaults of dataset `name` (one of NAMES)."""
    if name not in _INFO:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    return _INFO[name]


def augmentation(name: str, flip: Optional[float] = None, roll: Optional[int] = None) -> Optional[FlipRoll]:
    """Dataset `name`'s training augmentation (`DatasetInfo.flip`, `.roll` unless given); None if it has none."""
    info = dataset_info(name)
    flip, roll = info.flip if flip is None else flip, info.roll if roll is None else roll
    return FlipRoll(flip, roll) if flip > 0 or roll > 0 else None


def sample_bytes(name: str, T: int, size: Optional[Tuple[int, int]] = None) -> int:
    """Bytes of one float64 sample `[C, H, W, T]` of dataset `name` (at the larger of its sensor and input size):
    what loading a sample at least allocates, estimated before it is."""
    info = dataset_info(name)
    h, w = size or info.input_size
    if info.sensor_size is not None:
        h, w = max(h, info.sensor_size[0]), max(w, info.sensor_size[1])
    return info.in_channels * int(h) * int(w) * int(T) * 8


def load_dataset(name: str, split: str = "train", root=None, T: Optional[int] = None, augment: bool = False,
                 **opts):
    """Dataset `name`'s `split` ('train' or 'test') as a torch Dataset of (x [C, H, W, T] float32, y int).

    root: the folder holding the dataset's files (or, for digits-dvs, its cache); default `$SNNCHIP_DATA`
    or `~/.cache/snnchip`, each dataset in a sub-folder of its name. T: time steps (default: the dataset's).
    augment: the dataset's training augmentation (`DatasetInfo.flip`, `.roll`).
    opts (event data): binary (0/1 frames), split_by ('number' | 'time'), size ((h, w) resize), flip, roll;
    digits-dvs: seed (sensor mismatch); cifar10-dvs: format ('aedat2' | 'aedat4', default: what is there).
    """
    info = dataset_info(name)
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    T = info.T if T is None else int(T)
    if T < 1:
        raise InputError(f"T must be >= 1, got {T}")
    check_memory(sample_bytes(name, T, opts.get("size")), f"one sample of '{name}' with T = {T}")
    aug = augmentation(name, opts.pop("flip", None), opts.pop("roll", None)) if augment else None
    if name == "cifar10":
        from .cifar10 import load_cifar10
        return load_cifar10(split, root, T, aug, **opts)
    framer_opts = dict(split_by=opts.pop("split_by", info.split_by), binary=opts.pop("binary", info.binary),
                       size=opts.pop("size", info.input_size))
    if name == "digits-dvs":
        from .digits_dvs import load_split
        return load_split(split, root, T, aug, framer_opts, **opts)
    if name == "cifar10-dvs":
        from .cifar10_dvs import load_split
    elif name == "nmnist":
        from .nmnist import load_split
    else:
        from .gesture import load_split
    return load_split(split, root, T, aug, framer_opts, **opts)
