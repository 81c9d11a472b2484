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
from snnchip.train.metrics import FiringRates, final_accuracy
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
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "epoch_time_s", "firing_rate"):
            assert math.isfinite(r[key]), key
        assert 0 <= r["test_acc"] <= 1 and r["epoch_time_s"] > 0
        assert r["firing_rates"] and all(0 <= v <= 1 for v in r["firing_rates"].values())
    best = max(metrics["epochs"], key=lambda r: r["test_acc"])
    assert metrics["best_test_acc"] == best["test_acc"]
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


def test_final_accuracy_is_the_mean_of_the_last_five_epochs():
    history = [{"test_acc": a} for a in (0.1, 0.5, 0.6, 0.7, 0.8, 0.9)]
    assert final_accuracy(history) == pytest.approx(0.7)


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
    ("lr", -1.0, "--lr must be > 0"),
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


def test_amp_on_the_cpu_trains(tmp_path):
    summary = run(tiny(tmp_path, epochs=1, amp=True))
    assert math.isfinite(summary["epochs"][0]["train_loss"])
