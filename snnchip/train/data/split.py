"""The validation split that `snn-train` holds out of a dataset's training files for model selection.

Per class (stratified), a seeded permutation of that class's training samples puts the first
`round(fraction * n_class)` into validation and the rest into training. The permutation uses its own generator
(`SPLIT_SEED`, independent of the training seed), so every run on a dataset, whatever its `--seed`, selects on
the same validation samples; the test split is never touched.
"""
from typing import Sequence, Tuple

import torch

from ...errors import InputError

SPLIT_SEED = 0


def dataset_labels(dataset) -> list:
    """The integer label of every sample of `dataset`: its `labels` attribute (snnchip's datasets), the last
    tensor of a TensorDataset, or else each sample's second element."""
    labels = getattr(dataset, "labels", None)
    if labels is None and hasattr(dataset, "tensors"):
        labels = dataset.tensors[-1]
    if labels is None:
        labels = [dataset[i][1] for i in range(len(dataset))]
    return [int(v) for v in labels]


def validation_split(labels: Sequence[int], fraction: float, seed: int = SPLIT_SEED) -> Tuple[list, list]:
    """(training indices, validation indices), each ascending, of samples with these `labels`;
    `fraction` in (0, 1) (checked by `trainer.resolve`)."""
    labels = torch.as_tensor(list(labels), dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    val, orders = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        order = members[torch.randperm(len(members), generator=generator)].tolist()
        val += order[:int(round(fraction * len(members)))]
        orders.append(order)
    if not val and len(labels) > 1:     # so few samples per class that none rounds up: one of the largest class
        val = max(orders, key=len)[:1]
    val = sorted(val)
    if not val or len(val) == len(labels):
        raise InputError(f"--val-fraction {fraction} leaves {len(val)} of {len(labels)} training samples for "
                         f"validation; it must leave at least one sample on each side")
    held = set(val)
    return [i for i in range(len(labels)) if i not in held], val
