"""The training loop: exact resumption, repeatability, schedules, metrics JSON, checkpoints, T=1 -> T init."""
import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

from snnchip.errors import InputError
from snnchip.train.checkpoint import load_model
from snnchip.fileio import write_json
from snnchip.train.data.split import validation_split
from snnchip.train.metrics import FiringRates
from snnchip.train.trainer import TrainConfig, Trainer, resolve

INFO = SimpleNamespace(in_channels=2, num_classes=3, input_size=(8, 8), T=2)


def synthetic(n, seed, T=2):
    """Three classes of sparse event frames `[2, 8, 8, T]`, each class brighter in its own band of rows."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    rate = torch.full((n, 2, 8, 8, T), 0.1)
    for c in range(3):
        rate[y == c, :, 2 * c:2 * c + 3] = 0.6
    return TensorDataset((torch.rand(rate.shape, generator=g) < rate).float(), y)


DATA = (synthetic(48, 0), synthetic(24, 1))


def tiny(tmp_path, name="run", **kw):
    base = dict(dataset="digits-dvs", model="ms_resnet20", depth=8, width=4, T=2, epochs=2, batch_size=16,
                lr=0.1, dropout=0.2, device="cpu", seed=0, out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def run(cfg, stop_after=None):
    return Trainer(cfg, progress=False, datasets=DATA, info=INFO).run(stop_after=stop_after)


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_reaches_exactly_the_uninterrupted_result(tmp_path):
    # Shortcut BP with the evolutionary lambda, dropout and momentum: every piece of state must be restored.
    extra = dict(shortcut_bp="block", evolutionary=True)
    full = run(tiny(tmp_path, "full", **extra))
    run(tiny(tmp_path, "cut", **extra), stop_after=1)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs_done"] == 1
    resumed = run(tiny(tmp_path, "cut", resume=str(tmp_path / "cut" / "last.pt"), **extra))
    assert_same_weights(weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "cut" / "last.pt"))
    drop = ("epoch_time_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in full["epochs"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in resumed["epochs"]]


def test_resume_refuses_a_changed_recipe(tmp_path):
    run(tiny(tmp_path, "a"), stop_after=1)
    with pytest.raises(InputError, match="lr=0.1.*lr=0.05"):
        run(tiny(tmp_path, "a", lr=0.05, resume=str(tmp_path / "a" / "last.pt")))


def test_seed_makes_runs_repeatable(tmp_path):
    run(tiny(tmp_path, "a", epochs=1))
    run(tiny(tmp_path, "b", epochs=1))
    run(tiny(tmp_path, "c", epochs=1, seed=1))
    assert_same_weights(weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt"))
    a, c = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "c" / "last.pt")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_metrics_json_and_checkpoints(tmp_path):
    summary = run(tiny(tmp_path, epochs=3, schedule="multistep", milestones=(1, 2), lr_gamma=0.1))
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(summary))
    lrs = [r["lr"] for r in metrics["epochs"]]
    assert lrs == pytest.approx([0.1, 0.01, 0.001])
    for r in metrics["epochs"]:
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s", "firing_rate"):
            assert math.isfinite(r[key]), key
        assert 0 <= r["val_acc"] <= 1 and r["epoch_time_s"] > 0 and "test_acc" not in r
        assert r["firing_rates"] and all(0 <= v <= 1 for v in r["firing_rates"].values())
    best = max(metrics["epochs"], key=lambda r: r["val_acc"])
    assert metrics["selected_val_acc"] == best["val_acc"] and metrics["selected_epoch"] == best["epoch"]
    assert torch.load(out / "best.pt", weights_only=True)["epoch"] == best["epoch"]
    assert load_model(out / "last.pt").state_dict().keys() == weights(out / "best.pt").keys()
    assert not list(out.glob(".tmp-*")), "temporary files left behind"


def test_cosine_schedule(tmp_path):
    summary = run(tiny(tmp_path, epochs=3, schedule="cosine", lr=0.2))
    expected = [0.2 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert [r["lr"] for r in summary["epochs"]] == pytest.approx(expected)


def test_firing_rates_count_spikes_over_neuron_steps():
    rates = FiringRates()
    rates.update({"a": torch.tensor([[1.0, 0.0], [1.0, 1.0]]), "b": torch.zeros(3)})
    rates.update({"a": torch.zeros(2, 2)})
    assert rates.rates() == {"a": 3 / 8, "b": 0.0}
    assert rates.mean_rate() == pytest.approx(3 / 11)


def test_validation_split_is_held_out_of_training_stratified_and_seeded():
    labels = [0] * 20 + [1] * 10 + [2] * 30
    train, val = validation_split(labels, 0.1)
    assert sorted(train + val) == list(range(60)) and not set(train) & set(val)
    assert [sum(labels[i] == c for i in val) for c in range(3)] == [2, 1, 3]
    assert (train, val) == validation_split(labels, 0.1)
    assert val != validation_split(labels, 0.1, seed=1)[1]
    assert len(validation_split(list(range(10)), 0.1)[1]) == 1      # one sample per class: still one held out


def test_best_pt_is_selected_on_validation_and_tested_once(tmp_path):
    # Selection never looks at the test split: replacing the test set changes test_acc, not best.pt.
    a = Trainer(tiny(tmp_path, "a", epochs=3), progress=False, datasets=DATA, info=INFO).run()
    other_test = synthetic(24, 7)
    b = Trainer(tiny(tmp_path, "b", epochs=3), progress=False, datasets=(DATA[0], other_test), info=INFO).run()
    assert a["selected_epoch"] == b["selected_epoch"]
    assert_same_weights(weights(tmp_path / "a" / "best.pt"), weights(tmp_path / "b" / "best.pt"))
    assert a["samples"] == {"train": 42, "validation": 6, "test": 24}  # 2 of each class's ~16
    # test_acc is the accuracy of best.pt's weights on the test split
    model = load_model(tmp_path / "a" / "best.pt")
    x, y = DATA[1].tensors
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).double().mean())
    assert a["test_acc"] == pytest.approx(acc)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["test_acc"] == a["test_acc"]


def test_atomic_json_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_init_from_a_T1_checkpoint_into_a_larger_T(tmp_path):
    run(tiny(tmp_path, "t1", epochs=1, T=1))
    t1 = weights(tmp_path / "t1" / "best.pt")
    trainer = Trainer(tiny(tmp_path, "t2", T=2, init_from=str(tmp_path / "t1" / "best.pt")), progress=False,
                      datasets=DATA, info=INFO)
    assert trainer.model_config.T == 2
    assert_same_weights(t1, trainer.model.state_dict())
    with pytest.raises(InputError, match="depth"):
        Trainer(tiny(tmp_path, "d14", depth=14, init_from=str(tmp_path / "t1" / "best.pt")), progress=False,
                datasets=DATA, info=INFO)


@pytest.mark.parametrize("field,value,message", [
    ("epochs", 0, "--epochs must be >= 1"),
    ("lr", -1.0, "--lr must be in \\(0, 100\\]"),
    ("lr", math.inf, "--lr must be a finite number, got inf"),
    ("lr", math.nan, "--lr must be a finite number, got nan"),
    ("lr", 1e300, "--lr must be in \\(0, 100\\], got 1e\\+300"),
    ("weight_decay", math.inf, "--weight-decay must be a finite number"),
    ("weight_decay", 5.0, "--weight-decay must be in \\[0, 1\\)"),
    ("shortcut_lambda", math.inf, "--shortcut-lambda must be a finite number"),
    ("shortcut_lambda", 1e300, "--shortcut-lambda must be in \\[0, 100\\]"),
    ("momentum", math.nan, "--momentum must be a finite number"),
    ("lr_gamma", 0.0, "--lr-gamma must be > 0"),
    ("surrogate_width", math.inf, "--surrogate-width must be a finite number"),
    ("schedule", "multistep", "needs --milestones"),
    ("evolutionary", True, "needs --shortcut-bp"),
    ("dataset", "mnist", "unknown"),
    ("label_smoothing", 1.0, "label-smoothing"),
])
def test_bad_settings_are_user_errors(tmp_path, field, value, message):
    with pytest.raises(InputError, match=message):
        resolve(dataclasses.replace(tiny(tmp_path), **{field: value}))


def test_shortcut_lambda_defaults_follow_the_paper(tmp_path):
    assert resolve(tiny(tmp_path, shortcut_bp="block")).shortcut_lambda == 1.0           # eq. 6: plain sum
    assert resolve(tiny(tmp_path, shortcut_bp="block", evolutionary=True)).shortcut_lambda == 0.25  # eq. 10


@pytest.mark.xfail(strict=False, raises=InputError,
                   reason="bfloat16 CPU autocast makes some weights NaN in about half the runs (thread-dependent); "
                          "before the non-finite check (#20) this passed silently with NaN weights")
def test_amp_on_the_cpu_trains(tmp_path):
    summary = run(tiny(tmp_path, epochs=1, amp=True))
    assert math.isfinite(summary["epochs"][0]["train_loss"])


def test_resume_with_more_epochs_extends_a_finished_run_exactly(tmp_path):
    # multistep does not depend on the run's length, so 2 epochs extended to 3 are the 3-epoch run
    extra = dict(schedule="multistep", milestones=(1, 2), lr_gamma=0.5)
    full = run(tiny(tmp_path, "full", epochs=3, **extra))
    short = run(tiny(tmp_path, "ext", epochs=2, **extra))
    assert short["epochs_done"] == 2 and short["test_acc"] is not None
    extended = run(tiny(tmp_path, "ext", epochs=3, resume=str(tmp_path / "ext" / "last.pt"), **extra))
    assert_same_weights(weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "ext" / "last.pt"))
    drop = ("epoch_time_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in full["epochs"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in extended["epochs"]]
    assert extended["test_acc"] == full["test_acc"] and extended["selected_epoch"] == full["selected_epoch"]
    with pytest.raises(InputError, match="has done 3 epochs; --epochs 2 cannot shorten it"):
        run(tiny(tmp_path, "ext", epochs=2, resume=str(tmp_path / "ext" / "last.pt"), **extra))


def test_mpr_and_surrogate_reach_the_neurons(tmp_path):
    trainer = Trainer(tiny(tmp_path, mpr=True, surrogate="sigmoid", surrogate_width=0.5), progress=False,
                      datasets=DATA, info=INFO)
    neuron = trainer.model_config.neuron
    assert (neuron["mpr"], neuron["surrogate"], neuron["surrogate_width"]) == (True, "sigmoid", 0.5)
    from snnchip.train.neurons import SpikingNeuron
    cells = [m.config for m in trainer.model.modules() if isinstance(m, SpikingNeuron)]
    assert cells and all(c.mpr and c.surrogate == "sigmoid" and c.surrogate_width == 0.5 for c in cells)
    plain = Trainer(tiny(tmp_path, "plain"), progress=False, datasets=DATA, info=INFO).model_config.neuron
    assert (plain["mpr"], plain["surrogate"]) == (False, "rect")
    with pytest.raises(InputError, match="--surrogate-width must be > 0"):
        resolve(tiny(tmp_path, surrogate_width=0.0))
