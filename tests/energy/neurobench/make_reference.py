"""NeuroBench 2.3's own metrics of a fixed snnTorch model on a fixed input, recorded as `reference.json`.

Runs in a virtual environment that has NeuroBench and snnTorch (not snnchip's: NeuroBench pins nothing we use,
but pulls torchaudio and snnTorch, which the main environment does not need). `tests/energy/test_neurobench.py`
builds that environment under build/neurobench-venv and reruns this script (slow test); by hand:

    python -m venv build/neurobench-venv
    echo "$PWD/.venv/lib/python3.11/site-packages" > build/neurobench-venv/lib/python3.11/site-packages/main.pth
    build/neurobench-venv/bin/pip install --no-deps neurobench==2.3.0 snntorch==1.0.0
    build/neurobench-venv/bin/python tests/energy/neurobench/make_reference.py [OUT.json]

The model: conv 2->4 (3x3, pad 1, bias) on a graded input, LIF, conv 4->8 (3x3, stride 2, pad 1, bias), LIF,
flatten, linear 128->10 (bias), LIF (the output). LIF = snntorch.Leaky(beta 0.5, threshold 1, reset to zero at
once: reset_delay=False). Weights are multiples of 1/8 (biases of 1/16), a quarter of the weights zero, inputs
small integers: every sum is exact in float32, so another simulator can reproduce every spike. The JSON holds the
weights, the input and NeuroBench's results: the six metrics of `Benchmark.run`, and per connection layer what
NeuroBench's own `single_layer_MACs` counts (effective and dense), summed over the steps.
"""
import json
import sys
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from neurobench.benchmarks import Benchmark
from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
from neurobench.metrics.utils.layers import single_layer_MACs
from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
from neurobench.models import SNNTorchModel

SEED, N, T, SHAPE, BETA, THRESHOLD = 16, 4, 6, (2, 8, 8), 0.5, 1.0


def fixed_weights(rng):
    def weights(shape, scale):
        w = rng.integers(-6, 7, size=shape) / 8.0 * scale
        w[rng.random(shape) < 0.25] = 0.0
        return w
    return {"conv1.weight": weights((4, 2, 3, 3), 1.0), "conv1.bias": rng.integers(-4, 5, 4) / 16.0,
            "conv2.weight": weights((8, 4, 3, 3), 1.0), "conv2.bias": rng.integers(-4, 5, 8) / 16.0,
            "fc.weight": weights((10, 128), 1.0), "fc.bias": rng.integers(-4, 5, 10) / 16.0}


def build(params):
    def lif(output=False):
        return snn.Leaky(beta=BETA, threshold=THRESHOLD, reset_mechanism="zero", reset_delay=False,
                         init_hidden=True, output=output)
    net = torch.nn.Sequential()
    net.add_module("conv1", torch.nn.Conv2d(2, 4, 3, padding=1))
    net.add_module("lif1", lif())
    net.add_module("conv2", torch.nn.Conv2d(4, 8, 3, stride=2, padding=1))
    net.add_module("lif2", lif())
    net.add_module("flatten", torch.nn.Flatten())
    net.add_module("fc", torch.nn.Linear(128, 10))
    net.add_module("lif3", lif(output=True))
    with torch.no_grad():
        for key, value in params.items():
            net.get_parameter(key).copy_(torch.as_tensor(value, dtype=torch.float32))
    # inference only: NeuroBench deep-copies layers whose hooks hold the recorded inputs, which must be leaves
    return net.requires_grad_(False)


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    params = fixed_weights(rng)
    x = rng.integers(0, 4, size=(N, T, *SHAPE)) * (rng.random((N, T, *SHAPE)) < 0.4)   # [N, T, C, H, W]
    x[:, :, 0, 0, 0] = 3                   # every step has a graded (non-binary) value: NeuroBench counts MACs
    data = (torch.as_tensor(x, dtype=torch.float32), torch.zeros(N, dtype=torch.long))
    net = build(params)
    model = SNNTorchModel(net)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=N)
    bench = Benchmark(model, loader, [], [], [[Footprint, ParameterCount, ConnectionSparsity],
                                             [ActivationSparsity, MembraneUpdates, SynapticOperations]])
    results = {k: (float(v) if not isinstance(v, dict) else {a: float(b) for a, b in v.items()})
               for k, v in bench.run(quiet=True).items()}
    # per layer, with NeuroBench's own counting function on the same inputs (the hooks' recorded inputs)
    per_layer = {name: {"effective": 0.0, "dense": 0.0, "spiking_steps": 0} for name in ("conv1", "conv2", "fc")}
    recorded = {name: [] for name in per_layer}
    hooks = [net.get_submodule(name).register_forward_pre_hook(
        lambda module, inputs, name=name: recorded[name].append(inputs[0].detach().clone()))
        for name in per_layer]
    model(data[0])
    for h in hooks:
        h.remove()
    for name, inputs in recorded.items():
        layer = net.get_submodule(name)
        for inp in inputs:
            ops, spiking = single_layer_MACs(inp, layer)
            dense, _ = single_layer_MACs(inp, layer, total=True)
            per_layer[name]["effective"] += float(ops) / N
            per_layer[name]["dense"] += float(dense) / N
            per_layer[name]["spiking_steps"] += int(spiking)
    spikes = model(data[0])                                              # [N, T, 10]
    fresh = build(params)
    doc = {"format": "neurobench-reference", "neurobench": __import__("neurobench").__version__,
           "snntorch": snn.__version__, "torch": torch.__version__,
           "model": {"input_shape": list(SHAPE), "T": T, "beta": BETA, "threshold": THRESHOLD,
                     "reset": "zero, immediately (reset_delay=False)", "dtype": "float32",
                     "params": {k: np.asarray(v).tolist() for k, v in params.items()}},
           "input": x.tolist(), "results": results, "per_layer": per_layer,
           # Footprint's two parts, of the model as Benchmark.run measured it (before any step: the neurons'
           # buffers are their parameters beta, threshold, ... and an empty membrane)
           "footprint_bytes": {"parameters": sum(p.numel() * p.element_size() for p in fresh.parameters()),
                               "buffers": sum(b.numel() * b.element_size() for b in fresh.buffers())},
           "output_spikes": spikes.detach().numpy().astype(int).tolist()}
    out.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    print(json.dumps({"results": results, "per_layer": per_layer}, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("reference.json"))
