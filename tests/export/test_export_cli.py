"""snn-export: the per-layer table / JSON report, the written files, and one-line errors."""
import json

import numpy as np
import pytest
import torch

from snnchip.export.cli import main
from snnchip.train.checkpoint import save_checkpoint
from small_models import small_ms_resnet
from snnchip.train.models import build_model, model_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small digits-dvs-shaped MS-ResNet with random norm statistics (so every layer spikes)."""
    model = small_ms_resnet(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(str(path), model)
    return path


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--target", "--timing", "--calibrate", "--data-root", "--json", "-o"):
        assert option in out


def test_calibrated_loihi_report(checkpoint, capsys):
    rc, out, err = run(capsys, checkpoint, "--target", "loihi", "--calibrate", "digits-dvs", "--samples", 24,
                       "--eval-samples", 24, "--dry-run", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["timing"] == "pipelined" and report["input"] == "binary" and report["output"] is None
    assert report["latency"] == 2 * 3 + 2
    pops = {p["name"]: p for p in report["populations"]}
    assert set(pops) == {f"stages.{s}.0.lif{i}" for s in range(3) for i in (1, 2)} | {"head.lif", "readout"}
    for p in report["populations"]:
        assert 0.5 < p["spike_agreement"] <= 1.0 and p["peak_u"] < 1 and p["peak_v"] <= 1
    for q in report["projections"]:
        assert 2 <= q["weight_bits"] <= 8 and -8 <= q["weight_exp"] <= 7 and q["saturated"] == 0
        assert 0 <= q["rel_error"] < 0.02 and q["synapses"] > 0
    assert 0 <= report["fixed_accuracy"] <= 1 and report["argmax_agreement"] > 0.5
    assert report["calibration_samples"] == 24


def test_table_for_both_targets(checkpoint, capsys):
    rc, out, err = run(capsys, checkpoint, "--target", "loihi", "--timing", "ideal", "--dry-run")
    assert rc == 0, err
    header = out.splitlines()[0].split()
    assert header == ["layer", "shape", "neurons", "synapses", "wbits", "exp", "sat", "error", "agree"]
    assert "stages.2.0.lif1" in out and "<- stages.1.0.lif2" in out and "total:" in out
    assert "ideal timing, latency 0 steps, graded input" in out
    rc, out, err = run(capsys, checkpoint, "--target", "onnx", "--dry-run")
    assert rc == 0, err
    assert "readout" in out and "ideal timing" in out


def test_writes_a_netx_file_that_reads_back(checkpoint, tmp_path, capsys):
    from snnchip.export.lower import lower
    from snnchip.formats.netx import read_netx
    from snnchip.export.quantize import quantize
    from snnchip.export.timing import pipeline
    from snnchip.train.checkpoint import load_model
    out = tmp_path / "model.net"
    rc, stdout, err = run(capsys, checkpoint, "--target", "loihi", "-o", out, "--json")
    assert rc == 0, err
    assert json.loads(stdout)["output"] == str(out)
    back = read_netx(out)
    expect, _ = quantize(pipeline(lower(load_model(str(checkpoint)).double().eval())))
    assert back.fixed and back.timing == "pipelined"
    assert [p.name for p in back.populations] == [p.name for p in expect.populations]
    for q, r in zip(back.projections, expect.projections):
        assert (q.source, q.target, q.weight_exp, q.delay) == (r.source, r.target, r.weight_exp, r.delay)
        assert np.array_equal(q.weight, r.weight)


@pytest.mark.parametrize("argv,message", [
    (["missing.pt", "--target", "loihi"], "missing.pt: no such file"),
    (["{bad}", "--target", "loihi"], "bad.pt: "),
    (["{ckpt}", "--target", "onnx", "--calibrate", "digits-dvs"], "--calibrate applies to --target loihi"),
    (["{ckpt}", "--target", "loihi", "--calibrate", "no-such-set"], "no-such-set"),
])
def test_bad_input_is_one_line_and_exit_2(checkpoint, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    argv = [a.replace("{bad}", str(bad)).replace("{ckpt}", str(checkpoint)) for a in argv]
    rc, out, err = run(capsys, *argv, "--dry-run")
    assert rc == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_trained_digits_dvs_ms_resnet_fixed_point_accuracy_within_one_point(tmp_path, capsys):
    """End to end on real data: train a small MS-ResNet on digits-dvs (Adam, a few minutes), check the float graph
    reproduces the model's spikes on test samples, then export: fixed-point test accuracy within 1 point."""
    from snnchip.export.lower import lower
    from snnchip.sim import simulate
    from snnchip.train.data import load_dataset
    torch.manual_seed(0)
    train, test = load_dataset("digits-dvs", "train"), load_dataset("digits-dvs", "test")
    x = torch.stack([train[i][0] for i in range(len(train))])
    y = torch.tensor([int(train[i][1]) for i in range(len(train))])
    model = build_model(model_config("ms_resnet8", widths=(8, 16, 32), in_channels=2, input_size=(16, 16), T=8,
                                     num_classes=10))
    epochs = 14
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(32):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    path = tmp_path / "digits.pt"
    save_checkpoint(str(path), model)

    model = model.double().eval()
    xt = torch.stack([test[i][0] for i in range(32)]).double()
    with torch.no_grad():
        _, spikes = model.forward_all(xt)
    graph = lower(model, input_kind="binary")
    res = simulate(graph, xt, record=tuple(spikes))
    for name in spikes:
        assert torch.equal(res.spikes[name], spikes[name]), name

    rc, out, err = run(capsys, path, "--target", "loihi", "--calibrate", "digits-dvs", "--samples", 256,
                       "--eval-samples", len(test), "--dry-run", "--json")
    assert rc == 0, err
    report = json.loads(out)
    print(f"float {report['float_accuracy']:.4f} fixed {report['fixed_accuracy']:.4f} "
          f"agreement {report['argmax_agreement']:.4f}")
    assert report["float_accuracy"] > 0.7
    assert abs(report["float_accuracy"] - report["fixed_accuracy"]) <= 0.01


def test_writes_an_onnx_file(checkpoint, tmp_path, capsys):
    import onnx
    out = tmp_path / "model.onnx"
    rc, stdout, err = run(capsys, checkpoint, "--target", "onnx", "-o", out)
    assert rc == 0, err
    assert f"wrote {out} (onnx, ideal timing" in stdout
    onnx.checker.check_model(onnx.load(str(out)))
