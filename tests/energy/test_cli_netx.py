"""snn-energy on a NetX HDF5 file in lava-dl's stock format (tiny.net shipped with lava-dl, its input narrowed to
digits-dvs's 2 polarity channels and its input neuron firing on any event): counts from the simulator's counters on the fixed-point graph."""
import json
import shutil

import h5py
import numpy as np
import pytest

from lava_dl_files import stock_netx_dir
from snnchip.energy.cli import main


@pytest.fixture()
def two_channel_tiny(tmp_path):
    path = tmp_path / "tiny2.net"
    shutil.copy(stock_netx_dir() / "tiny.net", path)
    with h5py.File(path, "r+") as f:
        f["layer/0/shape"][...] = np.array([2, 16, 16])
        w = f["layer/1/weight"][()][:, :2]
        del f["layer/1/weight"]
        f["layer/1/weight"] = w
        f["layer/1/inChannels"][()] = 2
        f["layer/0/neuron/vThMant"][()] = 0   # fire when v > 0: each event (x = 1) makes an input spike
    return path


def test_netx_report_from_sim_counters(two_channel_tiny, tmp_path, capsys):
    code = main([str(two_channel_tiny), "--dataset", "digits-dvs", "--T", "8", "--samples", "3", "--json",
                 "--html", str(tmp_path / "r.html")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["origin"] == "sim" and report["samples"] == 3 and report["T"] == 8
    assert [l["name"] for l in report["layers"]] == ["layer0->layer1", "layer1->layer2"]
    assert [n["name"] for n in report["neuron_layers"]] == ["layer1", "layer2"]
    first = report["layers"][0]
    assert first["synapses"] == 24 * 6 * 6 * 2 * 5 * 5 and first["input"] == "spikes" and first["synops"] > 0
    assert "paper_convention" not in report  # a graph has no model roles
    loihi = report["totals"]["energy_pj_per_sample"]["loihi/chip"]
    ps = report["totals"]["per_sample"]
    inactive = ps["neuron_updates"] - ps["active_updates"]
    assert loihi["snn"] == pytest.approx(ps["synops"] * 23.6 + ps["active_updates"] * 81 + inactive * 52
                                         + ps["spikes"] * 1.7)
    assert ps["neuron_updates"] == (24 * 6 * 6 + 36) * 8


def test_netx_needs_T(two_channel_tiny, capsys):
    assert main([str(two_channel_tiny), "--dataset", "digits-dvs"]) == 2
    assert "pass --T" in capsys.readouterr().err
