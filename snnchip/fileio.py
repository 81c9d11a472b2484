"""Writing files so that a reader never sees half of one: every output of snnchip goes through `atomic_path`.

The data goes to a temporary file in the target's folder, which replaces the target (`os.replace`, atomic on
POSIX) only once it is complete and flushed to disk (fsync); on any failure the temporary file is removed and the
target is untouched. The file gets the usual permissions (0666 minus the umask), not mkstemp's private 0600. The target folder's free
space is checked against the expected size before anything is written. HDF5 files are built in memory and written
with `write_bytes`, because HDF5 crashes on a disk that fills up under it.
OS errors (a missing or read-only folder, a full disk, a directory in the way) become one-line InputErrors.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import InputError
from .resources import check_disk, check_memory

TEMP_SUFFIX = ".snnchip-tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, size: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an exception it replaces `path`.
    `size`: the bytes the writer expects to write, refused up front (one line) if the folder has less free."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: folder {folder} does not exist")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a directory")
    if not os.access(folder, os.W_OK):
        raise InputError(f"cannot write {target}: folder {folder} is not writable")
    check_disk(target, size)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        _settle(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except MemoryError:
        raise InputError(f"cannot write {target}: out of memory") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _settle(tmp: str) -> None:
    """Give the finished temporary file normal permissions and flush it to disk."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically. Writers of libraries that die badly on a failing disk (h5py: HDF5 prints
    its error stack and may crash on ENOSPC / EFBIG) build the file in memory and hand it over here, where a full
    disk is a Python OSError, hence one line and no temporary file left."""
    with atomic_path(path, size=len(data)) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> None:
    """Write `obj` as JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_npy(path: str | os.PathLike, array) -> None:
    """`np.save` to `path` atomically."""
    import numpy as np
    with atomic_path(path, size=np.asarray(array).nbytes) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def load_npy(path: str | os.PathLike, what: str = "the array"):
    """`np.load` of a .npy file (never a pickle), its header checked first: a file shorter than the array its header
    declares, or an array larger than the free memory, is refused in one line (InputError) before any allocation."""
    import numpy as np
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(handle) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(handle))
            offset = handle.tell()
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({' '.join(str(exc).split())[:160]})") from None
    if dtype.hasobject:
        raise InputError(f"{path}: {what} holds Python objects (a pickle); only numeric arrays are read")
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    have = path.stat().st_size - offset
    if nbytes > have:
        raise InputError(f"{path}: truncated .npy file: its header declares {what} of shape {shape} ({dtype}, "
                         f"{nbytes} bytes), the file holds {have}")
    check_memory(nbytes, f"{path}: {what} of shape {shape}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({' '.join(str(exc).split())[:160]})") from None


def load_named_json(spec: str, folder: Path, what: str, noun: str) -> tuple[Any, Path]:
    """(parsed JSON, its path) of a data file given as a built-in name (`folder/<spec>.json`) or a path: the chip
    descriptions and energy models. InputError (one line) naming `what` and the built-in `noun`s otherwise."""
    path = Path(spec)
    if not path.suffix and (folder / f"{spec}.json").is_file():
        path = folder / f"{spec}.json"
    if not path.is_file():
        builtin = ", ".join(sorted(p.stem for p in folder.glob("*.json")))
        raise InputError(f"{what} '{spec}': no such file and no built-in {noun} of that name (built-in: {builtin})")
    try:
        return json.loads(path.read_text()), path
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} {path}: not readable JSON ({exc})") from None
