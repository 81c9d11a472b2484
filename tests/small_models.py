"""Small trained-looking models for tests: random weights plus random norm statistics, so every layer spikes."""
import torch

from snnchip.train.models import build_model, model_config
from snnchip.train.norm import TdBN


def small_ms_resnet(seed: int = 0):
    """A digits-dvs-shaped MS-ResNet8 (widths 4, 8, 8; 2x16x16 input, T = 8, 10 classes)."""
    torch.manual_seed(seed)
    model = build_model(model_config("ms_resnet8", widths=(4, 8, 8), in_channels=2, input_size=(16, 16), T=8,
                                     num_classes=10))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, TdBN):
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.05 + 0.02)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model
