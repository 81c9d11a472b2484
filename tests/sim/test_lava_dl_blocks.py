"""lava-dl's block-level ground truths (`gts/dense/`, test_blocks.py's TestLIFBlocks.test_dense) as a graph: a relay
of the recorded input spikes into a CUBA population through the block's dense weights."""
import numpy as np
import torch

from lava_dl_files import stock_netx_dir
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate


def test_lif_dense_block_equals_shipped_spikes_over_2000_steps():
    root = stock_netx_dir() / "gts" / "dense"
    x = np.load(root / "in.npy").astype(np.int64)                       # [200, 2000] spikes
    pops = [Population("in", (200,), Neuron(threshold=None, graded=True), is_input=True),
            Population("dense", (256,), Neuron(threshold=6, du=4095, dv=415), bias_exp=6, is_output=True)]
    graph = Graph(pops, [Projection("in->dense", "in", "dense", "dense", np.load(root / "weight.npy"))],
                  timing="pipelined", fixed=True)
    out = simulate(graph, torch.as_tensor(x[None]), record=("spikes",)).spikes["dense"][0].numpy()
    gt = np.load(root / "out.npy")
    assert gt.sum() > 1000
    np.testing.assert_array_equal(out, gt)
