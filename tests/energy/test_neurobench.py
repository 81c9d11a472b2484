"""NeuroBench 2.3's own metrics on a fixed snnTorch model and input (recorded by neurobench/make_reference.py,
re-made by the slow test in a virtual environment of its own) against snnchip's counts of the same network."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate
from snnchip.sim.counters import fan_out

HERE = Path(__file__).with_name("neurobench")
REFERENCE = json.loads((HERE / "reference.json").read_text())
ROOT = Path(__file__).resolve().parents[2]


def reference_graph() -> Graph:
    """The reference model as an snnchip float graph: a graded input relay, LIF populations with the conv /
    linear biases as population biases (snnTorch's Leaky with beta b is du = 1, dv = 1 - b; reset to zero)."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in REFERENCE["model"]["params"].items()}
    beta, threshold = REFERENCE["model"]["beta"], REFERENCE["model"]["threshold"]

    def lif(name, shape, bias, output=False):
        return Population(name, shape, Neuron(threshold=threshold, du=1.0, dv=1.0 - beta, reset="hard"),
                          bias=bias, is_output=output)
    pops = [Population("input", tuple(REFERENCE["model"]["input_shape"]), Neuron(threshold=None, graded=True),
                       is_input=True),
            lif("lif1", (4, 8, 8), params["conv1.bias"].reshape(4, 1, 1)),
            lif("lif2", (8, 4, 4), params["conv2.bias"].reshape(8, 1, 1)),
            lif("lif3", (10,), params["fc.bias"], output=True)]
    projs = [Projection("conv1", "input", "lif1", "conv", params["conv1.weight"], padding=(1, 1)),
             Projection("conv2", "lif1", "lif2", "conv", params["conv2.weight"], stride=(2, 2), padding=(1, 1)),
             Projection("fc", "lif2", "lif3", "dense", params["fc.weight"])]
    return Graph(pops, projs)


def reference_input() -> torch.Tensor:
    """`[N, C, H, W, T]` (the reference is `[N, T, C, H, W]`, NeuroBench's layout)."""
    return torch.as_tensor(np.moveaxis(np.asarray(REFERENCE["input"], dtype=np.float64), 1, -1))


def test_snnchip_reproduces_the_reference_networks_spikes_and_neurobenchs_dense_and_sparsity():
    graph = reference_graph()
    res = simulate(graph, reference_input(), record=("spikes",))
    want = np.moveaxis(np.asarray(REFERENCE["output_spikes"]), 1, -1)
    np.testing.assert_array_equal(res.spikes["lif3"].numpy(), want)
    steps, batch = want.shape[-1], want.shape[0]
    spiking = [p for p in graph.populations if p.neuron.threshold is not None]
    spikes = sum(float(res.spikes[p.name].sum()) for p in spiking)
    sparsity = 1 - spikes / (sum(p.size for p in spiking) * steps * batch)
    assert sparsity == pytest.approx(REFERENCE["results"]["ActivationSparsity"], rel=1e-12)
    # NeuroBench's Dense: every real connection (no padding taps) at every step, per sample
    shapes = {p.name: p.shape for p in graph.populations}
    for q in graph.projections:
        dense = int(fan_out(q, shapes[q.source], shapes[q.target]).sum()) * steps
        assert dense == REFERENCE["per_layer"][q.name]["dense"]


@pytest.mark.slow
def test_reference_is_what_neurobench_computes(tmp_path):
    """Builds build/neurobench-venv (NeuroBench 2.3.0 and snnTorch 1.0.0 from PyPI, everything else shared with
    .venv) and re-runs the recording script: NeuroBench's results equal the recorded ones."""
    venv = ROOT / "build" / "neurobench-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        site = Path(next((venv / "lib").glob("python3*"))) / "site-packages"
        (site / "snnchip-main.pth").write_text(next(p for p in map(Path, sys.path) if p.name == "site-packages"
                                                    and (p / "torch").is_dir()).as_posix() + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "neurobench==2.3.0",
                        "snntorch==1.0.0"], check=True)
    out = tmp_path / "reference.json"
    subprocess.run([str(python), str(HERE / "make_reference.py"), str(out)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": ""})
    fresh = json.loads(out.read_text())
    assert fresh["neurobench"] == "2.3.0"
    assert fresh["results"] == REFERENCE["results"] and fresh["per_layer"] == REFERENCE["per_layer"]
    assert fresh["input"] == REFERENCE["input"] and fresh["model"] == REFERENCE["model"]


def test_neurobench_block_equals_neurobenchs_own_metrics():
    from snnchip.energy.count import count_graph
    from snnchip.energy.report import build_report
    x = reference_input()
    counts = count_graph(reference_graph(), [x[:2], x[2:]])
    block = build_report(counts, [], ann_frames=1, meta={})["neurobench"]
    want = REFERENCE["results"]
    assert block["ParameterCount"] == want["ParameterCount"]
    assert block["SynapticOperations"] == want["SynapticOperations"]
    assert block["MembraneUpdates"] == want["MembraneUpdates"]
    assert block["ActivationSparsity"] == pytest.approx(want["ActivationSparsity"], rel=1e-12)
    assert round(block["ConnectionSparsity"], 4) == want["ConnectionSparsity"]       # NeuroBench rounds to 4
    # Footprint: a graph has no neuron buffers; snnTorch stores beta, threshold, ... of each Leaky as buffers
    assert block["Footprint"] == REFERENCE["footprint_bytes"]["parameters"]
    assert block["Footprint"] + REFERENCE["footprint_bytes"]["buffers"] == want["Footprint"]
    # the structural counts beside: zero weights included, so larger here (a quarter of the weights are zero)
    assert block["structural"]["macs"] > want["SynapticOperations"]["Effective_MACs"]
    assert block["structural"]["synops"] > want["SynapticOperations"]["Effective_ACs"]
    per_layer = {layer.name: layer.effective_ops / counts.samples for layer in counts.layers}
    assert per_layer == {name: v["effective"] for name, v in REFERENCE["per_layer"].items()}


def test_effective_counts_equal_structural_ones_without_zero_weights():
    from snnchip.energy.count import count_graph
    graph = reference_graph()
    for q in graph.projections:
        q.weight = np.where(q.weight == 0, 0.125, q.weight)
    counts = count_graph(graph, [reference_input()])
    for layer in counts.layers:
        assert layer.effective_ops == layer.synops + layer.macs > 0
        assert layer.zero_weights == 0
