"""snn-train from the command line: --help, one-line errors, and short real trainings on digits-dvs."""
import json
import subprocess
import sys

import pytest
import torch

from snnchip.train.checkpoint import load_model
from snnchip.train.cli import build_parser, config_from_args, main

SMALL = ["--dataset", "digits-dvs", "--depth", "8", "--width", "4", "--T", "2", "--epochs", "1",
         "--batch-size", "64", "--device", "cpu", "--no-progress"]


def test_help_lists_the_options():
    done = subprocess.run([sys.executable, "-m", "snnchip.train.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for option in ("--dataset", "--data-root", "--model", "--depth", "--width", "--T", "--neuron", "--norm",
                   "--epochs", "--batch-size", "--lr", "--momentum", "--weight-decay", "--schedule",
                   "--milestones", "--label-smoothing", "--dropout", "--amp", "--device", "--seed", "--out",
                   "--resume", "--init-from", "--shortcut-bp", "--evolutionary", "--json"):
        assert option in done.stdout, option
    # flags and unset options show no misleading default; no option names its default twice
    text = " ".join(done.stdout.split())
    for wrong in ("(default: True)", "(default: False)", "(default: None)", "(default: the dataset's) (default"):
        assert wrong not in text, wrong
    assert "--lr-gamma LR_GAMMA multistep factor (default: 0.1)" in text


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--schedule", "multistep"], "needs --milestones"),
    (["--evolutionary"], "needs --shortcut-bp"),
    (["--model", "no_such_net"], "--model 'no_such_net'"),
    (["--model", "ms_resnet21"], "--model 'ms_resnet21': CIFAR-family depth must be 6n + 2"),
    (["--depth", "9"], "--depth 9: CIFAR-family depth must be 6n + 2"),
    (["--qat", "--weight-bits", "0"], "2..8"),
    (["--qat", "--weight-bits", "9"], "2..8"),
    (["--weight-bits", "4"], "need --qat"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--batch-size", "0"], ""),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["--out", str(tmp_path)] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_resume_and_init_from_name_the_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(SMALL + ["--out", str(tmp_path), "--resume", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert main(SMALL + ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "last.pt" in capsys.readouterr().err
    assert main(SMALL + ["--out", str(tmp_path), "--init-from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and err.count("\n") == 1


@pytest.mark.parametrize("model", ["ms_resnet20", "spiking_resnet20"])
def test_trains_on_digits_dvs(tmp_path, capsys, model):
    out = tmp_path / model
    assert main(SMALL + ["--model", model, "--out", str(out), "--json", "--shortcut-bp", "block"]) == 0
    summary = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert summary["test_acc"] == metrics["test_acc"] and 0 <= metrics["test_acc"] <= 1
    epoch = metrics["epochs"][0]
    assert 0 <= epoch["val_acc"] <= 1 and epoch["train_loss"] > 0 and epoch["firing_rates"]
    assert metrics["model_config"]["T"] == 2 and metrics["epochs_done"] == 1
    net = load_model(out / "best.pt")
    assert getattr(net, "side_branches", None) is None


@pytest.mark.parametrize("args,depth", [
    ([], 8),                                           # the digits-dvs recipe: its model at its depth
    (["--model", "ms_resnet56"], 56),                  # an explicit model brings its own depth
    (["--model", "spiking_resnet20"], 20),
    (["--model", "ms_resnet56", "--depth", "14"], 14),  # --depth overrides both
    (["--depth", "14"], 14),
])
def test_explicit_model_and_depth_win_over_the_recipe(args, depth):
    from snnchip.train.data import dataset_info
    from snnchip.train.trainer import model_config_for, resolve
    cfg = resolve(config_from_args(build_parser().parse_args(args)))
    assert model_config_for(cfg, dataset_info("digits-dvs")).depth == depth


def test_mpr_and_surrogate_options():
    from snnchip.train.data import dataset_info
    from snnchip.train.trainer import model_config_for, resolve
    args = build_parser().parse_args(["--mpr", "--surrogate", "triangle", "--surrogate-width", "2"])
    neuron = model_config_for(resolve(config_from_args(args)), dataset_info("digits-dvs")).neuron
    assert (neuron["mpr"], neuron["surrogate"], neuron["surrogate_width"]) == (True, "triangle", 2.0)
