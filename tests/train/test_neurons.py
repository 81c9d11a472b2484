"""Neurons against hand-computed values from the seeds, the fused BPTT against autograd, MPR invariance."""
import pytest
import torch

from snnchip.train.neurons import NeuronConfig, SpikingNeuron, neuron_config, reference_step_by_step
from snnchip.train.surrogate import SURROGATES, mpr


def run(cfg, values):
    return SpikingNeuron(cfg)(torch.tensor(values, dtype=torch.float64).reshape(1, 1, -1))[0, 0].tolist()


def test_lif_matches_seed000_eq_1_2_by_hand():
    # u[t] = 0.25 u[t-1] (1 - o[t-1]) + I[t], fire when u > 0.5:
    # I = 0.4 -> u 0.4 (no); 0.4 -> 0.1 + 0.4 = 0.5 (no, strict >); 0.4 -> 0.125 + 0.4 = 0.525 (fire);
    # 0.3 -> 0 + 0.3 (no); 0.45 -> 0.075 + 0.45 = 0.525 (fire); 0.6 -> 0.6 (fire)
    assert run(neuron_config("lif"), [0.4, 0.4, 0.4, 0.3, 0.45, 0.6]) == [0, 0, 1, 0, 1, 1]


def test_srif_and_hard_if_on_seed001_fig2_example():
    inputs = [x * 0.5 for x in (1.5, 1.2, 1.5, 0.9, 1.4)]
    srif = run(neuron_config("srif"), inputs)
    hard_if = run(neuron_config("if"), inputs)
    assert sum(srif) == 3 and srif == [1, 0, 1, 1, 0]
    assert sum(hard_if) == 4 and hard_if == [1, 1, 1, 0, 1]


def test_reset_none_keeps_integrating():
    assert run(neuron_config("if", reset="none"), [0.3, 0.3, 0.0, -1.0]) == [0, 1, 1, 0]


@pytest.mark.parametrize("preset", ["lif", "if", "srif"])
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("use_mpr", [False, True])
def test_fused_bptt_equals_stepwise_autograd(preset, surrogate, use_mpr):
    torch.manual_seed(1)
    cfg = neuron_config(preset, surrogate=surrogate, mpr=use_mpr)
    x = (torch.randn(3, 4, 2, 2, 7, dtype=torch.float64) * 0.5 + 0.3).requires_grad_()
    grad_out = torch.randn(3, 4, 2, 2, 7, dtype=torch.float64)
    fused = SpikingNeuron(cfg)(x)
    (g_fused,) = torch.autograd.grad((fused * grad_out).sum(), x)
    ref = reference_step_by_step(x, cfg)
    (g_ref,) = torch.autograd.grad((ref * grad_out).sum(), x)
    assert torch.equal(fused, ref)
    assert fused.sum() > 0 and (g_ref != 0).any()
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-12, atol=1e-12)


def test_mpr_is_firing_invariant_but_changes_gradients():
    torch.manual_seed(0)
    x = (torch.randn(8, 16, 10, dtype=torch.float64) * 0.8 + 0.3).requires_grad_()
    plain = SpikingNeuron(neuron_config("lif"))(x)
    (g_plain,) = torch.autograd.grad(plain.sum(), x)
    rect = SpikingNeuron(neuron_config("lif", mpr=True))(x)
    (g_mpr,) = torch.autograd.grad(rect.sum(), x)
    assert torch.equal(plain, rect)
    assert not torch.allclose(g_plain, g_mpr)


def test_mpr_shape():
    u = torch.tensor([-1.0, 0.0, 0.5, 1.0, 8.0], dtype=torch.float64)
    torch.testing.assert_close(mpr(u), torch.tensor([1 - 2 ** (1 / 3), 0.0, 0.5, 1.0, 2.0], dtype=torch.float64))
    dense = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    assert torch.all(torch.diff(mpr(dense)) > 0)
    assert torch.equal(mpr(dense) > 0.5, dense > 0.5)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="reset"):
        NeuronConfig(reset="partial")
    with pytest.raises(ValueError, match="surrogate"):
        NeuronConfig(surrogate="erf")
    with pytest.raises(ValueError, match="MPR"):
        NeuronConfig(threshold=1.0, mpr=True)
