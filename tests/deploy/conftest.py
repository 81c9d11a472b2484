"""A digits-dvs MS-ResNet exported the way snn-export does it (lower -> pipeline -> quantize -> write_netx)."""
import pytest
import torch

from snnchip.export.lower import lower
from snnchip.formats.netx import write_netx
from snnchip.export.quantize import quantize
from snnchip.export.timing import pipeline
from snnchip.train.data import load_dataset
from snnchip.train.models import build_model, model_config
from snnchip.train.norm import TdBN


def random_ms_resnet(name: str, seed: int = 0, **overrides):
    """An untrained MS-ResNet with random norm statistics, so that every layer spikes."""
    torch.manual_seed(seed)
    model = build_model(model_config(name, **overrides))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, TdBN):
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.05 + 0.02)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.double().eval()


def export_netx(model, calibration: torch.Tensor, path) -> None:
    """snn-export's Loihi path: binary input, pipelined timing, calibrated quantisation, NetX HDF5."""
    graph = pipeline(lower(model, input_kind="binary"))
    graph.meta["T"] = int(model.config.T)
    fixed, _ = quantize(graph, calibration=calibration)
    write_netx(fixed, str(path))


@pytest.fixture(scope="session")
def digits_net(tmp_path_factory):
    """Path of a small digits-dvs MS-ResNet-8 (widths 4, 8, 8; 2x16x16 input; T = 8) as a NetX file."""
    model = random_ms_resnet("ms_resnet8", widths=(4, 8, 8), in_channels=2, input_size=(16, 16), T=8,
                             num_classes=10)
    data = load_dataset("digits-dvs", "train", T=8)
    calib = torch.stack([torch.as_tensor(data[i][0], dtype=torch.float64) for i in range(8)])
    path = tmp_path_factory.mktemp("digits") / "ms_resnet8.net"
    export_netx(model, (calib > 0).double(), path)
    return path
