"""N-MNIST (Orchard et al. 2015): MNIST digits recorded by an ATIS moving in three saccades, 34x34 pixels.

Files: `<root>/Train/<digit>/<id>.bin` and `<root>/Test/<digit>/<id>.bin` (the dataset's own split). Each
event is 5 bytes: x (8 bits), y (8 bits), polarity (1 bit), timestamp (23 bits, us), decoded by
`tonic.io.read_mnist_file` (which also handles the timestamp-overflow marker events, y = 240) after the file
is checked here.
"""
from pathlib import Path

import numpy as np

from ...errors import InputError
from .cache import dataset_dir
from .errors import DataFormatError
from .events import make_events

SENSOR = (34, 34, 2)
OVERFLOW_Y = 240


def read_nmnist(path) -> np.ndarray:
    """Events of one N-MNIST .bin file, time-ordered."""
    from tonic.io import events_struct, read_mnist_file
    path = Path(path)
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if raw.size == 0:
        raise DataFormatError(path, 0, "empty file")
    if raw.size % 5:
        raise DataFormatError(path, raw.size // 5 * 5, f"truncated event ({raw.size % 5} of 5 bytes)")
    x, y = raw[0::5], raw[1::5]
    bad = np.flatnonzero((y != OVERFLOW_Y) & ((x >= SENSOR[1]) | (y >= SENSOR[0])))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(path, 5 * i, f"event at ({x[i]}, {y[i]}) outside the 34x34 sensor "
                                           "(not an N-MNIST file?)")
    ev = read_mnist_file(str(path), dtype=events_struct)
    return make_events(ev["x"], ev["y"], ev["t"], ev["p"].astype(np.uint8))


def load_split(split: str, root, T: int, augment, framer_opts: dict, **unknown):
    from .datasets import EventDataset, EventFrames
    if unknown:
        raise InputError(f"nmnist: unknown option(s) {', '.join(sorted(unknown))}")
    folder = dataset_dir(root, "nmnist") / ("Train" if split == "train" else "Test")
    items, labels = [], []
    for digit in range(10):
        files = sorted((folder / str(digit)).glob("*.bin"))
        items += files
        labels += [digit] * len(files)
    if not items:
        raise InputError(f"nmnist: no .bin files in {folder}/<digit>/")
    return EventDataset(items, labels, read_nmnist, EventFrames(SENSOR, T, **framer_opts), augment)
