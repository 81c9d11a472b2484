"""ONNX step graph: looping it in onnxruntime over T gives the spikes of the torch step module and of simulate."""
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from snnchip.errors import InputError
from snnchip.export.lower import lower
from snnchip.formats.onnx_step import StepGraph, export_onnx
from snnchip.export.timing import pipeline
from snnchip.sim import simulate
from snnchip.train.models import build_model, model_config

T = 6


def small_graph(shortcut="composed", pipelined=True):
    torch.manual_seed(0)
    model = build_model(model_config("ms_resnet8", widths=(4, 4, 8), in_channels=2, num_classes=3,
                                     input_size=(8, 8), T=T)).eval()
    graph = lower(model, shortcut=shortcut)
    graph = pipeline(graph) if pipelined else graph
    for proj in graph.projections:            # the step graph computes in float32
        proj.weight = proj.weight.astype(np.float32)
    return model, graph


def run_onnx(path, x):
    """x [N, *shape, T] -> {output name: [N, *shape, T]} by looping the step graph from a zero state."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["snnchip.step_graph"])
    n = x.shape[0]
    state = {}
    for arg in session.get_inputs()[1:]:
        state[arg.name] = np.zeros([n if d == "N" else d for d in arg.shape], dtype=np.float32)
    results = {name: [] for name in meta["outputs"] if not name.endswith("_next")}
    for t in range(x.shape[-1]):
        out = session.run(None, {"x": x[..., t].astype(np.float32), **state})
        named = dict(zip(meta["outputs"], out))
        for name in results:
            results[name].append(named[name])
        state = {name: named[f"{name}_next"] for name in state}
    return {name: np.stack(v, axis=-1) for name, v in results.items()}, meta


@pytest.mark.parametrize("shortcut, pipelined", [("composed", True), ("relay", True), ("composed", False)])
def test_onnx_loop_matches_torch_step_and_simulate(tmp_path, shortcut, pipelined):
    model, graph = small_graph(shortcut, pipelined)
    path = tmp_path / "step.onnx"
    export_onnx(graph, path)
    x = (torch.rand(4, 2, 8, 8, T + graph.latency(), generator=torch.Generator().manual_seed(1)) < 0.3).float()
    got, meta = run_onnx(path, x.numpy())
    out = graph.outputs[0]
    i = [p["index"] for p in meta["populations"] if p["name"] == out.name][0]
    assert meta["input_population"] == graph.inputs[0].name and meta["timing"] == graph.timing

    step = StepGraph(graph)
    state = step.initial_state(4)
    volts = []
    with torch.no_grad():
        for t in range(x.shape[-1]):
            res = step(x[..., t], *state)
            volts.append(res[len(step.outputs)])
            state = list(res[2 * len(step.outputs):])
    np.testing.assert_allclose(got[f"y_{i}"], torch.stack(volts, -1).numpy(), rtol=1e-5, atol=1e-5)

    sim = simulate(graph, x, record=("spikes",))
    spiking = [p for p in graph.populations if p.neuron.threshold is not None and not p.neuron.graded]
    reference = sim.outputs[out.name].numpy()
    # The readout integrates every upstream spike: one differing spike anywhere would move it by a weight.
    np.testing.assert_allclose(got[f"y_{i}"], reference, rtol=1e-4, atol=1e-4)
    assert sum(float(sim.spikes[p.name].sum()) for p in spiking) > 0
    assert np.array_equal(np.argmax(got[f"y_{i}"][..., -1], 1), np.argmax(reference[..., -1], 1))


def test_onnx_export_rejects_fixed_graphs_and_bad_folders(tmp_path):
    from snnchip.export.quantize import quantize
    _, graph = small_graph()
    fixed, _ = quantize(graph)
    with pytest.raises(InputError):
        export_onnx(fixed, tmp_path / "f.onnx")
    with pytest.raises(InputError):
        export_onnx(graph, tmp_path / "missing" / "f.onnx")
    assert list(tmp_path.iterdir()) == []


def scores_with_onnx_only(path, x, reset=True):
    """A consumer that knows only the ONNX file and its metadata: samples x [N, *shape, T] -> class scores
    [N, classes] (the argmax is the class)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["snnchip.step_graph"])
    assert [a.name for a in session.get_inputs()] == meta["inputs"]
    assert [a.name for a in session.get_outputs()] == meta["outputs"]
    n, T = x.shape[0], meta["steps_per_sample"]
    assert x.shape[-1] == T
    x = np.concatenate([x, np.zeros((*x.shape[:-1], meta["latency"]), x.dtype)], axis=-1)
    shapes = {a.name: [n if not isinstance(d, int) else d for d in a.shape] for a in session.get_inputs()}
    state = {s["input"]: np.zeros(shapes[s["input"]], np.float32) for s in meta["state"]}
    depth = {p["index"]: p["depth"] for p in meta["populations"]}
    readout = next(p for p in meta["populations"] if p["name"] == meta["readout"])
    scores = None
    for t in range(x.shape[-1]):
        for i, d in depth.items():
            if reset and (t - d) % T == 0:
                for name in (f"u_{i}", f"v_{i}"):
                    if name in state:
                        state[name] = np.zeros_like(state[name])
        named = dict(zip(meta["outputs"], session.run(None, {"x": x[..., t].astype(np.float32), **state})))
        state = {s["input"]: named[s["output"]] for s in meta["state"]}
        if t == readout["depth"] + T - 1:
            scores = named[f"y_{readout['index']}"].reshape(n, -1)
    return scores


def test_a_consumer_of_only_the_onnx_file_and_its_metadata_gets_snn_sims_classes(tmp_path):
    """The metadata names only inputs the graph has and carries each population's depth and the sample rule."""
    from snnchip.sim import run_samples

    model, graph = small_graph("composed", pipelined=True)
    for pop in graph.populations:           # a bias makes the per-depth reset matter
        if pop.bias is not None:
            pop.bias = np.asarray(pop.bias) + 0.05
    path = tmp_path / "step.onnx"
    export_onnx(graph, path)
    x = (torch.rand(16, 2, 8, 8, T, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    expected = run_samples(graph, x).scores().numpy()
    got = scores_with_onnx_only(path, x.numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    # the reset the metadata describes is needed: without it the readout differs
    assert np.abs(scores_with_onnx_only(path, x.numpy(), reset=False) - expected).max() > 1e-2
