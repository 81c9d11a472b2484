"""Where datasets and caches live, and atomic writes into them."""
import os
from pathlib import Path

import numpy as np

from ...fileio import atomic_path


def default_root() -> Path:
    """`$SNNCHIP_DATA` if set, else `~/.cache/snnchip`."""
    env = os.environ.get("SNNCHIP_DATA")
    return Path(env) if env else Path.home() / ".cache" / "snnchip"


def atomic_save_npz(path, **arrays) -> None:
    """Write an .npz next to `path` under a unique temporary name, then rename it into place, so readers never
    see a partial file and concurrent builders (e.g. two DDP processes) do not clash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def dataset_dir(root, name: str) -> Path:
    """The folder of dataset `name`: `root/name` if that exists, else `root` itself (the user pointed at the
    dataset folder directly); `root` defaults to `default_root()`."""
    base = Path(root) if root is not None else default_root()
    return base / name if (base / name).is_dir() else base
