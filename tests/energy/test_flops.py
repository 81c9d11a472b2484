"""Parameters and ANN FLOPs of the real architectures: seed 000's Table V / IV numbers and fvcore on the
equivalent plain torch ANN."""
import json

import torch
import torch.nn as nn

from snnchip.energy.cli import main
from snnchip.energy.flops import flops_summary, synaptic_layers
from snnchip.train.models import build_model, model_config


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv2d_like(conv) -> nn.Conv2d:
    w = conv.weight
    return nn.Conv2d(w.shape[1] * conv.groups, w.shape[0], tuple(w.shape[2:4]), stride=_pair(conv.stride),
                     padding=_pair(conv.padding), dilation=_pair(getattr(conv, "dilation", 1)), groups=conv.groups,
                     bias=True)


class AnnMSResNet(nn.Module):
    """The MS-ResNet's ANN twin (docs/model-contract.md block semantics): ReLU for LIF, BN folded into conv bias."""

    def __init__(self, model):
        super().__init__()
        self.stem = conv2d_like(model.stem.conv)
        self.blocks = nn.ModuleList()
        for stage in model.stages:
            for block in stage:
                assert block.kind == "ms"
                b = nn.Module()
                b.conv1, b.conv2 = conv2d_like(block.conv1), conv2d_like(block.conv2)
                b.shortcut = None
                if block.shortcut is not None:
                    assert block.shortcut.pool is None
                    b.shortcut = conv2d_like(block.shortcut.conv)
                self.blocks.append(b)
        fc = model.head.fc.weight
        self.fc = nn.Linear(fc.shape[1], fc.shape[0])

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            r = b.conv2(torch.relu(b.conv1(torch.relu(x))))
            x = r + (x if b.shortcut is None else b.shortcut(x))
        x = torch.relu(x).mean(dim=(2, 3))
        return self.fc(x)


def test_full_flops_agree_with_fvcore_on_equivalent_ann():
    from fvcore.nn import FlopCountAnalysis
    model = build_model(model_config("ms_resnet20"))
    shape = (int(model.config.in_channels), *model.config.input_size)
    ours = flops_summary(model, shape, 1)
    ann = AnnMSResNet(model).eval()
    analysis = FlopCountAnalysis(ann, torch.zeros(1, *shape))
    analysis.unsupported_ops_warnings(False)
    ops = analysis.by_operator()
    assert ours["ann_flops_per_frame"]["full"] == ops["conv"] + ops["linear"]
    per_module = analysis.by_module()
    layers = synaptic_layers(model, shape)
    convs = [l for l in layers if l.kind == "conv"]
    ann_convs = [m for m in ann.modules() if isinstance(m, nn.Conv2d)]
    assert sorted(l.ann_flops for l in convs) == sorted(per_module[n] for n, m in ann.named_modules()
                                                         if isinstance(m, nn.Conv2d))
    assert len(convs) == len(ann_convs)


def test_ms_resnet34_table_v_flops_within_one_percent(capsys):
    assert main(["--arch", "ms_resnet34", "--input-shape", "3,224,224", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    paper = out["ann_flops_per_frame"]["paper"]
    assert abs(paper - 3.53e9) / 3.53e9 < 0.01, paper
    assert out["ann_flops_per_frame"]["full"] > paper  # encoding layer and shortcut convs on top


def test_cifar10_dvs_ms_resnet20_has_about_027m_parameters():
    config = model_config("ms_resnet20_dvs")
    model = build_model(config)
    summary = flops_summary(model, (2, 48, 48), int(config.T))
    assert abs(summary["params"] - 0.27e6) / 0.27e6 < 0.03, summary["params"]
