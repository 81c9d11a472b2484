"""The samples of a dataset split as tensors: what snn-export, snn-sim, snn-deploy and snn-energy feed a network,
and the command-line options that select them (`add_dataset_arguments`).

`iter_batches(name, split, ...)` yields (x float64 `[B, C, H, W, T]`, y int64 `[B]`) over the first `count`
samples, without augmentation (so every tool sees the same data); `load_samples` stacks them all. Loading errors
(a missing folder, a foreign file) become one-line InputErrors naming the dataset.
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterator, Optional

import torch

from ...errors import InputError


def _open(name: str, split: str, root, T: Optional[int]):
    from . import load_dataset
    try:
        return load_dataset(name, split, root=root, T=T)
    except InputError:
        raise
    except (KeyError, ValueError, FileNotFoundError, OSError) as exc:
        raise InputError(f"cannot load dataset '{name}' ({split}): {' '.join(str(exc).split())}") from None


def iter_batches(name: str, split: str, *, root=None, T: Optional[int] = None, count: Optional[int] = None,
                 batch_size: int = 32, progress: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches (x float64 `[B, *shape, T]`, y int64 `[B]`) of the split's first `count` samples (all if None);
    a tqdm bar on stderr with `progress`. InputError if there is no sample."""
    from tqdm import tqdm
    data = _open(name, split, root, T)
    total = len(data) if count is None else min(int(count), len(data))
    if total < 1:
        raise InputError(f"dataset '{name}' ({split}) has no samples")
    with tqdm(total=total, desc=f"{name} {split}", unit="sample", file=sys.stderr, leave=False,
              disable=not progress) as bar:
        for start in range(0, total, batch_size):
            items = [data[i] for i in range(start, min(start + batch_size, total))]
            x = torch.stack([torch.as_tensor(item[0], dtype=torch.float64) for item in items])
            y = torch.tensor([int(item[1]) for item in items], dtype=torch.int64)
            bar.update(len(items))
            yield x, y


def load_samples(name: str, split: str, *, root=None, T: Optional[int] = None, count: Optional[int] = None,
                 progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """All of `iter_batches`' samples at once: (x float64 `[N, *shape, T]`, y int64 `[N]`)."""
    from ...resources import check_memory
    from . import NAMES, sample_bytes
    if count is not None and T is not None and int(T) >= 1 and name in NAMES:
        check_memory(2 * int(count) * sample_bytes(name, int(T)), f"{count} samples of '{name}' with T = {T}")
    batches = list(iter_batches(name, split, root=root, T=T, count=count, batch_size=256, progress=progress))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def add_dataset_arguments(parser: argparse.ArgumentParser, *, required: bool = False, split: bool = False,
                          samples: Optional[int] = None, samples_help: str = "samples to use") -> None:
    """The dataset options every console script shares: --dataset, --data-root (and --split, --samples N)."""
    from . import NAMES
    parser.add_argument("--dataset", required=required, metavar="NAME", help=f"dataset: {', '.join(NAMES)}")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset's files (default: $SNNCHIP_DATA/<name> or "
                             "~/.cache/snnchip/<name>; digits-dvs is built there)")
    if split:
        parser.add_argument("--split", default="test", choices=("train", "test"), help="dataset split")
    if samples is not None:
        parser.add_argument("--samples", type=int, default=samples, metavar="N",
                            help=f"{samples_help} (default {samples})")
