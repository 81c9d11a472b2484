"""CIFAR10-DVS (Li et al. 2017): 10 000 recordings, 1 000 per class, of CIFAR-10 images moved on a monitor in
front of a DVS128.

Files: `<root>/<class>/cifar10_<class>_<i>.aedat` (original AEDAT 2.0 release) or `<root>/<class>/*.aedat4`
(Tonic's AEDAT4 re-packaging), class folders named airplane ... truck. AEDAT 2.0 address: bit 0 polarity,
bits 1-7 and 8-14 the two coordinates, bit 15 jAER's special-event flag (such events are skipped, they are no
pixel events; a file of only special events is refused), a bit above 15 set: no DVS128 address, refused.
Orientation as SpikingJelly reads the original release (`x = 127 - bits 8-14`, `y = 127 - bits 1-7`,
`p = 1 - bit 0`, which shows the images upright; Tonic's `read_dvs_128` uses the same transpose without the
flips); AEDAT4 files are taken as stored (as Tonic does), and their header states the sensor size: a recording
from another sensor than the DVS128's 128x128 is refused.

Split (InfLoR-SNN, seed 001): per class, files sorted by the index `i` in their name (else by name), the first
90 % train and the last 10 % test (9000 / 1000).
"""
import re
from pathlib import Path

import numpy as np

from ...errors import InputError
from .aedat import read_aedat2, read_aedat4
from .cache import dataset_dir
from .errors import DataFormatError
from .events import make_events

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SENSOR = (128, 128, 2)
TRAIN_FRACTION = 0.9
SPECIAL_EVENT = 1 << 15


def decode_address(address: np.ndarray):
    """(x, y, p) of CIFAR10-DVS AEDAT 2.0 addresses (in the orientation above) and the mask of pixel events."""
    a = address.astype(np.int64)
    pixel = (a & SPECIAL_EVENT) == 0
    return 127 - ((a >> 8) & 0x7F), 127 - ((a >> 1) & 0x7F), 1 - (a & 1), pixel


def read_cifar10_dvs(path) -> np.ndarray:
    """Events of one CIFAR10-DVS recording (.aedat or .aedat4), time-ordered."""
    path = Path(path)
    if path.suffix == ".aedat4":
        ev = read_aedat4(path, SENSOR[:2])
        return make_events(ev["x"], ev["y"], ev["t"].astype(np.int64), ev["on"].astype(np.uint8))
    address, t = read_aedat2(path)
    if np.any(address >> 16):
        bad = int(np.flatnonzero(address >> 16)[0])
        raise DataFormatError(path, _event_offset(path, bad), f"address 0x{int(address[bad]):08x} is no DVS128 "
                                                              "address (bits above 15 set)")
    x, y, p, pixel = decode_address(address)
    if not pixel.any():
        raise DataFormatError(path, _event_offset(path, 0), f"no pixel events: all {len(address)} events are "
                                                            "special events (address bit 15)")
    return make_events(x[pixel], y[pixel], t[pixel], p[pixel])


def _event_offset(path, index: int) -> int:
    data = Path(path).read_bytes()
    pos = 0
    while data[pos:pos + 1] == b"#":
        pos = data.index(b"\n", pos) + 1
    return pos + 8 * index


def _file_index(path: Path):
    m = re.search(r"_(\d+)$", path.stem)
    return (int(m.group(1)), path.name) if m else (float("inf"), path.name)


def list_files(root, fmt=None):
    """[(path, label)] of every recording in the dataset folder, per class in index order, and the format."""
    base = dataset_dir(root, "cifar10-dvs")
    found = {}
    for suffix in ([fmt] if fmt else ["aedat", "aedat4"]):
        files = {c: sorted((base / c).glob(f"*.{suffix}"), key=_file_index) for c in CLASSES}
        if any(files.values()):
            found = files
            fmt = suffix
            break
    if not found:
        raise InputError(f"cifar10-dvs: no .aedat or .aedat4 files in class folders ({', '.join(CLASSES[:2])}, "
                        f"...) under {base}")
    return found, fmt


def load_split(split: str, root, T: int, augment, framer_opts: dict, format: str = None, **unknown):
    """The `split` of CIFAR10-DVS as an EventDataset (format 'aedat2' or 'aedat4'; default: what is there)."""
    from .datasets import EventDataset, EventFrames
    if unknown:
        raise InputError(f"cifar10-dvs: unknown option(s) {', '.join(sorted(unknown))}")
    suffix = {"aedat2": "aedat", "aedat4": "aedat4", None: None}.get(format, "?")
    if suffix == "?":
        raise InputError(f"cifar10-dvs: format must be 'aedat2' or 'aedat4', got {format!r}")
    files, _ = list_files(root, suffix)
    items, labels = [], []
    for label, c in enumerate(CLASSES):
        n_train = int(len(files[c]) * TRAIN_FRACTION)
        chosen = files[c][:n_train] if split == "train" else files[c][n_train:]
        items += chosen
        labels += [label] * len(chosen)
    return EventDataset(items, labels, read_cifar10_dvs, EventFrames(SENSOR, T, **framer_opts), augment)
