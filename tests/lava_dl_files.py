"""The networks and ground truths that ship inside the lava-dl wheel (written by Intel, not by us), for tests.

lava-dl installs its test networks into site-packages/tests/lava/lib/dl/netx/: `tiny.net` (a three-layer CNN
with the output spikes of one sample in `gts/tinynet/output.npy`), `mnist.net`, `gts/pilotnet_lif/`,
`gts/pilotnet_sdnn/`, `gts/ntidigits/`, `gts/tinynet*/`.
"""
import importlib.util
from pathlib import Path

import numpy as np


def stock_netx_dir() -> Path:
    """The folder of networks and ground truths shipped in the lava-dl wheel."""
    spec = importlib.util.find_spec("lava.lib.dl.netx")
    site = Path(spec.origin).parents[4]
    path = site / "tests" / "lava" / "lib" / "dl" / "netx"
    if not (path / "tiny.net").exists():
        raise FileNotFoundError(f"lava-dl's shipped networks not found under {path}; run `make setup`")
    return path


def run_tinynet(select_tag: str = "fixed_pt") -> tuple[np.ndarray, np.ndarray]:
    """Run tiny.net with stock netx on Lava's CPU simulator on its ground-truth sample.
    Returns (output spikes, ground truth), both [x, y, f, 15]."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io

    from snnchip.deploy.runconfig import TagRunConfig

    root = stock_netx_dir()
    steps_per_sample = 17
    net = netx.hdf5.Network(net_config=str(root / "tiny.net"))
    num_steps = steps_per_sample + len(net)
    sink = io.sink.RingBuffer(shape=net.out_layer.out.shape, buffer=num_steps)
    net.out_layer.out.connect(sink.a_in)
    for i, layer in enumerate(net.layers):
        for var in (layer.neuron.u, layer.neuron.v):
            io.reset.Reset(interval=steps_per_sample, offset=i - 1).connect_var(var)
    net.in_layer.neuron.bias_mant.init = np.load(root / "gts" / "tinynet" / "input_bias.npy")
    try:
        net.run(condition=RunSteps(num_steps=num_steps), run_cfg=TagRunConfig(select_tag))
        output = sink.data.get()
    finally:
        net.stop()
    # Ground truth is [1, f, y, x, t] from slayer; the network's output lags it by its depth.
    gt = np.load(root / "gts" / "tinynet" / "output.npy")[0].transpose([2, 1, 0, 3])[..., 1:]
    return output[..., 2:17], gt


def pilotnet_sdnn_dir() -> Path:
    """`gts/pilotnet_sdnn/`: PilotNet SDNN (`network.net`: Delta input, 4 conv + 3 dense SigmaDelta layers, a Sigma
    readout), its 33x33 crop `square_network.net` (input + 4 conv), the input image `input.npy` (x, y, f, 1) with
    the readout `output.npy` (1, 9) lava-dl's test_hdf5 compares over 9 steps, and the graded input `act0.npy`
    (x, y, f, 20) with every step's sigma of the conv layers it drives (`sigma1.npy`, `sigma2.npy`,
    `sigma<k>_square.npy`; lava-dl's test_hdf5_nx feeds act0 past the input layer, `skip_layers=1`)."""
    return stock_netx_dir() / "gts" / "pilotnet_sdnn"


def skip_input_layer(graph):
    """netx's `skip_layers=1` on a graph read from a stock file: the input layer's neuron is dropped, so the
    network's input reaches the first synapse unchanged (a graded relay). Returns the graph."""
    from snnchip.graph import Neuron
    graph.inputs[0].neuron = Neuron(threshold=None, graded=True)
    return graph
