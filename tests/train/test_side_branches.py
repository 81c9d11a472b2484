"""Shortcut back-propagation (seed 002): side branches from blocks / stages, the loss on
o_final = b_n + lambda(i) sum_l b_l, the evolutionary lambda, and checkpoints without side branches."""
import pytest
import torch

from snnchip.train import side_branches as sb
from snnchip.train.checkpoint import load_model
from snnchip.train.models import build_model, model_config

from .test_trainer import DATA, INFO, tiny

SHAPE = dict(in_channels=2, num_classes=3, input_size=(8, 8), T=2, widths=(4, 8, 8))


def tiny_model(depth, **kw):
    torch.manual_seed(0)
    return build_model(model_config("ms_resnet20", depth=depth, **SHAPE, **kw))


def test_taps_every_block_or_stage_but_the_last():
    model = tiny_model(14)  # 2 blocks per stage
    assert [n for n, _ in sb.tapped_blocks(model, "block")] == \
        ["stages.0.0", "stages.0.1", "stages.1.0", "stages.1.1", "stages.2.0"]
    assert [n for n, _ in sb.tapped_blocks(model, "stage")] == ["stages.0.1", "stages.1.1"]


def test_side_outputs_are_pool_and_fc_of_the_block_outputs():
    model = tiny_model(8)
    branches = sb.attach_side_branches(model, "block", num_classes=3)
    seen = {}
    for name, block in sb.tapped_blocks(model, "block"):
        block.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.detach()))
    x = (torch.rand(4, 2, 8, 8, 2) > 0.5).float()
    model.train()
    model(x)
    side = branches.pop_logits()
    assert len(side) == 2 and all(s.shape == (4, 3) for s in side)
    for s, name, fc in zip(side, branches.names, branches.fcs):
        torch.testing.assert_close(s, fc(seen[name].mean(dim=(2, 3, 4))))
    model.eval()
    model(x)
    with pytest.raises(RuntimeError, match="train mode"):
        branches.pop_logits()


def test_side_branches_carry_gradient_to_the_first_block_directly():
    # With the main output cut off, only the side branch from block 0 can reach block 0's weights. (The
    # second BN's gamma starts at 1 here: with the paper's zero init the residual path gets no gradient yet.)
    model = tiny_model(8, zero_init_residual=False)
    branches = sb.attach_side_branches(model, "block", num_classes=3)
    model.train()
    main = model((torch.rand(4, 2, 8, 8, 2) > 0.5).float())
    side = branches.pop_logits()
    o_final = sb.combine(main.detach(), side, 0.25)
    torch.nn.functional.cross_entropy(o_final, torch.tensor([0, 1, 2, 0])).backward()
    for first in (model.stem.conv.weight, model.stages[0][0].conv1.weight):
        assert first.grad is not None and first.grad.abs().sum() > 0
    assert model.head.fc.weight.grad is None


def test_combine_and_the_evolutionary_coefficient():
    main, side = torch.ones(2, 3), [torch.full((2, 3), 2.0), torch.full((2, 3), 4.0)]
    torch.testing.assert_close(sb.combine(main, side, 0.25), torch.full((2, 3), 2.5))
    torch.testing.assert_close(sb.combine(main, [], 0.25), main)
    assert sb.balance_coefficient(0, 100, 0.25, evolutionary=True) == 0.25
    assert sb.balance_coefficient(50, 100, 0.25, evolutionary=True) == 0.125
    assert sb.balance_coefficient(99, 100, 0.25, evolutionary=True) == pytest.approx(0.0025)
    assert sb.balance_coefficient(50, 100, 1.0, evolutionary=False) == 1.0


def test_trained_checkpoints_hold_no_side_branches(tmp_path):
    from snnchip.train.trainer import Trainer
    trainer = Trainer(tiny(tmp_path, shortcut_bp="stage", evolutionary=True, epochs=1), progress=False,
                      datasets=DATA, info=INFO)
    summary = trainer.run()
    assert summary["epochs"][0]["shortcut_lambda_last"] < 0.25
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(tmp_path / "run" / name, weights_only=True)
        assert not [k for k in ckpt["state_dict"] if "side" in k]
        model = load_model(tmp_path / "run" / name)
        assert getattr(model, "side_branches", None) is None
    # The training state keeps them, so that --resume continues with the same branches.
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_state"]["side_branches"]
    assert set(state) == {"fcs.0.weight", "fcs.0.bias", "fcs.1.weight", "fcs.1.bias"}
    assert trainer.model.side_branches is not None
