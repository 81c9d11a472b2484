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


def test_stock_file_takes_T_from_the_dataset_as_snn_sim(two_channel_tiny, capsys):
    """A stock file records no T: snn-energy, as snn-sim (`iter_batches(T=None)`), runs the data set's own number
    of steps."""
    from snnchip.train.data import iter_batches
    assert main([str(two_channel_tiny), "--dataset", "digits-dvs", "--samples", "2", "--json"]) == 0
    energy = json.loads(capsys.readouterr().out)
    x, _ = next(iter(iter_batches("digits-dvs", "test", T=None, count=1, batch_size=1)))
    assert energy["T"] == x.shape[-1] > 1 and energy["samples"] == 2


def test_pilotnet_sdnn_priced_with_graded_events_from_a_raw_input(capsys):
    """lava-dl's PilotNet SDNN on its shipped input (cycled over 9 steps, as lava-dl's test feeds it): every
    projection carries graded events of 16 message bits, counted as MACs; the counts are the simulator's."""
    import torch
    from lava_dl_files import pilotnet_sdnn_dir
    from snnchip.formats.netx import read_netx
    from snnchip.sim import Simulator, run_samples
    root = pilotnet_sdnn_dir()
    assert main([str(root / "network.net"), "--input", str(root / "input.npy"), "--T", "9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ps = report["totals"]["per_sample"]
    assert report["T"] == 9 and ps["synops"] == 0 and ps["macs"] > 10 ** 6
    assert all(layer["input"] == "graded" for layer in report["layers"])
    assert ps["payload_bits"] == 16 * ps["graded_events"] > 0
    assert report["totals"]["energy_pj_per_sample"]["cmos45nm/int8"]["snn"] > 0
    graph = read_netx(root / "network.net")
    x = np.repeat(np.load(root / "input.npy"), 9, axis=-1).transpose(2, 1, 0, 3)[None]
    run = run_samples(Simulator(graph), torch.from_numpy(np.ascontiguousarray(x)).long())
    depth = graph.depths()
    for layer in report["layers"]:
        macs = run.result.counters.projections[layer["name"]]["macs"]
        d = depth[layer["target"]]
        assert layer["macs"] == macs[d:d + 9].sum(), layer["name"]


def test_raw_input_needs_a_netx_file_and_no_dataset(two_channel_tiny, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((16, 16, 2, 4), dtype=np.int64))
    assert main([str(two_channel_tiny), "--input", str(tmp_path / "x.npy"), "--dataset", "digits-dvs"]) == 2
    assert "either --dataset or --input" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((5, 5, 2, 4), dtype=np.int64))
    assert main([str(two_channel_tiny), "--input", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the input layer" in err and len(err.strip().splitlines()) == 1
