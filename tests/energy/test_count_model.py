"""Counts from the float model in training against the simulator's counters on its lowered graph (digits-dvs).

On the same spikes (float graph vs float model) every projection's synaptic ops are identical; where spikes
differ (fixed point, or a perturbed threshold) the difference is exactly what the spike differences predict."""
import json

import numpy as np
import pytest
import torch

from snnchip.energy.cli import main
from snnchip.energy.compare import compare
from snnchip.energy.count import count_graph, count_model, graph_ops_from_model, run_model
from snnchip.export.lower import lower
from snnchip.export.quantize import encode_input, quantize
from snnchip.export.timing import pipeline
from snnchip.train.checkpoint import save_checkpoint
from snnchip.train.data import load_dataset
from snnchip.train.models import build_model, model_config

SAMPLES = 6


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = model_config("ms_resnet8", in_channels=2, input_size=(16, 16), T=8, widths=(8, 16, 16),
                          zero_init_residual=False)
    return build_model(config).double().eval()


@pytest.fixture(scope="module")
def frames():
    data = load_dataset("digits-dvs", "test")
    return torch.stack([torch.as_tensor(data[i][0], dtype=torch.float64) for i in range(SAMPLES)])


@pytest.fixture(scope="module")
def activity(model, frames):
    act, samples, steps = run_model(model, [frames[:3], frames[3:]])
    assert (samples, steps) == (SAMPLES, 8)
    return act


@pytest.mark.parametrize("timing", ["ideal", "pipelined"])
def test_float_graph_counts_equal_float_model(model, frames, activity, timing):
    graph = lower(model, input_kind="binary")
    if timing == "pipelined":
        graph = pipeline(graph)
    sim = count_graph(graph, [frames[:2], frames[2:]])
    expected = graph_ops_from_model(graph, activity)
    assert sum(e["synops"] for e in expected.values()) > 0
    for layer in sim.layers:
        e = expected[layer.name]
        assert (layer.events, layer.synops, layer.macs) == (e["events"], e["synops"], e["macs"]), layer.name
    names = graph.meta["torch_names"]
    for nl in sim.neuron_layers:
        if nl.name in names:
            np.testing.assert_array_equal(nl.spike_map, activity.spikes[names[nl.name]].numpy().reshape(-1))
    report = compare(graph, activity, sim, SAMPLES)
    assert report["explained"] and all(r["synops_diff"] == 0 and r["neurons_differing"] == 0
                                       for r in report["layers"])


def test_model_layers_match_their_graph_projections(model, frames):
    """conv1 of a block reads lif1 and feeds lif2 in both the model and the graph: same synops from two counters."""
    counts = count_model(model, [frames], (2, 16, 16))
    graph = lower(model, input_kind="binary")
    sim = {l.name: l for l in count_graph(graph, [frames]).layers}
    checked = 0
    for layer in counts.layers:
        if layer.name.endswith("conv1"):
            block = layer.name[:-len("conv1")]
            proj = sim[f"{block}lif1->{block}lif2"]
            assert layer.synops == proj.synops and layer.events == proj.events
            assert (layer.real_synapses, layer.effective_ops) == (proj.real_synapses, proj.effective_ops)
            checked += 1
    assert checked == 3
    fc = next(l for l in counts.layers if l.role == "fc")
    assert fc.synops == sim["head.lif->readout"].synops
    # the graph folds the global average pool into the FC: each FC weight is a synapse of every position
    positions = int(np.prod(graph.population("head.lif").shape[1:]))
    assert fc.real_synapses * positions == sim["head.lif->readout"].real_synapses
    assert fc.effective_ops == sim["head.lif->readout"].effective_ops
    # one convention: the frames are 0/1, so the encoding layer accumulates spikes in both paths
    stem = next(l for l in counts.layers if l.role == "encoding")
    first = sim["input->stages.0.0.lif1"]
    assert stem.spike_driven and stem.macs == 0 and stem.synops == first.synops > 0
    assert stem.real_synapses == first.real_synapses and stem.effective_ops == first.effective_ops
    # NeuroBench's membrane updates of each neuron layer, from the model's hooks and from the simulator
    graph_layers = {graph.meta["torch_names"].get(nl.name): nl for nl in count_graph(graph, [frames]).neuron_layers}
    for nl in counts.neuron_layers:
        assert nl.membrane_updates == graph_layers[nl.name].membrane_updates > 0, nl.name


def test_spike_differences_predict_synop_differences(model, frames, activity):
    graph = lower(model, input_kind="binary")
    perturbed = graph.copy()
    pop = perturbed.population("stages.1.0.lif1")
    pop.neuron.threshold *= 0.9
    report = compare(perturbed, activity, count_graph(perturbed, [frames]), SAMPLES)
    rows = {r["population"]: r for r in report["layers"]}
    assert rows["stages.1.0.lif1"]["neurons_differing"] > 0 and rows["stages.1.0.lif1"]["synops_diff"] > 0
    for r in report["layers"]:
        assert r["synops_diff"] == pytest.approx(r["synops_diff_predicted"], abs=1e-9)
    assert report["explained"]


def test_fixed_point_differences_are_explained(model, frames, activity):
    fixed, _ = quantize(pipeline(lower(model, input_kind="binary")), calibration=frames)
    sim = count_graph(fixed, [encode_input(fixed, frames)])
    report = compare(fixed, activity, sim, SAMPLES)
    assert report["explained"]
    for r in report["layers"]:
        assert r["synops_diff"] == pytest.approx(r["synops_diff_predicted"], abs=1e-9)
        assert (r["synops_diff"] == 0) or r["neurons_differing"] > 0  # only where spikes differ


def test_cli_checkpoint_report(model, tmp_path, capsys):
    path = tmp_path / "m.pt"
    save_checkpoint(str(path), model.float())
    html = tmp_path / "r.html"
    code = main([str(path), "--dataset", "digits-dvs", "--samples", "4", "--batch-size", "2", "--json",
                 "--html", str(html), "--markdown", str(tmp_path / "r.md")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 4 and report["T"] == 8 and report["ann_frames"] == 8
    roles = [l["role"] for l in report["layers"]]
    assert roles[0] == "encoding" and roles[-1] == "fc" and "shortcut" in roles
    stem = report["layers"][0]
    # digits-dvs frames are 0/1: binary spikes are accumulated (one convention with the NetX path)
    assert stem["input"] == "spikes" and stem["synops"] > 0 and stem["macs"] == 0
    nb = report["neurobench"]
    ops, totals = nb["SynapticOperations"], report["totals"]["per_sample"]
    # effective counts skip zero weights: never more than the structural ones (MACs: the membrane shortcut convs)
    assert 0 < ops["Effective_ACs"] <= totals["synops"] and 0 < ops["Effective_MACs"] <= totals["macs"]
    assert nb["ParameterCount"] == sum(p.numel() for p in model.parameters()) and 0 < nb["ActivationSparsity"] < 1
    for layer in report["layers"]:
        e = layer["energy_pj"]["cmos45nm/fp32"]
        assert e["snn"] == pytest.approx(layer["synops"] * 0.9 + layer["macs"] * 4.6)
        assert e["ann"] == pytest.approx(layer["ann_flops"] * 4.6)
    assert "paper_convention" in report and html.read_text().count("data:image/png;base64,") == 5
    model.double()
