"""N-MNIST (Orchard et al. 2015): MNIST digits recorded by an ATIS moving in three saccades, 34x34 pixels.

Files: `<root>/Train/<digit>/<id>.bin` and `<root>/Test/<digit>/<id>.bin` (the dataset's own split). Each
event is 5 bytes: x (byte 0), y (byte 1), then a big-endian 24-bit word holding the polarity (its top bit) and
the timestamp (its low 23 bits, us). An event with y = 240 is a timestamp-overflow marker, no pixel event: each
marker adds 2^13 us to its own and every later timestamp, exactly as Tonic's `read_mnist_file` (adapted from
the dataset authors' eventvision.py) does. The sensor is 34x34: a pixel event outside it, a truncated event,
or a file without a pixel event is refused.
"""
from pathlib import Path

import numpy as np

from ...errors import InputError
from .cache import dataset_dir
from .errors import DataFormatError
from .events import make_events

SENSOR = (34, 34, 2)
OVERFLOW_Y = 240
OVERFLOW_US = 1 << 13


def read_nmnist(path) -> np.ndarray:
    """Events of one N-MNIST .bin file, time-ordered."""
    path = Path(path)
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if raw.size == 0:
        raise DataFormatError(path, 0, "empty file")
    if raw.size % 5:
        raise DataFormatError(path, raw.size // 5 * 5, f"truncated event ({raw.size % 5} of 5 bytes)")
    rec = raw.reshape(-1, 5).astype(np.int64)
    x, y = rec[:, 0], rec[:, 1]
    marker = y == OVERFLOW_Y
    bad = np.flatnonzero(~marker & ((x >= SENSOR[1]) | (y >= SENSOR[0])))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(path, 5 * i, f"event at ({x[i]}, {y[i]}) outside the 34x34 sensor "
                                           "(not an N-MNIST file?)")
    if marker.all():
        raise DataFormatError(path, 0, f"no pixel events (all {len(rec)} events are timestamp-overflow markers)")
    p = rec[:, 2] >> 7
    t = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    t += OVERFLOW_US * np.cumsum(marker)            # markers at or before each event
    pixel = ~marker
    return make_events(x[pixel], y[pixel], t[pixel], p[pixel].astype(np.uint8))


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
