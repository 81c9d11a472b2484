"""CIFAR-10 from the python batches (`data_batch_1` .. `data_batch_5`, `test_batch` in
`<root>/cifar-10-batches-py/` or `<root>/`).

The batches are pickles of plain dicts (bytes keys; `data` a uint8 ndarray [n, 3072] of R, G, B planes,
`labels` a list of ints). They are read with a restricted Unpickler that resolves only the globals numpy
needs to rebuild an ndarray (and `_codecs.encode`, with which Python 3 pickles bytes at protocol 2), so a
file cannot run code. Images are normalised per channel and repeated over T (direct encoding: the stem
convolution is the encoding layer).
"""
import pickle
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from .cache import dataset_dir
from .errors import DataFormatError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def read_batch(path):
    """(images uint8 [n, 3, 32, 32], labels int64 [n]) of one CIFAR-10 python batch."""
    path = Path(path)
    with open(path, "rb") as f:
        if not f.read(1):
            raise DataFormatError(path, 0, "empty file")
        f.seek(0)
        try:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        except Exception as exc:    # pickle raises many kinds (UnpicklingError, EOFError, ValueError, ...)
            raise DataFormatError(path, f.tell(), f"not a readable CIFAR-10 batch ({type(exc).__name__}: "
                                                  f"{str(exc).splitlines()[0] if str(exc) else 'truncated'})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFormatError(path, 0, "pickle is not a CIFAR-10 batch dict (no b'data' / b'labels')")
    data = batch[b"data"]
    try:
        labels = np.asarray(batch[b"labels"])
    except (ValueError, TypeError):          # ragged or otherwise not an array
        labels = np.asarray(None)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(path, 0, f"b'data' must be uint8 [n, 3072], got {getattr(data, 'dtype', type(data))}"
                                       f" {getattr(data, 'shape', '')}")
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),) or labels.size and (labels.min() < 0 or
                                                                                        labels.max() > 9):
        raise DataFormatError(path, 0, f"b'labels' must be {len(data)} classes 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(split: str, root, T: int, augment, **unknown):
    from .datasets import FrameDataset
    if unknown:
        raise InputError(f"cifar10: unknown option(s) {', '.join(sorted(unknown))}")
    base = dataset_dir(root, "cifar10")
    if (base / "cifar-10-batches-py").is_dir():
        base = base / "cifar-10-batches-py"
    names = TRAIN_FILES if split == "train" else TEST_FILES
    missing = [n for n in names if not (base / n).exists()]
    if missing:
        raise InputError(f"cifar10: {', '.join(missing)} not found in {base}")
    images, labels = zip(*(read_batch(base / n) for n in names))
    x = torch.from_numpy(np.concatenate(images)).float().div_(255)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    frames = x.unsqueeze(-1).expand(-1, -1, -1, -1, T)       # [N, 3, 32, 32, T], a view: no T copies
    return FrameDataset(frames, np.concatenate(labels), augment)
