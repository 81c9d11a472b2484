"""Layers share slayer's weight layout and pre_hook_fx: weights move to lava-dl's synapses and give the same
currents; neurons report the device parameters slayer's CUBA neuron reports."""
import pytest
import torch
import torch.nn.functional as F

from snnchip.train.layers import Conv, Dense
from snnchip.train.neurons import SpikingNeuron, neuron_config
from snnchip.train.slayer_compat import cuba_params


def on_grid(weight):  # slayer's 8-bit weight grid at scale 2^6, so quantisation hooks act alike
    return torch.randn_like(weight).mul(64).round().clamp(-128, 127) / 64


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=1, padding=1),
                                dict(kernel_size=(3, 5), stride=2, padding=(1, 2), dilation=1),
                                dict(kernel_size=3, stride=1, padding=2, dilation=2, groups=2)])
def test_conv_equals_slayer_synapse_conv(kw):
    from lava.lib.dl import slayer
    torch.manual_seed(0)
    ours = Conv(4, 6, **kw)
    theirs = slayer.synapse.Conv(4, 6, **kw)
    assert ours.weight.shape == theirs.weight.shape
    with torch.no_grad():
        ours.weight.copy_(on_grid(ours.weight))
        theirs.weight.copy_(ours.weight)
    x = (torch.rand(2, 4, 9, 11, 5) > 0.6).float()
    assert torch.equal(ours(x), theirs(x))


def test_dense_equals_slayer_synapse_dense_on_flat_and_spatial_input():
    from lava.lib.dl import slayer
    torch.manual_seed(0)
    ours = Dense(24, 7, bias=False)
    theirs = slayer.synapse.Dense(24, 7)
    assert ours.weight.shape == theirs.weight.shape
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    x = torch.rand(3, 24, 6)
    torch.testing.assert_close(ours(x), theirs(x))
    # [N, C, H, W, T] is flattened in slayer's (C, H, W) order, as its Flatten block
    spatial = torch.rand(3, 6, 2, 2, 6)
    torch.testing.assert_close(ours(spatial), theirs(spatial.reshape(3, 24, 6)))


def test_pre_hook_fx_quantises_like_slayer():
    from lava.lib.dl import slayer
    torch.manual_seed(1)
    hook = slayer.utils.quantize_hook_fx
    ours = Conv(3, 5, 3, 1, 1, pre_hook_fx=hook)
    theirs = slayer.synapse.Conv(3, 5, 3, padding=1, pre_hook_fx=hook)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    x = torch.rand(2, 3, 6, 6, 4)
    y = ours(x)
    assert torch.equal(y, theirs(x))
    plain = F.conv3d(x, ours.weight, None, 1, (1, 1, 0))
    assert not torch.allclose(y, plain)  # the hook did act on the weights
    y.sum().backward()
    assert ours.weight.grad is not None and ours.weight.grad.abs().sum() > 0  # straight-through


def test_conv3d_equals_time_folded_conv2d():
    """The two ways of applying a 2D conv at every step (benchmarks/train_throughput.py times them)."""
    torch.manual_seed(2)
    conv = Conv(4, 8, 3, 2, 1)
    x = torch.rand(2, 4, 10, 10, 5)
    folded = F.conv2d(x.permute(0, 4, 1, 2, 3).reshape(10, 4, 10, 10), conv.weight[..., 0], None, 2, 1)
    folded = folded.reshape(2, 5, 8, 5, 5).permute(0, 2, 3, 4, 1)
    torch.testing.assert_close(conv(x), folded)


@pytest.mark.parametrize("preset, threshold", [("lif", 0.5), ("if", 0.5), ("lif", 1.25)])
def test_device_params_equal_slayer_cuba_neurons(preset, threshold):
    from lava.lib.dl import slayer
    neuron = SpikingNeuron(neuron_config(preset, threshold=threshold))
    reference = slayer.neuron.cuba.Neuron(**cuba_params(neuron.config)).device_params
    assert neuron.device_params == {k: (v.item() if hasattr(v, "item") else v) for k, v in reference.items()}


def test_soft_reset_has_no_cuba_device_params():
    with pytest.raises(ValueError, match="resets hard to 0"):
        SpikingNeuron(neuron_config("srif")).device_params
