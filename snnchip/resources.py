"""What the machine can hold: memory and disk estimates checked before a large allocation or a write.

A small hostile input can ask for a huge allocation (a 193-byte .npy whose header claims 1 TiB, a NetX file with
an unwritten 100000 x 100000 dataset, `--steps 10**9`). Every such allocation is estimated first and refused in
one line (`InputError`, exit status 2) when it exceeds what the machine has, instead of dying with MemoryError or
being killed by the kernel. Writers check the free space of the target folder the same way, so that a full disk
is one line instead of a half-written file (or, with h5py, a crash).
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

GIB = 1 << 30


def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable, capped by a cgroup memory limit and RLIMIT_AS."""
    limits = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    if not limits:
        limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if text != "max":
            limits.append(int(text) - int(used))
    except (OSError, ValueError):
        pass
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return max(min(limits), 0)


def _size(nbytes: int) -> str:
    if nbytes >= GIB:
        return f"{nbytes / GIB:.2f} GiB"
    return f"{nbytes / (1 << 20):.1f} MiB"


def check_memory(nbytes: int, what: str) -> None:
    """Raise InputError (one line naming `what`) if allocating `nbytes` would exceed the available memory."""
    nbytes = int(nbytes)
    free = available_memory()
    if nbytes > free:
        raise InputError(f"{what} needs {_size(nbytes)} of memory, more than the {_size(free)} available")


def check_disk(path: str | os.PathLike, nbytes: int = 0) -> None:
    """Raise InputError (one line) if the folder of `path` has less than `nbytes` free (and at least one block);
    a writer calls it before it starts, so that a full disk is refused before anything is written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        stat = os.statvfs(folder)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    free = stat.f_bavail * stat.f_frsize
    if free <= max(int(nbytes), stat.f_frsize):
        raise InputError(f"cannot write {target}: no space left on the device ({_size(free)} free, "
                         f"{_size(max(int(nbytes), stat.f_frsize))} needed)")
