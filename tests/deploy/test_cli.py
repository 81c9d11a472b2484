"""snn-deploy end to end: an exported digits-dvs MS-ResNet on Lava agrees with simulate at every step; a
CIFAR10-DVS-sized MS-ResNet20 on AEDAT 2.0 files written here; Loihi 2 missing is one line; bad input is one line."""
import json

import numpy as np
import pytest
import torch

from snnchip.deploy.cli import main
from snnchip.deploy.hardware import loihi2_available
from snnchip.formats.netx import read_netx
from snnchip.train.data.cifar10_dvs import CLASSES

from .conftest import export_netx, random_ms_resnet


def run_json(capsys, *argv):
    code = main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code in (0, 1) else None), err


def check_report(report, graph, samples):
    assert report["samples"] == samples
    assert report["identical"], report["agreement"]
    for a in report["agreement"].values():
        assert a["identical_steps"] == a["steps"] == report["lava_steps"]
    assert report["prediction_agreement"] == 1.0 and report["accuracy"] == report["sim_accuracy"]
    assert report["latency_steps"] == graph.latency() and report["steps_per_second"] > 0
    assert report["lava_steps"] == samples * report["T"] + report["latency_steps"]


def test_digits_dvs_ms_resnet_on_lava_fixed_point_matches_simulate(digits_net, capsys):
    code, report, err = run_json(capsys, digits_net, "--dataset", "digits-dvs", "--samples", 3)
    assert code == 0, err
    check_report(report, read_netx(digits_net), 3)
    assert report["agreement"]["readout"]["max_abs_diff"] == 0


def test_float_run_reads_the_integers_in_float(digits_net, capsys):
    code, report, err = run_json(capsys, digits_net, "--dataset", "digits-dvs", "--samples", 2, "--run", "float")
    assert code == 0, err
    check_report(report, read_netx(digits_net), 2)


@pytest.mark.slow
def test_digits_dvs_twenty_samples(digits_net, capsys):
    code, report, err = run_json(capsys, digits_net, "--dataset", "digits-dvs", "--samples", 20)
    assert code == 0, err
    check_report(report, read_netx(digits_net), 20)


@pytest.mark.skipif(loihi2_available(), reason="lava-loihi is installed here")
def test_loihi2_without_lava_loihi_is_one_line(digits_net, capsys):
    code = main([str(digits_net), "--dataset", "digits-dvs", "--samples", "1", "--run", "loihi2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "lava-loihi" in err


@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing.net", "--dataset", "digits-dvs"], "no such file"),
    (["{net}", "--dataset", "nosuchdata"], "nosuchdata"),
    (["{net}", "--dataset", "nmnist", "--data-root", "{tmp}"], "nmnist"),
    (["{net}", "--dataset", "digits-dvs", "--samples", "0"], "--samples"),
])
def test_bad_input_is_one_line(digits_net, tmp_path, capsys, args, message):
    argv = [a.format(tmp=tmp_path, net=digits_net) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and message in err


def write_aedat2(path, x, y, p, t):
    """AEDAT 2.0 as jAER writes it for a DVS128: '#' header lines, then big-endian uint32 (address, timestamp
    [us]) pairs. CIFAR10-DVS address: bit 0 polarity, bits 1-7 and 8-14 the coordinates (the dataset reader
    flips both and the polarity, so they are stored flipped here)."""
    head = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# Timestamps tick is 1 us\r\n"
    address = ((127 - np.asarray(x)) << 8) | ((127 - np.asarray(y)) << 1) | (1 - np.asarray(p))
    pairs = np.empty(len(t), dtype=[("address", ">u4"), ("t", ">u4")])
    pairs["address"], pairs["t"] = address, t
    path.write_bytes(head + pairs.tobytes())


@pytest.mark.slow
def test_cifar10_dvs_ms_resnet20_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar10-dvs"
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(10):  # the last of ten per class is the test split
            n = 4000
            t = np.sort(rng.integers(0, 10**6, n))
            x, y = rng.integers(20, 108, n), rng.integers(20, 108, n)
            write_aedat2(root / c / f"cifar10_{c}_{i}.aedat", x, y, rng.integers(0, 2, n), t)
    model = random_ms_resnet("ms_resnet20_dvs", T=4, input_size=(48, 48), in_channels=2, num_classes=10)
    calib = torch.as_tensor(rng.random((2, 2, 48, 48, 4)) < 0.1, dtype=torch.float64)
    net = tmp_path / "ms_resnet20.net"
    export_netx(model, calib, net)
    code, report, err = run_json(capsys, net, "--dataset", "cifar10-dvs", "--data-root", tmp_path,
                                 "--samples", 2, "--T", 4)
    assert code == 0, err
    check_report(report, read_netx(net), 2)
