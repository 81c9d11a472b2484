"""snn-train under hostile input and faults (#20): non-finite losses, damaged checkpoints, a shared --out, stale
locks and temporary files, a lost best.pt, and --workers."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import TensorDataset

from snnchip.errors import InputError
from snnchip.fileio import TEMP_SUFFIX
from snnchip.train.checkpoint import load_model
from snnchip.train.cli import main
from snnchip.train.trainer import LOCK_NAME, Trainer, run_lock

from .test_cli import SMALL
from .test_trainer import DATA, INFO, assert_same_weights, run, synthetic, tiny, weights


def test_a_non_finite_loss_stops_the_run_in_one_line(tmp_path):
    trainer = Trainer(tiny(tmp_path), progress=False, datasets=DATA, info=INFO)
    with torch.no_grad():
        trainer.model.head.fc.weight.fill_(float("nan"))  # NaN logits: the first step's loss is NaN
    with pytest.raises(InputError, match=r"^epoch 1, step 1: the training loss is nan; training stopped .*"
                                         r"no epoch was completed$"):
        trainer.run()


def test_non_finite_weights_stop_the_run_in_one_line(tmp_path):
    x, y = synthetic(48, 0).tensors
    x = x.clone()
    x[5] = float("inf")                 # finite spikes and loss, NaN gradients: the weights become NaN
    with pytest.raises(InputError, match=r"^epoch 1, step \d+: the weights are not finite; training stopped"):
        Trainer(tiny(tmp_path), progress=False, datasets=(TensorDataset(x, y), DATA[1]), info=INFO).run()
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.fixture(scope="module")
def last_pt(tmp_path_factory):
    """A real last.pt / best.pt after 1 of 2 epochs."""
    root = tmp_path_factory.mktemp("ckpt")
    run(tiny(root), stop_after=1)
    return root / "run"


def _damaged(src, dst, change):
    payload = torch.load(src, weights_only=True)
    change(payload)
    torch.save(payload, dst)
    return dst


def _nan(p):
    p["state_dict"]["stem.conv.weight"].view(-1)[3] = float("nan")


def _reshape(p):
    p["state_dict"]["stem.conv.weight"] = p["state_dict"]["stem.conv.weight"][:1]


MODEL_CASES = [
    (_nan, r"state_dict\.stem\.conv\.weight: 1 of \d+ values are not finite"),
    (lambda p: p.update(config=None), "config must be a dict of the model configuration, got NoneType"),
    (lambda p: p["config"].update(bogus=1), r"config: unknown field\(s\) \['bogus'\]"),
    (lambda p: p["config"].update(widths=[4, -8, 16]),
     r"config: invalid model configuration \(widths \(4, -8, 16\) must be positive"),
    (lambda p: p.update(state_dict=[1, 2]), "state_dict must be a dict of tensors, got list"),
    (_reshape, "state_dict: does not match the stored configuration"),
    (lambda p: p.update(epoch=-3), "epoch must be an integer >= 0, got -3"),
]


@pytest.mark.parametrize("change,message", MODEL_CASES)
def test_a_damaged_checkpoint_is_one_line_naming_file_and_field(last_pt, tmp_path, change, message):
    bad = _damaged(last_pt / "best.pt", tmp_path / "bad.pt", change)
    with pytest.raises(InputError, match=message) as err:
        load_model(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def _rng(p):
    p["train_state"]["rng"]["torch"] = p["train_state"]["rng"]["torch"][:100]


def _momentum(p):
    state = p["train_state"]["optimizer"]["state"]
    state[0]["momentum_buffer"] = state[0]["momentum_buffer"].flatten()[:2]


RESUME_CASES = MODEL_CASES + [
    (lambda p: p["train_state"].pop("optimizer"), "train_state has no optimizer"),
    (lambda p: p.update(epoch=10 ** 6), r"train_state.history must list one record per epoch done \(1000000\)"),
    (lambda p: p.update(epoch="1"), "epoch must be an integer >= 0, got '1'"),
    (_rng, "train_state.rng is invalid"),
    (_momentum, "train_state.optimizer is invalid .*momentum buffer of shape"),
    (lambda p: p["train_state"]["optimizer"]["state"][0]["momentum_buffer"].fill_(float("inf")),
     r"train_state.optimizer.state.0.momentum_buffer: \d+ of \d+ values are not finite"),
    (lambda p: p["train_state"]["best_state"]["head.fc.weight"].fill_(float("nan")),
     "train_state.best_state.head.fc.weight: .* not finite"),
    (lambda p: p["train_state"].update(best_acc=7.0), "train_state.best_acc must be an accuracy"),
]


@pytest.mark.parametrize("change,message", RESUME_CASES)
def test_a_damaged_resume_state_is_one_line_naming_file_and_field(last_pt, tmp_path, change, message):
    if message.startswith("epoch must"):
        message = "--resume .*: " + message
    bad = _damaged(last_pt / "last.pt", tmp_path / "last.pt", change)
    with pytest.raises(InputError, match=message) as err:
        run(tiny(tmp_path, "resumed", resume=str(bad)))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def _hold_lock(out):
    """A process that takes the run lock of `out` and sleeps; returns it once it holds the lock."""
    code = ("import sys, time\nfrom snnchip.train.trainer import run_lock\n"
            f"with run_lock({str(out)!r}):\n    print('locked', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_on_a_locked_out_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    try:
        assert main(SMALL + ["--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"in use by another snn-train (pid {holder.pid}" in err
        assert not (out / "last.pt").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    (out / f".last.pt.x1y2{TEMP_SUFFIX}").write_bytes(b"half a checkpoint")   # what a killed write leaves
    summary = run(tiny(tmp_path, "run", epochs=1))                              # the stale lock is no obstacle
    assert summary["epochs_done"] == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(["best.pt", "last.pt", "metrics.json", LOCK_NAME])


def test_the_lock_is_held_while_the_run_writes(tmp_path):
    out = tmp_path / "run"
    with run_lock(str(out)):
        with pytest.raises(InputError, match="in use by another snn-train"):
            run(tiny(tmp_path, "run", epochs=1))


def test_resume_recreates_a_lost_or_stale_best_pt(tmp_path):
    run(tiny(tmp_path, "full", epochs=3))
    run(tiny(tmp_path, "cut", epochs=3), stop_after=2)
    best = tmp_path / "cut" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])       # a best.pt that a kill left unreadable (or an older one)
    run(tiny(tmp_path, "cut", epochs=3, resume=str(tmp_path / "cut" / "last.pt")), stop_after=2)
    a, b = (torch.load(tmp_path / r / "best.pt", weights_only=True) for r in ("full", "cut"))
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    if full["selected_epoch"] <= 2:                  # best.pt of the full run is one the cut run had reached
        assert a["epoch"] == b["epoch"] == full["selected_epoch"]
        assert_same_weights(a["state_dict"], b["state_dict"])
    load_model(best)


@pytest.mark.parametrize("workers", [2])
def test_workers_do_not_change_the_result(tmp_path, capsys, workers):
    # digits-dvs with its augmentation (roll): each sample's augmentation is seeded by (seed, epoch, index)
    results = []
    for w in (0, workers):
        out = tmp_path / f"w{w}"
        assert main(SMALL + ["--epochs", "2", "--workers", str(w), "--out", str(out), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        results.append([{k: v for k, v in r.items() if not k.endswith("time_s") and k != "elapsed_s"}
                        for r in json.loads((out / "metrics.json").read_text())["epochs"]] + [summary["test_acc"]])
    assert results[0] == results[1]
    assert_same_weights(weights(tmp_path / "w0" / "last.pt"), weights(tmp_path / f"w{workers}" / "last.pt"))


KILL_RUN = ["--dataset", "digits-dvs", "--depth", "8", "--width", "4", "--T", "2", "--epochs", "3",
            "--batch-size", "64", "--device", "cpu", "--no-progress"]
TIMING = ("epoch_time_s", "elapsed_s", "total_time_s")


def _outcome(out):
    """What a finished run leaves, less wall-clock times and paths: metrics.json and both checkpoints."""
    metrics = json.loads((out / "metrics.json").read_text())
    metrics = {k: v for k, v in metrics.items() if k not in TIMING + ("train_config",)}
    metrics["epochs"] = [{k: v for k, v in r.items() if k not in TIMING} for r in metrics["epochs"]]
    ckpts = {}
    for name in ("best.pt", "last.pt"):
        c = torch.load(out / name, weights_only=True)
        ckpts[name] = (c["epoch"], {k: v for k, v in c["metrics"].items() if k not in TIMING}, c["state_dict"],
                       c["config"])
    return metrics, ckpts


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_reaches_the_uninterrupted_run(tmp_path):
    # 10 tries. In each, snn-train is killed (SIGKILL) alternately at a random time and the moment a checkpoint's
    # temporary file appears (during its write), resumed each time; after 4 kills the run may end by itself.
    import random
    cmd = [sys.executable, "-m", "snnchip.train.cli"] + KILL_RUN
    start = time.time()
    subprocess.run(cmd + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    full = time.time() - start
    reference = _outcome(tmp_path / "ref")
    rng = random.Random(0)
    kills = {"time": 0, "write": 0}
    for trial in range(10):
        out = tmp_path / f"try{trial}"
        for attempt in range(100):
            resume = ["--resume"] if (out / "last.pt").exists() else []
            proc = subprocess.Popen(cmd + ["--out", str(out)] + resume, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            mode = ("time", "write", None)[min(attempt % 2 if attempt < 4 else 2, 2)]
            deadline = time.time() + rng.uniform(0.1, 0.8) * full
            while proc.poll() is None and mode is not None:
                writing = mode == "write" and any(out.glob(f".*{TEMP_SUFFIX}"))
                if writing or (mode == "time" and time.time() > deadline):
                    proc.send_signal(signal.SIGKILL)
                    kills[mode] += 1
                    break
                time.sleep(0.0005)
            proc.wait()
            err = proc.stderr.read()
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, err
        metrics, ckpts = _outcome(out)
        assert metrics == reference[0], trial
        for name in ckpts:
            assert ckpts[name][:2] == reference[1][name][:2] and ckpts[name][3] == reference[1][name][3]
            assert_same_weights(ckpts[name][2], reference[1][name][2])
        assert not list(out.glob(f".*{TEMP_SUFFIX}"))
    print(f"kills at random times: {kills['time']}, during checkpoint writes: {kills['write']}")
    assert kills["time"] >= 5 and kills["write"] >= 5
