"""Models of every kind build, run forward and backward, and have the papers' sizes."""
import time

import pytest
import torch

from snnchip.train.models import build_model, model_config


def fwd_bwd(model, size, T, batch=2):
    c = model.config
    x = (torch.rand(batch, c.in_channels, *size, T) > 0.7).float()
    logits, spikes = model.forward_all(x)
    logits.sum().backward()
    return logits, spikes


@pytest.mark.parametrize("name", ["ms_resnet20", "sr_b20", "sr_c20", "spiking_resnet20", "plain20"])
def test_cifar_family_forward_backward(name):
    torch.manual_seed(0)
    model = build_model(model_config(name, T=3, input_size=(16, 16)))
    logits, spikes = fwd_bwd(model, (16, 16), 3)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert all(set(s.unique().tolist()) <= {0.0, 1.0} for s in spikes.values())
    assert model.stem.conv.weight.grad is not None and model.stem.conv.weight.grad.abs().sum() > 0


def test_depths_follow_6n_plus_2():
    for depth, n in [(8, 1), (20, 3), (56, 9), (110, 18), (482, 80)]:
        cfg = model_config("ms_resnet20", depth=depth)
        assert cfg.stage_blocks() == (n, n, n)
    with pytest.raises(ValueError, match="6n"):
        model_config("ms_resnet21")


def test_cifar10_dvs_ms_resnet20_has_about_027m_parameters():
    model = build_model(model_config("ms_resnet20_dvs"))
    params = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < params < 0.28e6  # seed 000 Table IV: 0.27 M
    assert model.config.stage_strides() == (2, 2, 2)
    logits, _ = fwd_bwd(model, (48, 48), 2, batch=1)
    assert logits.shape == (1, 10)


@pytest.mark.parametrize("depth, blocks", [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3)), (104, (3, 8, 32, 8))])
def test_imagenet_family(depth, blocks):
    cfg = model_config(f"ms_resnet{depth}", input_size=(64, 64), T=2, num_classes=5)
    assert cfg.family == "imagenet" and cfg.stage_blocks() == blocks
    model = build_model(cfg)
    assert model.stem.conv.kernel_size == (7, 7) and model.stem.conv.stride == (2, 2)
    if depth == 104:
        sc = model.stages[1][0].shortcut
        assert sc.pool is not None and sc.conv.stride == (1, 1)
    logits, _ = fwd_bwd(model, (64, 64), 2, batch=1)
    assert logits.shape == (1, 5)


def test_zero_init_of_second_norm_only():
    model = build_model(model_config("ms_resnet20"))
    block = model.stages[0][0]
    assert torch.all(block.norm2.weight == 0) and torch.all(block.norm1.weight == 1)


def test_tdbn_scales_by_alpha_vth_and_folds():
    model = build_model(model_config("ms_resnet20", T=2, input_size=(8, 8)))
    norm = model.stem.norm
    x = torch.randn(4, 16, 8, 8, 2)
    for _ in range(3):
        norm(x)
    norm.eval()
    scale, shift = norm.affine_eval()
    torch.testing.assert_close(norm(x), x * scale[None, :, None, None, None] + shift[None, :, None, None, None])
    norm.train()
    y = norm(x)
    torch.testing.assert_close(y.std(dim=(0, 2, 3, 4), unbiased=False), torch.full((16,), 0.5), atol=1e-3,
                               rtol=1e-3)  # alpha * V_th = 0.5


def test_ms_resnet482_forward_backward_32x32_T2():
    torch.manual_seed(0)
    model = build_model(model_config("ms_resnet482", T=2))
    start = time.time()
    logits, _ = fwd_bwd(model, (32, 32), 2, batch=1)
    assert torch.isfinite(logits).all()
    assert model.stages[0][0].conv1.weight.grad is not None
    print(f"MS-ResNet482 forward+backward: {time.time() - start:.1f} s")


def test_wrong_input_shape_is_one_line_error():
    model = build_model(model_config("ms_resnet20"))
    with pytest.raises(ValueError, match=r"expected input \[N, 3, H, W, T\]"):
        model(torch.rand(1, 2, 32, 32, 4))
