"""Activity counters equal counts made independently from the recorded spikes and the explicit synapse matrix."""
import numpy as np
import torch
import torch.nn.functional as F

from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate


def conv_as_matrix(weight, shape, stride, padding, dilation, groups):
    """The conv's dense synapse matrix [tgt_size, src_size], column i = the conv of the i-th one-hot input."""
    size = int(np.prod(shape))
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *shape)
    out = F.conv2d(basis, torch.as_tensor(weight, dtype=torch.float64), stride=stride, padding=padding,
                   dilation=dilation, groups=groups)
    return out.reshape(size, -1).T.numpy(), out.shape[1:]


def test_synops_of_a_padded_strided_dilated_grouped_conv_count_every_real_synapse():
    rng = np.random.default_rng(2)
    src_shape = (4, 9, 8)
    weight = rng.choice([-3, -2, -1, 1, 2, 3], size=(6, 2, 3, 3)).astype(np.float64)   # no zero weights
    geometry = dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1), groups=2)
    matrix, tgt_shape = conv_as_matrix(weight, src_shape, **geometry)
    fan_out = np.count_nonzero(matrix, axis=0)                      # independent count per source neuron
    assert fan_out.min() < fan_out.max(), "padding and stride must make fan-out vary"
    pops = [Population("in", src_shape, Neuron(threshold=0.5, du=1.0, dv=1.0), is_input=True),
            Population("c", tuple(tgt_shape), Neuron(threshold=2.0, dv=0.5)),
            Population("out", (3,), Neuron(threshold=None), is_output=True)]
    projs = [Projection("conv", "in", "c", "conv", weight, **geometry),
             Projection("fc", "c", "out", "dense", rng.normal(0, 1, (3, int(np.prod(tgt_shape)))))]
    graph = Graph(pops, projs, timing="pipelined")
    steps, batch = 6, 3
    x = (rng.random((batch, *src_shape, steps)) < 0.3).astype(np.float64)
    res = simulate(graph, x, record=("spikes",))
    s_in = res.spikes["in"].numpy().reshape(batch, -1, steps)
    s_c = res.spikes["c"].numpy().reshape(batch, -1, steps)
    c = res.counters
    # pipelined: what the source emits at t arrives (and is counted) at t + 1
    expect_conv = np.concatenate([[0], np.einsum("nit,i->t", s_in, fan_out)[:-1]])
    np.testing.assert_array_equal(c.projections["conv"]["synops"], expect_conv)
    np.testing.assert_array_equal(c.projections["conv"]["input_spikes"],
                                  np.concatenate([[0], s_in.sum(axis=(0, 1))[:-1]]))
    expect_fc = np.concatenate([[0], s_c.sum(axis=(0, 1))[:-1] * 3])
    np.testing.assert_array_equal(c.projections["fc"]["synops"], expect_fc)
    assert c.projections["conv"]["macs"].sum() == 0
    np.testing.assert_array_equal(c.populations["c"]["output_spikes"], s_c.sum(axis=(0, 1)))
    np.testing.assert_array_equal(c.populations["in"]["input_spikes"], x.reshape(batch, -1, steps).sum((0, 1)))
    np.testing.assert_array_equal(c.populations["c"]["neuron_updates"], np.full(steps, batch * s_c.shape[1]))
    summary = c.summary()
    assert summary["per_sample"]["synops"] == (expect_conv.sum() + expect_fc.sum()) / batch
    assert expect_conv.sum() > 0 and expect_fc.sum() > 0
    rate = summary["populations"]["c"]["firing_rate"]
    assert rate == s_c.sum() / (batch * s_c.shape[1] * steps)


def test_graded_payloads_count_as_macs_and_delays_count_at_arrival():
    rng = np.random.default_rng(4)
    pops = [Population("in", (5,), Neuron(threshold=None, graded=True), is_input=True),
            Population("out", (4,), Neuron(threshold=None), is_output=True)]
    delay = np.array([0, 1, 2, 0, 1])
    projs = [Projection("p", "in", "out", "dense", rng.integers(-5, 5, (4, 5)), delay=delay, num_message_bits=8)]
    graph = Graph(pops, projs, timing="pipelined", fixed=True)
    x = rng.integers(-3, 4, (2, 5, 7)) * (rng.random((2, 5, 7)) < 0.6)
    counts = simulate(graph, x).counters.projections["p"]
    nz = (x != 0)
    expect = np.zeros(7, dtype=np.int64)
    for i, d in enumerate(delay):
        arrive = nz[:, i, :].sum(0)
        expect[1 + d:] += arrive[:7 - 1 - d] * 4
    np.testing.assert_array_equal(counts["macs"], expect)
    assert counts["synops"].sum() == 0 and expect.sum() > 0
