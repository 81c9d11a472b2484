"""Run a stock NetX file with lava-dl's own `netx.hdf5.Network` on Lava's fixed-point CPU simulator and read every
block's spikes, u and v at every step (Lava's `(x, y, f, t)` layout)."""
import numpy as np

from snnchip.deploy.runconfig import TagRunConfig

from lava.lib.dl import netx  # noqa: E402
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.proc import io  # noqa: E402


def run_netx_on_lava(path, steps, x=None, input_bias=None, reset_interval=None, num_layers=None, input_shape=None,
                     input_message_bits=0):
    """x: input `(*in_shape, T)` injected into the first block's neuron (an Input block's neuron `a_in`, as
    lava-dl's tests do: netx leaves `Input.inp` unconnected) or, for an input layer without a neuron, into the
    first synapse; input_bias: replaces the input neuron's bias mantissa (netx's image input);
    input_shape: netx's `(x, y, f)` for a file without an input layer; input_message_bits: netx's argument
    (graded input payload bits). Returns a list over blocks of (s, u, v), each `(*shape, steps)`."""
    extra = {} if input_shape is None else {"input_shape": tuple(input_shape)}
    net = netx.hdf5.Network(net_config=str(path), reset_interval=reset_interval, num_layers=num_layers,
                            input_message_bits=input_message_bits, **extra)
    if input_bias is not None:
        net.in_layer.neuron.bias_mant.init = input_bias
    if x is not None:
        source = io.source.RingBuffer(data=x.astype(np.int32))
        is_input = isinstance(net.in_layer, netx.blocks.process.Input)
        source.s_out.connect(net.in_layer.neuron.a_in if is_input else net.inp)
    sinks = []
    for block in net.layers:
        sink = io.sink.RingBuffer(shape=block.neuron.s_out.shape, buffer=steps)
        block.neuron.s_out.connect(sink.a_in)
        sinks.append(sink)
    u = [[] for _ in net.layers]
    v = [[] for _ in net.layers]
    try:
        for _ in range(steps):
            net.run(condition=RunSteps(num_steps=1), run_cfg=TagRunConfig("fixed_pt"))
            for i, block in enumerate(net.layers):
                u[i].append(block.neuron.u.get().copy())
                v[i].append(block.neuron.v.get().copy())
        spikes = [sink.data.get().copy() for sink in sinks]
    finally:
        net.stop()
    return [(spikes[i].astype(np.int64), np.stack(u[i], -1).astype(np.int64), np.stack(v[i], -1).astype(np.int64))
            for i in range(len(net.layers))]


SDNN_VARS = {"Delta": ("act", "residue", "error"), "SigmaDelta": ("sigma", "act", "residue", "error"),
             "Sigma": ("sigma",)}


def run_sdnn_netx_on_lava(path, steps, x, skip_layers=0):
    """Stock netx's sigma-delta network on Lava's fixed-point CPU simulator: x `(*in_shape, T)` (cycled by the
    RingBuffer, as lava-dl's tests feed it) into the input block's Delta neuron, or with `skip_layers=1` into the
    first conv's synapse (lava-dl's act0 ground truths). Returns a list over blocks of dicts: 'out' (payloads
    sent) and each state of the block's lava.proc.sdn process (sigma, act, residue, error), `(*shape, steps)`."""
    net = netx.hdf5.Network(net_config=str(path), skip_layers=skip_layers)
    source = io.source.RingBuffer(data=x.astype(np.int32))
    first = net.layers[0]
    source.s_out.connect(first.neuron.a_in if skip_layers == 0 else first.synapse.s_in)
    sinks = []
    for block in net.layers:
        sink = io.sink.RingBuffer(shape=block.neuron.s_out.shape, buffer=steps)
        block.neuron.s_out.connect(sink.a_in)
        sinks.append(sink)
    names = [SDNN_VARS[type(block.neuron).__name__] for block in net.layers]
    states = [{name: [] for name in block_names} for block_names in names]
    try:
        for _ in range(steps):
            net.run(condition=RunSteps(num_steps=1), run_cfg=TagRunConfig("fixed_pt"))
            for block, record in zip(net.layers, states):
                for name, values in record.items():
                    values.append(getattr(block.neuron, name).get().copy())
        out = [sink.data.get().copy() for sink in sinks]
    finally:
        net.stop()
    return [{"out": out[i].astype(np.int64), **{k: np.stack(v, -1).astype(np.int64) for k, v in states[i].items()}}
            for i in range(len(net.layers))]
