"""The Lava stack works on this machine: a network written by Intel runs on the CPU simulator bit-exactly."""
import numpy as np

from lava_dl_files import run_tinynet


def test_lava_dl_tinynet_matches_shipped_ground_truth():
    output, gt = run_tinynet("fixed_pt")
    assert gt.sum() > 0, "ground truth has spikes, so an all-zero output cannot pass"
    assert output.shape == gt.shape
    np.testing.assert_array_equal(output, gt)


def test_stock_mnist_runs_through_our_builder_equal_to_snn_sim_every_step():
    """mnist.net's readout is netx's default neuron (iDecay 0, i.e. du = -1: no current decay). Our Lava builder
    takes it as it is (Lava's LIF runs du + 1 = 0 as no decay) and every population's spikes, u and v equal
    snn-sim's at every step. The image enters as the input neuron's bias, as in lava-dl's tests."""
    import torch

    from lava_dl_files import stock_netx_dir
    from snnchip.deploy.run import run_on_lava
    from snnchip.formats.netx import read_netx
    from snnchip.loihi import NETX_BIAS_EXP
    from snnchip.sim import sample_stream, simulate

    steps = 10
    graph = read_netx(stock_netx_dir() / "mnist.net")
    assert graph.populations[-1].neuron.du == -1
    graph.inputs[0].bias = np.random.default_rng(2).integers(0, 160, 784)
    graph.inputs[0].bias_exp = NETX_BIAS_EXP
    x = np.zeros((1, 784, steps), dtype=np.int64)
    names = tuple(pop.name for pop in graph.populations)
    lava = run_on_lava(graph, x, via="builder", record=names + ("u", "v"))
    assert lava.via == "builder"
    stream = sample_stream(graph, x, steps, extra_steps=lava.num_steps - steps)
    ref = simulate(graph, {k: torch.as_tensor(v[None]) for k, v in stream.items()}, reset_interval=steps,
                   record=("spikes", "u", "v"))
    for name in names:
        np.testing.assert_array_equal(lava.stream_spikes[name], ref.spikes[name][0].numpy(), err_msg=name)
        np.testing.assert_array_equal(lava.stream_u[name], ref.u[name][0].numpy(), err_msg=f"{name} u")
        np.testing.assert_array_equal(lava.stream_v[name], ref.v[name][0].numpy(), err_msg=f"{name} v")
    readout = names[-1]
    assert np.abs(lava.stream_u[readout]).max() > 0 and all(lava.stream_spikes[n].sum() > 0 for n in names[:-1])
