"""DVS128 Gesture (Amir et al. 2017): 29 users, 11 gestures, recorded with a DVS128 in AEDAT 3.1.

Files: `<root>/user<NN>_<lighting>.aedat` with `<root>/user<NN>_<lighting>_labels.csv` (header
`class,startTime_usec,endTime_usec`, classes 1..11). One sample per CSV row: the file's events with
start <= t < end, label = class - 1. Split as the dataset's trials_to_train/test lists: users 1-23 train,
24-29 test. Polarity event layout as SpikingJelly reads it: x = bits 17-31, y = bits 2-16, p = bit 1.

A recording with no valid polarity event, or with events outside the 128x128 sensor, is refused. A label window
holding no event is kept (all-zero frames, so the split keeps the dataset's published sample counts) and said
in one `DataWarning` line naming the file, the class and the window, once per window: a user training on the
whole dataset loses one sample, not the run, and sees which labels file disagrees with its recording.
"""
import csv
import functools
import re
from pathlib import Path

import numpy as np

from ...errors import InputError
from .aedat import read_aedat31_polarity
from .cache import dataset_dir
from .errors import DataFormatError, warn_once
from .events import make_events

SENSOR = (128, 128, 2)
NUM_CLASSES = 11
TRAIN_USERS = range(1, 24)
TEST_USERS = range(24, 30)


@functools.lru_cache(maxsize=2)
def read_gesture_file(path) -> np.ndarray:
    """All polarity events of one recording, time-ordered (the last two files read stay cached: consecutive
    samples come from the same recording when the loader does not shuffle)."""
    x, y, t, p = read_aedat31_polarity(path)
    if len(x) and (x.max() >= SENSOR[1] or y.max() >= SENSOR[0]):
        raise DataFormatError(path, 0, f"events outside the 128x128 sensor (x up to {x.max()}, y up to {y.max()})")
    return make_events(x, y, t, p)


def read_labels(path):
    """[(label 0..10, start us, end us)] of a `_labels.csv` file."""
    path = Path(path)
    text = path.read_bytes()
    if not text.strip():
        raise DataFormatError(path, 0, "empty file")
    rows, offset = [], 0
    for n, line in enumerate(text.decode("utf-8", "replace").splitlines(keepends=True)):
        fields = next(csv.reader([line])) if line.strip() else []
        if n == 0:
            if [f.strip() for f in fields] != ["class", "startTime_usec", "endTime_usec"]:
                raise DataFormatError(path, 0, f"header {line.strip()!r} is not "
                                               "'class,startTime_usec,endTime_usec'")
        elif fields:
            try:
                label, start, end = (int(f) for f in fields)
            except ValueError:
                raise DataFormatError(path, offset, f"row {line.strip()!r} is not three integers") from None
            if not 1 <= label <= NUM_CLASSES or end <= start:
                raise DataFormatError(path, offset, f"row {line.strip()!r}: class must be 1..{NUM_CLASSES} "
                                                    "and end > start")
            rows.append((label - 1, start, end))
        offset += len(line.encode())
    return rows


def _user(path: Path) -> int:
    m = re.match(r"user(\d+)_", path.name)
    return int(m.group(1)) if m else -1


def _segment(item) -> np.ndarray:
    """Events of one label window: item = (path, start us, end us, label 0..10)."""
    path, start, end, label = item
    events = read_gesture_file(path)
    lo, hi = np.searchsorted(events["t"], [start, end])
    if lo == hi:
        warn_once(("gesture-empty", path, start, end), f"{path}: no events in the label window of class "
                  f"{label + 1} ({start} <= t < {end} us; the recording spans {events['t'][0]}.."
                  f"{events['t'][-1]} us): an all-zero sample")
    return events[lo:hi]


def load_split(split: str, root, T: int, augment, framer_opts: dict, **unknown):
    from .datasets import EventDataset, EventFrames
    if unknown:
        raise InputError(f"dvs-gesture: unknown option(s) {', '.join(sorted(unknown))}")
    folder = dataset_dir(root, "dvs-gesture")
    users = TRAIN_USERS if split == "train" else TEST_USERS
    items, labels = [], []
    for path in sorted(folder.glob("user*_*.aedat"), key=lambda p: (_user(p), p.name)):
        if _user(path) not in users:
            continue
        csv_path = path.with_name(path.stem + "_labels.csv")
        if not csv_path.exists():
            raise InputError(f"dvs-gesture: {path} has no labels file {csv_path.name}")
        for label, start, end in read_labels(csv_path):
            items.append((str(path), start, end, label))
            labels.append(label)
    if not items:
        raise InputError(f"dvs-gesture: no user<NN>_*.aedat recordings of users {users.start}-{users.stop - 1} "
                        f"in {folder}")
    return EventDataset(items, labels, _segment, EventFrames(SENSOR, T, **framer_opts), augment)
