"""Training metrics: running averages, per-layer firing rates and result tables."""
import torch


class Average:
    """Sample-weighted running mean of a scalar (loss, accuracy)."""

    def __init__(self):
        self.total = 0.0
        self.count = 0

    def update(self, value: float, n: int) -> None:
        self.total += float(value) * n
        self.count += n

    @property
    def value(self) -> float:
        return self.total / max(self.count, 1)


def correct_count(logits: torch.Tensor, target: torch.Tensor) -> int:
    """Number of samples whose arg-max class in `logits` [N, classes] equals `target` [N]."""
    return int((logits.argmax(dim=1) == target).sum())


class FiringRates:
    """Per-layer firing rate r = #spikes / (#neurons * T), accumulated over batches.

    `update` takes the spike dictionary of `model.forward_all` (name -> spikes `[N, ..., T]`).
    Sums are kept as float64 totals so that distributed ranks can add theirs (`as_tensor`/`from_tensor`).
    """

    def __init__(self):
        self.spikes = {}
        self.slots = {}

    def update(self, spikes: dict) -> None:
        for name, s in spikes.items():
            self.spikes[name] = self.spikes.get(name, 0.0) + float(s.detach().double().sum())
            self.slots[name] = self.slots.get(name, 0) + s.numel()

    def rates(self) -> dict:
        """Layer name -> firing rate in [0, 1], in the order the layers were first seen."""
        return {name: self.spikes[name] / self.slots[name] for name in self.spikes if self.slots[name]}

    def mean_rate(self) -> float:
        """Network firing rate: all spikes over all neuron-steps."""
        slots = sum(self.slots.values())
        return sum(self.spikes.values()) / slots if slots else 0.0

    def as_tensor(self) -> torch.Tensor:
        """`[2, L]` float64 (spikes, slots) in layer order, for an all-reduce."""
        names = list(self.spikes)
        return torch.tensor([[self.spikes[n] for n in names], [float(self.slots[n]) for n in names]],
                            dtype=torch.float64)

    def load_tensor(self, t: torch.Tensor) -> None:
        """Replace the totals by `t` (from `as_tensor`, after an all-reduce), same layer order."""
        for i, name in enumerate(list(self.spikes)):
            self.spikes[name] = float(t[0, i])
            self.slots[name] = int(round(float(t[1, i])))


def markdown_table(title: str, columns: list, rows: dict, fmt=lambda v: f"{100 * v:.1f}") -> str:
    """A Markdown table: one row per key of `rows` (label -> {column: value}), missing cells as 'N/A'."""
    lines = [f"### {title}", "", "| | " + " | ".join(str(c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for label, cells in rows.items():
        lines.append(f"| {label} | " + " | ".join(fmt(cells[c]) if cells.get(c) is not None else "N/A"
                                                  for c in columns) + " |")
    return "\n".join(lines) + "\n"
