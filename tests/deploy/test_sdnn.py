"""Sigma-delta networks on Lava through the builder (lava.proc.sdn's processes with a sample reset) equal
snnchip.sim at every step: PilotNet SDNN's square crop from the lava-dl wheel, two samples streamed back to back."""
import numpy as np
import torch

from lava_dl_files import pilotnet_sdnn_dir, skip_input_layer
from snnchip.deploy.run import run_on_lava
from snnchip.formats.netx import read_netx
from snnchip.sim import sample_stream, simulate


def test_square_pilotnet_sdnn_on_lava_builder_equals_simulate_at_every_step():
    root = pilotnet_sdnn_dir()
    graph = skip_input_layer(read_netx(root / "square_network.net"))
    act0 = np.load(root / "act0.npy")[:33, :33, :, :6].astype(np.int64).transpose(2, 1, 0, 3)
    x = np.stack([act0, act0[..., ::-1].copy()])                 # two samples of 6 steps
    names = [pop.name for pop in graph.populations[1:]]
    lava = run_on_lava(graph, x, record=names + ["u", "v"], via="builder")
    assert lava.via == "builder"
    steps = x.shape[-1]
    stream = sample_stream(graph, torch.as_tensor(x), steps, extra_steps=max(graph.depths().values()))
    ours = simulate(graph, stream[graph.inputs[0].name][None], record=("spikes", "u", "v"), reset_interval=steps)
    for name in names:
        for q, theirs in (("spikes", lava.stream_spikes), ("u", lava.stream_u), ("v", lava.stream_v)):
            np.testing.assert_array_equal(getattr(ours, q)[name][0].numpy(), theirs[name], err_msg=f"{name}.{q}")
        assert np.count_nonzero(lava.stream_spikes[name]) > 1000
    out = graph.outputs[0].name
    np.testing.assert_array_equal(ours.v[out][0].numpy(), lava.stream_outputs[out])


def test_stock_sdnn_file_streams_through_the_builder_not_netx_which_ignores_the_sample_reset():
    """snn-deploy's default route on the stock square PilotNet SDNN (its Delta input layer kept): netx ignores
    reset_interval for sigma-delta neurons (and has no `v` to probe), so the builder runs it; two samples streamed
    equal simulate with the sample reset. `via='netx'` is refused in one line."""
    import pytest
    root = pilotnet_sdnn_dir()
    graph = read_netx(root / "square_network.net")
    x0 = np.load(root / "input.npy")[:33, :33].astype(np.int64).transpose(2, 1, 0, 3)
    x = np.stack([np.repeat(x0, 4, axis=-1), np.repeat(x0[:, ::-1], 4, axis=-1)])      # two samples of 4 steps
    lava = run_on_lava(graph, x)
    assert lava.via == "builder"
    stream = sample_stream(graph, torch.as_tensor(x), 4, extra_steps=lava.num_steps - 8)
    out = graph.outputs[0].name
    ours = simulate(graph, stream[graph.inputs[0].name][None], reset_interval=4)
    assert np.count_nonzero(lava.stream_outputs[out]) > 100
    np.testing.assert_array_equal(ours.outputs[out][0].numpy(), lava.stream_outputs[out])
    with pytest.raises(ValueError, match="stock netx cannot run this graph exactly"):
        run_on_lava(graph, x, via="netx")
