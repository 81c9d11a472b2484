"""Networks imported from snnTorch's and SpikingJelly's NIR files, pipelined and quantised: snnchip's simulator
and Lava's CPU simulator (through snnchip.deploy) give the same integers, every population, every step."""
import numpy as np
import pytest
import torch

from snnchip.deploy.run import run_on_lava
from snnchip.export.quantize import quantize
from snnchip.export.timing import pipeline
from snnchip.formats.nir import read_nir
from snnchip.loihi import encode_input
from snnchip.sim import sample_stream, simulate

from . import frameworks as fw

N, T = 2, 12


@pytest.mark.parametrize("which", ["snntorch_conv", "spikingjelly_res"])
def test_imported_network_sim_equals_lava(tmp_path, which):
    path = tmp_path / f"{which}.nir"
    if which == "snntorch_conv":
        fw.snntorch_export(fw.snntorch_conv_net(), (2, 10, 10), path)
        shape = (2, 10, 10)
    else:
        fw.spikingjelly_export(fw.SpikingJellyResBlock(), (2, 6, 6), path)
        shape = (2, 6, 6)
    graph = pipeline(read_nir(path))
    g = torch.Generator().manual_seed(7)
    calib = torch.rand(8, *shape, T, generator=g, dtype=torch.float64) * 1.5
    fixed, _ = quantize(graph, calibration=calib)
    x = encode_input(fixed, torch.rand(N, *shape, T, generator=g, dtype=torch.float64) * 1.5).numpy()
    names = tuple(p.name for p in fixed.populations if not p.is_input and p.neuron.threshold is not None)
    lava = run_on_lava(fixed, x, record=names, via="builder")
    stream = sample_stream(fixed, x, extra_steps=lava.num_steps - N * T)
    ref = simulate(fixed, {k: v[None] for k, v in stream.items()}, record=names, reset_interval=T)
    fired = 0
    for name in names:
        np.testing.assert_array_equal(lava.stream_spikes[name], ref.spikes[name][0].numpy(), err_msg=name)
        fired += int(ref.spikes[name].sum())
    assert fired > 0
