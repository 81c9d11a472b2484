"""Spiking ResNets of seed 000 at any depth: MS-ResNet (SR-A), SR-B, SR-C, vanilla spiking ResNet and PlainNet.

Families (input `[N, C, H, W, T]`, output logits `[N, classes]` averaged over T):
- `cifar`: 3x3 stem, 3 stages of n blocks (strides 1, 2, 2), depth 6n + 2 (20/32/44/56/110/482), widths 16/32/64.
- `dvs`: as cifar with one more downsampling in the first stage (strides 2, 2, 2): CIFAR10-DVS MS-ResNet20.
- `imagenet`: 7x7 stride-2 stem, stages [2,2,2,2] / [3,4,6,3] / [3,8,32,8] for 18 / 34 / 104 (Table IX), widths
  64-512; the max-pool is replaced by a stride-2 first block in stage 1; 104 uses the average-pool shortcut.
`model_config(name, **overrides)` parses names such as `ms_resnet20`, `spiking_resnet56`, `plain20`,
`sr_b32`, `ms_resnet104`, `ms_resnet20_dvs`; `build_model(config)` builds it.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..errors import InputError
from .blocks import Block, ConvNorm, Head
from .neurons import NeuronConfig, SpikingNeuron

ARCHS = {"ms_resnet": "ms", "sr_b": "sr_b", "sr_c": "sr_c", "spiking_resnet": "vanilla", "plain": "plain"}
IMAGENET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 104: (3, 8, 32, 8)}
FAMILY_DEFAULTS = {
    "cifar": dict(widths=(16, 32, 64), in_channels=3, num_classes=10, input_size=(32, 32), T=4),
    "dvs": dict(widths=(16, 32, 64), in_channels=2, num_classes=10, input_size=(48, 48), T=10),
    "imagenet": dict(widths=(64, 128, 256, 512), in_channels=3, num_classes=1000, input_size=(224, 224), T=6),
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (stored in every checkpoint)."""
    arch: str = "ms_resnet"
    family: str = "cifar"
    depth: int = 20
    widths: tuple = (16, 32, 64)
    in_channels: int = 3
    num_classes: int = 10
    input_size: tuple = (32, 32)
    T: int = 4
    neuron: dict = field(default_factory=lambda: dataclasses.asdict(NeuronConfig()))
    norm: str = "tdbn"
    dropout: float = 0.0
    zero_init_residual: bool = True
    shortcut: str = "conv"

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        self.input_size = tuple(int(s) for s in self.input_size)
        for key in ("widths", "input_size"):
            if not getattr(self, key) or min(getattr(self, key)) < 1:
                raise InputError(f"{key} {getattr(self, key)} must be positive")
        for key in ("depth", "in_channels", "num_classes", "T"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise InputError(f"{key} {getattr(self, key)!r} must be a positive integer")
        if isinstance(self.neuron, NeuronConfig):
            self.neuron = dataclasses.asdict(self.neuron)
        if self.arch not in ARCHS:
            raise InputError(f"unknown arch {self.arch!r}; choose from {sorted(ARCHS)}")
        if self.shortcut not in ("conv", "avgpool"):
            raise InputError(f"shortcut must be 'conv' or 'avgpool', not {self.shortcut!r}")
        if len(self.input_size) != 2:
            raise InputError(f"input_size must be (H, W), got {self.input_size}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.neuron, dict):
            raise InputError(f"neuron must be a dict of NeuronConfig fields, got {type(self.neuron).__name__}")
        NeuronConfig(**self.neuron)  # validates the neuron (unknown fields: TypeError)
        self.stage_blocks()  # validates depth / family

    def stage_blocks(self) -> tuple[int, ...]:
        """Blocks per stage."""
        if self.family == "imagenet":
            if self.depth not in IMAGENET_BLOCKS:
                raise InputError(f"ImageNet depth must be one of {sorted(IMAGENET_BLOCKS)}, got {self.depth}")
            blocks = IMAGENET_BLOCKS[self.depth]
        elif self.family in ("cifar", "dvs"):
            if self.depth < 8 or (self.depth - 2) % 6:
                raise InputError(f"CIFAR-family depth must be 6n + 2 (8, 14, 20, ...), got {self.depth}")
            blocks = ((self.depth - 2) // 6,) * 3
        else:
            raise InputError(f"unknown family {self.family!r}; choose cifar, dvs or imagenet")
        if len(self.widths) != len(blocks):
            raise InputError(f"{self.family} needs {len(blocks)} stage widths, got {self.widths}")
        return blocks

    def stage_strides(self) -> tuple[int, ...]:
        return {"cifar": (1, 2, 2), "dvs": (2, 2, 2), "imagenet": (2, 2, 2, 2)}[self.family]


def model_config(name: str, **overrides) -> ModelConfig:
    """A ModelConfig by name (e.g. 'ms_resnet20', 'spiking_resnet56', 'plain20', 'ms_resnet104',
    'ms_resnet20_dvs') with fields overridden (depth, widths, T, neuron, ...)."""
    match = re.fullmatch(r"(ms_resnet|sr_b|sr_c|spiking_resnet|plain)(\d+)(_dvs)?", name)
    if not match:
        raise InputError(f"unknown model {name!r}: expected e.g. ms_resnet20, spiking_resnet20, plain20, "
                         f"sr_b20, ms_resnet104, ms_resnet20_dvs")
    arch, depth, dvs = match.group(1), int(match.group(2)), match.group(3)
    family = "dvs" if dvs else ("imagenet" if depth in IMAGENET_BLOCKS else "cifar")
    base = dict(arch=arch, family=family, depth=depth, **FAMILY_DEFAULTS[family],
                shortcut="avgpool" if family == "imagenet" and depth == 104 else "conv")
    base.update(overrides)
    if "family" in overrides and "widths" not in overrides:
        base["widths"] = FAMILY_DEFAULTS[base["family"]]["widths"]
    return ModelConfig(**base)


class SpikingResNet(nn.Module):
    """stem -> stages of blocks -> head (docs/model-contract.md). `[N, C, H, W, T] -> [N, classes]`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        neuron = NeuronConfig(**config.neuron)
        kind = ARCHS[config.arch]
        membrane_blocks = kind in ("ms", "sr_b")
        imagenet = config.family == "imagenet"
        self.stem = ConvNorm(config.in_channels, config.widths[0], 7 if imagenet else 3, 2 if imagenet else 1,
                             config.norm, neuron, spiking=not membrane_blocks)
        self.stages = nn.ModuleList()
        in_c = config.widths[0]
        for width, n, stride in zip(config.widths, config.stage_blocks(), config.stage_strides()):
            stage = nn.ModuleList()
            for b in range(n):
                stage.append(Block(kind, in_c, width, stride if b == 0 else 1, neuron, config.norm,
                                   avgpool_shortcut=config.shortcut == "avgpool",
                                   zero_init=config.zero_init_residual))
                in_c = width
            self.stages.append(stage)
        spikes_out = kind in ("vanilla", "plain")
        self.head = Head(in_c, config.num_classes, None if spikes_out else neuron, config.dropout)
        self.side_branches: Optional[nn.Module] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qat = getattr(self, "qat", None)          # quantisation-aware training (train/qat.py)
        if qat is not None and qat.unrolls:
            return qat.forward(x)
        self._check_input(x)
        y = self.stem(x)
        for stage in self.stages:
            for block in stage:
                y = block(y)
        return self.head(y)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits [N, classes], {neuron module name: spikes [N, C, H, W, T]}) for one pass."""
        spikes: dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(lambda m, i, o, name=name: spikes.__setitem__(name, o))
                 for name, module in self.named_modules()
                 if isinstance(module, SpikingNeuron) and not name.startswith("side_branches")]
        try:
            logits = self(x)
        finally:
            for h in hooks:
                h.remove()
        return logits, spikes

    def _check_input(self, x: torch.Tensor) -> None:
        c = self.config
        if x.dim() != 5 or x.shape[1] != c.in_channels:
            raise InputError(f"expected input [N, {c.in_channels}, H, W, T], got {tuple(x.shape)}")


def build_model(config: ModelConfig) -> SpikingResNet:
    return SpikingResNet(config)
