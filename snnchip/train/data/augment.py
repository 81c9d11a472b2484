"""Training augmentation on frames [C, H, W, T]: the same random flip and roll for every time step."""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class FlipRoll:
    """Horizontal flip with probability `flip` and a circular shift (torch.roll) by dy, dx drawn uniformly from
    -roll..roll pixels, as in InfLoR-SNN's CIFAR10-DVS recipe. Draws from `generator` (default: torch's global
    one)."""
    flip: float = 0.5
    roll: int = 5

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.flip > 0 and torch.rand((), generator=generator) < self.flip:
            x = x.flip(2)
        if self.roll > 0:
            dy, dx = torch.randint(-self.roll, self.roll + 1, (2,), generator=generator).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
        return x


class EpochSeeded(Dataset):
    """(augment(x, generator), y) for each (x, y) of `dataset`, the generator seeded by (seed, epoch, index)
    alone: sample i of an epoch is augmented the same whichever DataLoader worker (or none) reads it, so results
    do not depend on `--workers`. Set `epoch` before each epoch (workers copy the dataset when an epoch starts)."""

    def __init__(self, dataset, augment: FlipRoll, seed: int):
        self.dataset, self.augment, self.seed = dataset, augment, seed
        self.epoch = 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        x, y = self.dataset[i]
        state = np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0]
        return self.augment(x, torch.Generator().manual_seed(int(state))), y
