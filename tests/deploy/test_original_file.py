"""snn-deploy on stock files (#15 item 2, #20): the original file runs through stock lava-dl netx (a slayer file
with an Input block included), is compared with snn-sim in every layer at every step, and a difference is
reported; a Lava run that does not finish is stopped by the watchdog, in one line."""
import json
import multiprocessing
from multiprocessing.managers import SharedMemoryManager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from snnchip.deploy.cli import main
from snnchip.errors import LavaTimeout
from snnchip.formats.netx import read_netx


def slayer_input_conv_file(path, seed=0):
    """lava-dl's slayer export of Input (with its CUBA neuron) -> Conv -> Flatten -> Dense, digits-dvs-shaped."""
    from lava.lib.dl import slayer
    params = {"threshold": 0.5, "current_decay": 0.5, "voltage_decay": 0.2, "tau_grad": 1.0, "scale_grad": 1.0,
              "requires_grad": False}
    torch.manual_seed(seed)
    # the input neuron takes the samples' spikes (1 per event) as its synaptic input: a threshold it can reach
    blocks = [slayer.block.cuba.Input({**params, "threshold": 1 / 64}, weight=1, bias=0),
              slayer.block.cuba.Conv(params, 2, 4, 3, stride=2, padding=1, weight_scale=2),
              slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense({**params, "threshold": 0.1}, 4 * 8 * 8, 10, weight_scale=8)]
    with torch.no_grad():                     # slayer sizes its neurons on the first forward pass
        x = (torch.rand(1, 2, 16, 16, 4) < 0.3).float()
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as handle:
        layer = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))


def run_json(capsys, *argv):
    code = main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code in (0, 1) else None), err


def test_slayer_input_block_file_runs_in_stock_netx_equal_to_snn_sim(tmp_path, capsys):
    path = tmp_path / "slayer.net"
    slayer_input_conv_file(path)
    assert not read_netx(path).inputs[0].neuron.graded          # the Input block has its own neuron
    code, report, err = run_json(capsys, path, "--dataset", "digits-dvs", "--samples", 2)
    assert code == 0, err
    assert report["built_by"] == "netx" and report["netx_file"] == "stock"
    assert report["lava_ran"] == "the original file in stock netx"
    assert report["identical"]
    layers = {"spikes of layer0", "spikes of layer1", "spikes", "readout"}
    assert set(report["agreement"]) == layers
    for what in layers:
        a = report["agreement"][what]
        assert a["identical_steps"] == a["steps"] == report["lava_steps"] and a["nonzero"] > 0, (what, a)


def test_a_misreading_of_a_stock_file_is_reported(tmp_path, capsys, monkeypatch):
    """Lava runs the original file, so a reader that gets a layer wrong differs from Lava, and snn-deploy says so
    (exit 1). (Writing snnchip's reading back out for netx would make both agree on the wrong network.)"""
    import snnchip.formats.netx as netx_format
    path = tmp_path / "slayer.net"
    slayer_input_conv_file(path)
    read = netx_format.read_netx

    def misread(p, *args, **kwargs):
        graph = read(p, *args, **kwargs)
        graph.population("layer1").neuron.threshold += 7      # a reader bug: layer 1's vThMant read wrong
        return graph
    monkeypatch.setattr(netx_format, "read_netx", misread)
    code = main([str(path), "--dataset", "digits-dvs", "--samples", "2"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "DIFFER" in out and "spikes of layer1: identical to simulate at" in out


def test_watchdog_stops_a_run_that_hangs(monkeypatch):
    """A process model that never finishes its step: the watchdog stops the run after its limit, ends its OS
    processes and frees its shared memory, and the error is one line."""
    import time
    from snnchip.deploy.runconfig import TagRunConfig
    from snnchip.deploy.watchdog import run_steps
    from .hanging_process import Hang
    created = []
    make = SharedMemoryManager.SharedMemory

    def tracked(self, size):
        shm = make(self, size)
        created.append(shm.name)
        return shm
    monkeypatch.setattr(SharedMemoryManager, "SharedMemory", tracked)
    hang = Hang()
    start = time.monotonic()
    with pytest.raises(LavaTimeout, match=r"did not finish within 2 s; the watchdog stopped its processes"):
        run_steps(hang, 3, TagRunConfig("fixed_pt"), timeout_s=2)
    assert time.monotonic() - start < 60
    hang.stop()                                             # what every caller does afterwards: a no-op now
    assert created and not [name for name in created if Path("/dev/shm", name).exists()]
    assert multiprocessing.active_children() == []


def test_snn_deploy_timeout_and_invalid_conv_are_one_line(tmp_path, capsys):
    path = tmp_path / "slayer.net"
    slayer_input_conv_file(path)
    assert main([str(path), "--dataset", "digits-dvs", "--samples", "40", "--timeout", "0.000001"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "watchdog stopped its processes" in err
    assert main([str(path), "--dataset", "digits-dvs", "--timeout", "0"]) == 2
    assert "--timeout must be > 0" in capsys.readouterr().err
    with h5py.File(path, "a") as handle:                  # a conv that would hang Lava: refused before building
        del handle["layer/1/dilation"]
        handle["layer/1/dilation"] = np.array([0, 0])
    assert main([str(path), "--dataset", "digits-dvs", "--samples", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer 1" in err
