"""Shortcut back-propagation (seed 002, "Take A Shortcut Back"): training-only side branches.

Each tapped block (or stage) output `[N, C, H, W, T]` gets a global average pool over H, W (and T) and an FC,
giving a side output b_l `[N, classes]`. Training uses one cross-entropy on
    o_final = b_n + lambda(i) * sum_l b_l                          (eq. 6 with lambda = 1, eq. 10)
where b_n is the main head's output and the sum runs over the side branches (l < n). The evolutionary
schedule (eq. 10) decays lambda(i) = lambda0 * (1 - i / I) over the training iterations, lambda0 = 0.25;
without it, eq. 6 sums all branches with equal weight (lambda = 1).

The branches live in `model.side_branches`; `detached(model)` removes them while the inference checkpoint
is written, so exported and saved models never contain them.
"""
import contextlib

import torch
from torch import nn

from ..errors import InputError

MODES = ("none", "block", "stage")
EVOLUTIONARY_LAMBDA0 = 0.25


def tapped_blocks(model, mode: str) -> list:
    """(name, block) pairs whose outputs feed side branches: every block (`'block'`) or the last block of every
    stage (`'stage'`), except the final one, whose output is the main branch b_n."""
    if mode not in ("block", "stage"):
        raise InputError(f"shortcut back-propagation mode must be 'block' or 'stage', got {mode!r}")
    taps = []
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            if mode == "block" or b == len(stage) - 1:
                taps.append((f"stages.{s}.{b}", block))
    return taps[:-1]


def _out_channels(block) -> int:
    # Every block kind ends its residual path in conv2 (docs/model-contract.md), so conv2 sets the width.
    return int(block.conv2.weight.shape[0])


class SideBranches(nn.Module):
    """Global-average-pool + FC heads on tapped block outputs; records those outputs only while training."""

    def __init__(self, model, mode: str, num_classes: int):
        super().__init__()
        taps = tapped_blocks(model, mode)
        if not taps:
            raise InputError(f"the model has no {mode} before its last one to attach a side branch to")
        self.mode = mode
        self.names = [name for name, _ in taps]
        self.fcs = nn.ModuleList(nn.Linear(_out_channels(block), num_classes) for _, block in taps)
        self._features = {}
        self._hooks = [block.register_forward_hook(self._recorder(name)) for name, block in taps]

    def _recorder(self, name):
        def hook(module, inputs, output):
            if self.training:
                self._features[name] = output
        return hook

    def pop_logits(self) -> list:
        """Side outputs b_l `[N, classes]` for the features recorded by the last forward pass, then forget them."""
        missing = [n for n in self.names if n not in self._features]
        if missing:
            raise RuntimeError(f"no recorded output for side branch(es) {missing}: run the model in train mode first")
        logits = [fc(self._features[name].mean(dim=tuple(range(2, self._features[name].dim()))))
                  for name, fc in zip(self.names, self.fcs)]
        self._features.clear()
        return logits

    def remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


def attach_side_branches(model, mode: str, num_classes: int):
    """Give `model` training-only side branches (`model.side_branches`); `mode` 'none' leaves it without."""
    if mode not in MODES:
        raise InputError(f"shortcut back-propagation mode must be one of {MODES}, got {mode!r}")
    old = getattr(model, "side_branches", None)
    if old is not None:
        old.remove_hooks()
    model.side_branches = None if mode == "none" else SideBranches(model, mode, num_classes)
    return model.side_branches


def balance_coefficient(iteration: int, total: int, lambda0: float, evolutionary: bool) -> float:
    """lambda(i): lambda0 * (1 - i / I) with the evolutionary schedule (eq. 10), else the constant lambda0."""
    if not evolutionary:
        return lambda0
    return lambda0 * (1.0 - iteration / total)


def combine(main: torch.Tensor, side: list, lam: float) -> torch.Tensor:
    """o_final = b_n + lambda * sum_l b_l, all `[N, classes]`."""
    if not side:
        return main
    return main + lam * torch.stack(side).sum(dim=0)


@contextlib.contextmanager
def detached(model):
    """Temporarily remove `model.side_branches` (e.g. while writing the inference checkpoint)."""
    branches = getattr(model, "side_branches", None)
    model.side_branches = None
    try:
        yield model
    finally:
        model.side_branches = branches
