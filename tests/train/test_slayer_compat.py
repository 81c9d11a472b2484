"""A sequential network of CUBA-compatible blocks goes through slayer's own export and loads in stock netx."""
import h5py
import numpy as np
import pytest
import torch

from snnchip.train.layers import Conv, Dense, RecurrentDense
from snnchip.train.neurons import SpikingNeuron, neuron_config
from snnchip.train.slayer_compat import SequentialSNN, export_netx, run_slayer, to_slayer


def make_net(preset):
    torch.manual_seed(0)
    cfg = neuron_config(preset)
    net = SequentialSNN([(Conv(2, 4, 3, 2, 1), SpikingNeuron(cfg)), (Conv(4, 8, 3, 1, 1), SpikingNeuron(cfg)),
                         (Dense(8 * 4 * 4, 5, bias=False), SpikingNeuron(cfg))])
    with torch.no_grad():  # put the weights on slayer's 8-bit grid (steps of 1/32)
        for synapse in net.synapses:
            synapse.weight.copy_((synapse.weight * 2 * 32).round().clamp(-128, 127) / 32)
    return net


def test_slayer_blocks_give_identical_spikes():
    net = make_net("if")
    x = (torch.rand(3, 2, 8, 8, 12) > 0.5).float()
    ours, theirs = net(x), run_slayer(to_slayer(net), x)
    assert ours.sum() > 0
    assert torch.equal(ours, theirs)


def test_export_through_slayer_loads_in_stock_netx(tmp_path):
    from lava.lib.dl import netx
    path = export_netx(make_net("lif"), (2, 8, 8), tmp_path / "seq.net")
    with h5py.File(path) as f:
        types = [np.asarray(f["layer"][k]["type"][()]).reshape(-1)[0] for k in sorted(f["layer"], key=int)]
        assert [t.decode() if isinstance(t, bytes) else str(t) for t in types] == ["conv", "conv", "flatten", "dense"]
        vdecay = f["layer"]["0"]["neuron"]["vDecay"][()]
    assert vdecay == 3072  # 0.75 of 4096 lost per step: tau_mem = 0.25 kept
    net = netx.hdf5.Network(net_config=str(path), input_shape=(8, 8, 2))
    assert [type(layer).__name__ for layer in net.layers] == ["Conv", "Conv", "Dense"]
    assert net.layers[-1].neuron.s_out.shape == (5,)


def test_soft_reset_is_not_cuba():
    with pytest.raises(ValueError, match="hard reset"):
        SequentialSNN([(Dense(4, 2, bias=False), SpikingNeuron(neuron_config("srif")))])


def test_recurrent_dense_matches_slayer_and_exports_as_dense_rec(tmp_path):
    torch.manual_seed(2)
    cfg = neuron_config("if")
    rec = RecurrentDense(16, 6, SpikingNeuron(cfg))
    with torch.no_grad():
        rec.weight.copy_((rec.weight * 64).round() / 32)
        rec.rec_weight.copy_((torch.randn_like(rec.rec_weight) * 8).round().clamp(-128, 127) / 32)
    net = SequentialSNN([rec])
    x = (torch.rand(4, 16, 15) > 0.5).float()
    ours = net(x)
    assert ours.sum() > 0
    # the lateral input matters: without it the spikes differ
    with torch.no_grad():
        plain = SpikingNeuron(cfg)(rec.ff(x))
    assert not torch.equal(ours, plain)
    assert torch.equal(ours, run_slayer(to_slayer(net), x))
    path = export_netx(net, (16,), tmp_path / "rec.net")
    with h5py.File(path) as f:
        assert np.asarray(f["layer"]["0"]["type"][()]).reshape(-1)[0] in (b"dense_rec", "dense_rec")
        assert "weight_rec" in f["layer"]["0"]
