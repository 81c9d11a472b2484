"""Where datasets and caches live, and atomic writes into them."""
import os
import tempfile
from pathlib import Path

import numpy as np


def default_root() -> Path:
    """`$SNNCHIP_DATA` if set, else `~/.cache/snnchip`."""
    env = os.environ.get("SNNCHIP_DATA")
    return Path(env) if env else Path.home() / ".cache" / "snnchip"


def atomic_save_npz(path, **arrays) -> None:
    """Write an .npz next to `path` under a unique temporary name, then rename it into place, so readers never
    see a partial file and concurrent builders (e.g. two DDP processes) do not clash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def dataset_dir(root, name: str) -> Path:
    """The folder of dataset `name`: `root/name` if that exists, else `root` itself (the user pointed at the
    dataset folder directly); `root` defaults to `default_root()`."""
    base = Path(root) if root is not None else default_root()
    return base / name if (base / name).is_dir() else base
