"""snn-export: the per-layer table / JSON report, the written files, and one-line errors."""
import json

import numpy as np
import pytest
import torch

from snnchip.export.cli import main
from snnchip.train.checkpoint import save_checkpoint
from snnchip.train.models import build_model, model_config
from snnchip.train.norm import TdBN


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small digits-dvs-shaped MS-ResNet with random norm statistics (so every layer spikes)."""
    torch.manual_seed(0)
    model = build_model(model_config("ms_resnet8", widths=(4, 8, 8), in_channels=2, input_size=(16, 16), T=8,
                                     num_classes=10))
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, TdBN):
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.05 + 0.02)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
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
    from snnchip.export.netx_hdf5 import read_netx
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
    (["missing.pt", "--target", "loihi"], "does not exist"),
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
