"""snn-energy CHECKPOINT --compare-fixed prices exactly the network snn-export writes for that checkpoint:
exported the same way (the shared recipe, calibrated on the training split) or read from the given .net."""
import json

import numpy as np
import pytest

from snnchip.energy.cli import _fixed_network, build_parser
from snnchip.energy.cli import main as energy_main
from snnchip.export.cli import main as export_main
from snnchip.formats.netx import read_netx
from small_models import small_ms_resnet
from snnchip.train.checkpoint import load_model, save_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small digits-dvs MS-ResNet with random norm statistics, and the .net snn-export writes for it."""
    model = small_ms_resnet(3)
    folder = tmp_path_factory.mktemp("compare")
    ckpt, net = folder / "model.pt", folder / "model.net"
    save_checkpoint(str(ckpt), model)
    assert export_main([str(ckpt), "--target", "loihi", "--calibrate", "digits-dvs", "--samples", "64",
                        "--eval-samples", "0", "-o", str(net)]) == 0
    return ckpt, net


def same_network(a, b) -> None:
    assert [p.name for p in a.populations] == [p.name for p in b.populations]
    for p, q in zip(a.populations, b.populations):
        assert (p.neuron.threshold, p.neuron.du, p.neuron.dv, p.bias_exp) == \
               (q.neuron.threshold, q.neuron.du, q.neuron.dv, q.bias_exp), p.name
        np.testing.assert_array_equal(p.bias_full(), q.bias_full(), err_msg=p.name)
    for p, q in zip(a.projections, b.projections):
        assert (p.name, p.weight_exp, p.num_message_bits) == (q.name, q.weight_exp, q.num_message_bits)
        np.testing.assert_array_equal(np.asarray(p.weight), np.asarray(q.weight), err_msg=p.name)
        np.testing.assert_array_equal(np.asarray(p.delay), np.asarray(q.delay), err_msg=p.name)


def test_exported_here_is_the_network_snn_export_wrote(exported):
    ckpt, net = exported
    args = build_parser().parse_args([str(ckpt), "--dataset", "digits-dvs", "--compare-fixed",
                                      "--calibration-samples", "64"])
    here = _fixed_network(args, load_model(str(ckpt)).double().eval())
    same_network(here, read_netx(net))


def test_compare_fixed_counts_the_given_network(exported, capsys, tmp_path):
    ckpt, net = exported
    out = tmp_path / "energy.json"
    assert energy_main([str(ckpt), "--dataset", "digits-dvs", "--samples", "8", "--compare-fixed", str(net),
                        "-o", str(out)]) == 0
    comparison = json.loads(out.read_text())["comparison"]
    assert comparison["network"] == str(net) and comparison["graph"] == "fixed"
    assert comparison["explained"] and comparison["synops_sim"] > 0
    capsys.readouterr()


def test_compare_fixed_refuses_a_stock_file(exported, capsys):
    from lava_dl_files import stock_netx_dir
    ckpt, _ = exported
    rc = energy_main([str(ckpt), "--dataset", "digits-dvs", "--samples", "4", "--compare-fixed",
                      str(stock_netx_dir() / "tiny.net")])
    err = capsys.readouterr().err
    assert rc == 2 and "not a network snn-export wrote from a checkpoint" in err and len(err.splitlines()) == 1


def _report(argv, capsys) -> dict:
    assert energy_main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_net_report_prices_the_trained_architecture_as_the_checkpoint_report_does(exported, capsys, tmp_path):
    """The ANN baseline of snn-energy NET is the model's architecture (snn-export records it), not the
    deployment's composed projections; a file without it says its baseline is the deployment graph."""
    import h5py
    import shutil
    from snnchip.formats.netx_read import decode_meta
    from snnchip.formats.netx_write import encode_meta

    ckpt, net = exported
    data = ["--dataset", "digits-dvs", "--samples", "4"]
    from_ckpt = _report([str(ckpt), *data], capsys)
    from_net = _report([str(net), *data], capsys)
    for key in ("ann_flops", "params"):
        assert from_net["totals"]["per_sample"][key] == from_ckpt["totals"]["per_sample"][key], key
    assert from_net["ann_baseline"]["source"].startswith("the trained model's architecture")
    for name in from_ckpt["totals"]["energy_pj_per_sample"]:
        assert from_net["totals"]["energy_pj_per_sample"][name]["ann"] == \
            pytest.approx(from_ckpt["totals"]["energy_pj_per_sample"][name]["ann"])

    stock = tmp_path / "no_arch.net"
    shutil.copy(net, stock)
    with h5py.File(stock, "r+") as f:
        ext = f["snnchip"]
        meta = decode_meta(ext.attrs["meta"])
        del meta["model_config"]
        ext.attrs["meta"] = encode_meta(meta)
    deployment = _report([str(stock), *data], capsys)
    assert deployment["ann_baseline"]["source"].startswith("the deployment graph's projections")
    # the composed shortcut projections and the GAP folded into the FC make the deployment's dense count larger
    assert deployment["totals"]["per_sample"]["ann_flops"] > from_net["totals"]["per_sample"]["ann_flops"]


