"""snn-sim: recording in Lava's layout, JSON, and one-line errors."""
import json

import numpy as np
import pytest

from lava_dl_files import stock_netx_dir
from snnchip.sim.cli import main

ROOT = stock_netx_dir()


def test_record_writes_every_layer_in_the_layout_of_lavas_ground_truth_files(tmp_path, capsys):
    gts = ROOT / "gts" / "pilotnet_lif"
    rc = main([str(gts / "network.net"), "--input-bias", str(gts / "image.npy"), "--steps", "16",
               "--reset-interval", "16", "--record", str(tmp_path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 16 and report["counters"]["per_sample"]["synops"] > 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert [entry["index"] for entry in index["layers"]] == list(range(10))
    # layer i is netx's net.layers[i]: input, conv-0..conv-4, fc-0..fc-3 in the shipped file names
    for i, name in [(0, "input"), (1, "conv-0"), (5, "conv-4"), (6, "fc-0"), (8, "fc-2")]:
        ours = np.load(tmp_path / f"layer-{i}.npy")
        theirs = np.load(gts / f"{name}.npy")
        assert ours.dtype == theirs.dtype == bool and ours.shape == theirs.shape[:-1] + (16,)
        np.testing.assert_array_equal(ours, theirs[..., :16])
        if i:
            u = np.load(tmp_path / f"layer-{i}-u.npy")
            gt_u = np.load(gts / f"{name}-u.npy")
            assert u.dtype == gt_u.dtype and u.shape == gt_u.shape[:-1] + (16,)
            np.testing.assert_array_equal(u, gt_u[..., :16])
    assert np.load(tmp_path / "layer-3-v.npy").shape == (24, 7, 48, 16)


def test_batched_input_keeps_its_batch_axis(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((2, 16, 16, 3, 5)) < 0.3).astype(np.int8)         # (N, x, y, f, t)
    np.save(tmp_path / "x.npy", x)
    assert main([str(ROOT / "tiny.net"), "--input", str(tmp_path / "x.npy"), "--raw", "--record",
                 str(tmp_path / "r")]) == 0
    assert np.load(tmp_path / "r" / "layer-1.npy").shape == (2, 6, 6, 24, 5)
    single = tmp_path / "x0.npy"
    np.save(single, x[1])
    assert main([str(ROOT / "tiny.net"), "--input", str(single), "--raw", "--record", str(tmp_path / "r1")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "r1" / "layer-2-v.npy"),
                                  np.load(tmp_path / "r" / "layer-2-v.npy")[1])


@pytest.mark.parametrize("case", ["shape", "nonint", "corrupt", "empty", "truncated", "missing", "nothing"])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, case):
    net = str(ROOT / "tiny.net")
    args = {"shape": lambda: (np.save(tmp_path / "x.npy", np.zeros((64, 10))),
                              [net, "--input", str(tmp_path / "x.npy")]),
            "nonint": lambda: (np.save(tmp_path / "x.npy", np.full((16, 16, 3, 4), 0.5)),
                               [net, "--input", str(tmp_path / "x.npy")]),
            "corrupt": lambda: ((tmp_path / "bad.net").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40),
                                [str(tmp_path / "bad.net"), "--input-bias", "x", "--steps", "2"]),
            "empty": lambda: ((tmp_path / "x.npy").write_bytes(b""), [net, "--input", str(tmp_path / "x.npy")]),
            "truncated": lambda: (np.save(tmp_path / "x.npy", np.zeros((16, 16, 3, 4), dtype=np.int64)),
                                  (tmp_path / "x.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:300]),
                                  [net, "--input", str(tmp_path / "x.npy")]),
            "missing": lambda: (None, [str(tmp_path / "none.net"), "--input-bias", "x", "--steps", "2"]),
            "nothing": lambda: (None, [net])}[case]()[-1]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
