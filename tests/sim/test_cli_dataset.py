"""snn-sim --dataset: accuracy and per-layer counts on digits-dvs, checked against simulate() run directly."""
import json

import h5py
import numpy as np
import torch

from snnchip.formats.netx import read_netx
from snnchip.sim import simulate
from snnchip.sim.cli import main
from snnchip.train.data import load_dataset


def write_stock_netx(path, rng):
    """A small CUBA network for 2x16x16 input in lava-dl's NetX vocabulary: input, conv, flatten, dense."""
    def neuron(group, vth):
        n = group.create_group("neuron")
        n["type"], n["iDecay"], n["vDecay"], n["vThMant"], n["refDelay"] = b"CUBA", 4096, 1024, vth, 1

    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        inp = layers.create_group("0")
        inp["type"], inp["shape"] = np.array([b"input"], dtype="S10"), np.array([2, 16, 16])
        neuron(inp, 0)
        conv = layers.create_group("1")
        conv["type"], conv["shape"] = np.array([b"conv"], dtype="S10"), np.array([8, 7, 7])
        conv["weight"] = rng.integers(-40, 80, (8, 2, 3, 3)).astype(np.float32)
        conv["stride"], conv["padding"], conv["dilation"], conv["groups"] = [2, 2], [0, 0], [1, 1], 1
        neuron(conv, 60)
        conv["bias"] = rng.integers(-2, 4, 8).astype(np.float32)   # integrates while the pipeline fills
        flat = layers.create_group("2")
        flat["type"], flat["shape"] = np.array([b"flatten"], dtype="S10"), np.array([392, 1, 1])
        dense = layers.create_group("3")
        dense["type"], dense["shape"] = np.array([b"dense"], dtype="S10"), np.array([10, 1, 1])
        dense["weight"] = rng.integers(-60, 100, (10, 392)).astype(np.float32)
        neuron(dense, 40)


def test_dataset_mode_reports_the_accuracy_and_counts_simulate_gives(tmp_path, capsys):
    net = tmp_path / "digits.net"
    write_stock_netx(net, np.random.default_rng(0))
    samples = 24
    assert main([str(net), "--dataset", "digits-dvs", "--samples", str(samples), "--batch-size", "10",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # independently: the same samples through simulate, readout = most output spikes
    graph = read_netx(net)
    data = load_dataset("digits-dvs", "test")
    x = torch.stack([torch.as_tensor(data[i][0]) for i in range(samples)])
    y = np.array([int(data[i][1]) for i in range(samples)])
    x = torch.cat([(x > 0).long(), torch.zeros(*x.shape[:-1], graph.latency(), dtype=torch.long)], dim=-1)
    # each population's state restarts when the sample reaches it (its depth), as a streaming deployment does
    res = simulate(graph, x, record=("spikes",), reset_interval=data[0][0].shape[-1])
    counts = res.spikes[graph.outputs[0].name].sum(-1)
    assert counts.sum() > 0, "the output layer must fire for the readout to mean anything"
    accuracy = float((counts.argmax(-1).numpy() == y).mean())
    assert report["samples"] == samples and report["accuracy"] == accuracy
    # per sample: each layer over its sample's window, [depth, depth + T); per_sample_stream: the whole padded runs
    T, depth = data[0][0].shape[-1], graph.depths()
    for name, layer in report["layers"].items():
        assert layer["output_spikes"] == float(res.spikes[name][..., depth[name]:depth[name] + T].sum()) / samples
    synops = sum(int(c["synops"].sum()) for c in res.counters.projections.values())
    assert synops > 0 and report["per_sample_stream"]["synops"] == synops / samples
    target = {q.name: q.target for q in graph.projections}
    windowed = sum(int(c["synops"][depth[target[n]]:depth[target[n]] + T].sum())
                   for n, c in res.counters.projections.items())
    assert report["per_sample"]["synops"] == windowed / samples
    # without that reset the conv layer's bias, integrated during the fill, changes what it sends (the bug fixed
    # in f0d6944): the comparison above can tell the two apart
    plain = simulate(graph, x, record=("spikes",))
    assert any(not torch.equal(plain.spikes[name], res.spikes[name]) for name in res.spikes)


def _digits(samples):
    data = load_dataset("digits-dvs", "test")
    x = torch.stack([torch.as_tensor(data[i][0]) for i in range(samples)])
    return (x > 0).long(), np.array([int(data[i][1]) for i in range(samples)])


def test_input_mode_runs_each_sample_as_if_alone_and_prints_its_class(tmp_path, capsys):
    """snn-sim NET --input X.npy classifies each sample as --dataset does (latency padding, per-depth reset):
    a batch, and the same samples as one stream with --sample-steps."""
    from snnchip.sim import run_samples
    from snnchip.sim.cli import to_lava_layout

    from small_models import small_ms_resnet
    from snnchip.export.recipe import export_model
    from snnchip.formats.netx import write_netx

    x, _ = _digits(8)
    net = tmp_path / "ms.net"         # an exported MS-ResNet: pipelined, a readout, biases that fill the pipeline
    write_netx(export_model(small_ms_resnet(3), calibration=x.double()).graph, net)
    graph = read_netx(net)
    run = run_samples(graph, x)
    expected, scores = run.predict().tolist(), run.scores().tolist()
    assert len({tuple(s) for s in scores}) == len(scores)      # every sample reads out differently
    np.save(tmp_path / "x.npy", to_lava_layout(x.numpy(), batched=True))
    assert main([str(net), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "samples" and report["predictions"] == expected and report["scores"] == scores
    stream = np.concatenate(list(to_lava_layout(x.numpy(), batched=True)), axis=-1)    # (x, y, f, 8 * T)
    np.save(tmp_path / "s.npy", stream)
    assert main([str(net), "--input", str(tmp_path / "s.npy"), "--sample-steps", str(x.shape[-1])]) == 0
    out = capsys.readouterr().out
    assert "predicted class per sample: " + " ".join(map(str, expected)) in out
    # --raw is the old behaviour: one stream as given, no padding, no reset (other classes on this network)
    assert main([str(net), "--input", str(tmp_path / "x.npy"), "--raw", "--json"]) == 0
    raw = json.loads(capsys.readouterr().out)
    assert raw["mode"] == "raw" and "predictions" not in raw
    # what the raw run would read out (the old default): not the samples' scores
    plain = simulate(graph, x).outputs[graph.readout][..., -1].reshape(len(x), -1)
    assert plain.tolist() != scores


def test_record_works_with_dataset(tmp_path, capsys):
    net = tmp_path / "digits.net"
    write_stock_netx(net, np.random.default_rng(0))
    graph = read_netx(net)
    assert main([str(net), "--dataset", "digits-dvs", "--samples", "5", "--batch-size", "3", "--record",
                 str(tmp_path / "rec"), "--json"]) == 0
    capsys.readouterr()
    index = json.loads((tmp_path / "rec" / "index.json").read_text())
    x, y = _digits(5)
    from snnchip.sim import run_samples
    run = run_samples(graph, x, record=("spikes", "v"))
    assert index["labels"] == y.tolist() and index["predictions"] == run.predict().tolist()
    for entry in index["layers"]:
        spikes = np.load(tmp_path / "rec" / entry["spikes"])
        assert spikes.shape[0] == 5 and spikes.shape[-1] == x.shape[-1] + graph.latency()
        assert entry["depth"] == graph.depths()[entry["layer"]]
    last = index["layers"][-1]
    v = np.load(tmp_path / "rec" / last["v"])
    np.testing.assert_array_equal(v, run.result.v[last["layer"]].numpy())