def test_snn_sim_counts_per_sample_what_snn_energy_counts(exported, capsys):
    """snn-sim --dataset --json reports per sample the counts of each sample's window (T steps of every layer),
    equal to snn-energy NET's on the same samples; the whole padded runs are `per_sample_stream`."""
    from snnchip.sim.cli import main as sim_main

    _, net = exported
    energy = _report([str(net), "--dataset", "digits-dvs", "--samples", "6", "--batch-size", "4"], capsys)
    assert sim_main([str(net), "--dataset", "digits-dvs", "--samples", "6", "--batch-size", "4", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    per = sim["per_sample"]
    totals = energy["totals"]["per_sample"]
    assert per["synops"] == pytest.approx(totals["synops"], rel=1e-12)
    assert per["macs"] == pytest.approx(totals["macs"], rel=1e-12)
    # named difference: snn-sim also counts the input population's neuron updates (snn-energy counts neuron layers)
    graph = read_netx(net)
    assert per["neuron_updates"] - graph.inputs[0].size * graph.steps == totals["neuron_updates"]
    by_layer = {l["name"]: l for l in energy["layers"]}
    for name, p in sim["projections"].items():
        assert p["synops"] == pytest.approx(by_layer[name]["synops"], rel=1e-12), name
    assert sim["per_sample_stream"]["synops"] > per["synops"]      # the latency steps of the padded runs


def test_net_report_has_the_plans_static_cost(exported, capsys, tmp_path):
    """Static cost = cores of the resource plan x time steps per sample; priced only by a chip file that gives
    a static energy per core and step (the built-in chips' sources publish none)."""
    from snnchip.plan import load_chip, plan_graph
    from snnchip.plan.chip import CHIP_DIR

    _, net = exported
    graph = read_netx(net)
    cores = plan_graph(graph, load_chip("loihi")).cores
    data = [str(net), "--dataset", "digits-dvs", "--samples", "2"]
    static = _report(data, capsys)["static"]
    assert (static["chip"], static["cores"], static["steps_per_sample"]) == ("loihi", cores, graph.steps)
    assert static["core_steps_per_sample"] == cores * graph.steps and static["energy_pj_per_sample"] is None
    assert "not_priced" in static

    chip = json.loads((CHIP_DIR / "loihi.json").read_text())
    chip["sources"]["mine"] = "a measurement of my own"
    chip["figures"]["static_energy_per_core_step_pj"] = {"value": 2.5, "source": "mine", "published": False,
                                                         "label": "static energy", "note": "assumed for the test"}
    (tmp_path / "mine.json").write_text(json.dumps(chip))
    static = _report(data + ["--chip", str(tmp_path / "mine.json")], capsys)["static"]
    assert static["energy_pj_per_sample"] == cores * graph.steps * 2.5
    assert static["figure"]["source"] == "a measurement of my own"
    chip["figures"]["static_energy_per_core_step_pj"]["value"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(chip))
    assert energy_main(data + ["--chip", str(tmp_path / "bad.json")]) == 2
    assert "static_energy_per_core_step_pj" in capsys.readouterr().err
