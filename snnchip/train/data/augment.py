"""Training augmentation on frames [C, H, W, T]: the same random flip and roll for every time step."""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FlipRoll:
    """Horizontal flip with probability `flip` and a circular shift (torch.roll) by dy, dx drawn uniformly from
    -roll..roll pixels, as in InfLoR-SNN's CIFAR10-DVS recipe. Draws from torch's global generator, so a
    seeded run (and each seeded DataLoader worker) repeats."""
    flip: float = 0.5
    roll: int = 5

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip > 0 and torch.rand(()) < self.flip:
            x = x.flip(2)
        if self.roll > 0:
            dy, dx = torch.randint(-self.roll, self.roll + 1, (2,)).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
        return x
