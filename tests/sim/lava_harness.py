"""Run a small fixed-point, pipelined Graph on Lava's CPU simulator, built from Lava's own processes.

Each population is a `lava.proc.lif` LIF (LIFReset with periodic reset), each projection a `lava.proc.dense`
Dense / DelayDense or a `lava.proc.conv` Conv; a non-graded input population is a LIF fed by a RingBuffer
source into `a_in`; a graded input population is the RingBuffer itself (its payload goes straight into the
synapses). Lava keeps `(x, y, f)` = (W, H, C) order; the graph keeps (C, H, W).
Returns, per population, spikes, u and v at every step in the graph's layout `[*shape, T]`.
"""
import numpy as np

from snnchip.deploy.runconfig import TagRunConfig
from snnchip.graph import Graph

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.proc import io  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402
from lava.proc.dense.process import DelayDense, Dense  # noqa: E402
from lava.proc.lif.process import LIF, LIFReset  # noqa: E402

NEVER = (1 << 17) - 1  # the largest threshold mantissa: a readout that (in these tests) never fires


def to_lava(a: np.ndarray, ndim: int) -> np.ndarray:
    """(C, H, W, ...) -> (W, H, C, ...) for 3-d populations; 1-d ones are unchanged."""
    return a.transpose(2, 1, 0, *range(3, a.ndim)) if ndim == 3 else a


def from_lava(a: np.ndarray, ndim: int) -> np.ndarray:
    return to_lava(a, ndim)


def run_graph_on_lava(graph: Graph, x: np.ndarray, reset_interval=None, offsets=None):
    """x: the single input population's integers `[*shape, T]`. Returns {name: (s, u, v)} each `[*shape, T]`."""
    assert graph.fixed and graph.timing == "pipelined"
    steps = x.shape[-1]
    procs, outs, sinks = {}, {}, {}
    for pop in graph.populations:
        nd = len(pop.shape)
        lava_shape = to_lava(np.zeros(pop.shape), nd).shape
        if pop.is_input and pop.neuron.graded:
            src = io.source.RingBuffer(data=to_lava(x, nd).astype(np.int32))
            outs[pop.name] = src.s_out
            continue
        n = pop.neuron
        bias = np.zeros(pop.shape) if pop.bias is None else np.broadcast_to(pop.bias, pop.shape)
        params = dict(shape=lava_shape, du=int(n.du), dv=int(n.dv), bias_mant=to_lava(bias, nd).astype(np.int32),
                      bias_exp=pop.bias_exp, vth=NEVER if n.threshold is None else int(n.threshold))
        if reset_interval:
            lif = LIFReset(reset_interval=reset_interval, reset_offset=offsets[pop.name] + 1, **params)
        else:
            lif = LIF(**params)
        procs[pop.name], outs[pop.name] = lif, lif.s_out
        sinks[pop.name] = io.sink.RingBuffer(shape=lava_shape, buffer=steps)
        lif.s_out.connect(sinks[pop.name].a_in)
        if pop.is_input:
            io.source.RingBuffer(data=to_lava(x, nd).astype(np.int32)).s_out.connect(lif.a_in)
    for q in graph.projections:
        src, tgt = graph.population(q.source), graph.population(q.target)
        port = outs[q.source]
        if q.kind == "dense":
            if len(src.shape) == 3:
                port = port.transpose([2, 1, 0]).flatten()
            w = q.weight.astype(np.int32)
            # Lava's Dense drops (8 - num_weight_bits + mixed-sign) low bits of every weight: make it drop none.
            bits = 8 + int(w.min() < 0 < w.max())
            if np.ndim(q.delay) == 0 and q.delay == 0:
                syn = Dense(weights=w, weight_exp=q.weight_exp, num_message_bits=q.num_message_bits,
                            num_weight_bits=bits)
            else:
                d = q.delay
                if np.ndim(d) == 0:
                    d = np.full(w.shape, d)
                elif d.shape != w.shape:  # per source neuron: every synapse of a source shares its delay
                    d = np.broadcast_to(d.reshape(1, -1), w.shape)
                syn = DelayDense(weights=w, delays=d.astype(int), max_delay=int(d.max()),
                                 weight_exp=q.weight_exp, num_message_bits=q.num_message_bits, num_weight_bits=bits)
            out = syn.a_out
            if len(tgt.shape) == 3:
                out = out.reshape(tgt.shape).transpose([2, 1, 0])
        else:
            assert q.weight_exp == 0 and np.ndim(q.delay) == 0 and q.delay == 0, "Lava's Conv has neither"
            # Lava convolves (flips the kernel) in (x, y) = (W, H) order; the graph cross-correlates in (H, W).
            w = q.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).astype(np.int32)
            syn = Conv(weight=w, input_shape=to_lava(np.zeros(src.shape), 3).shape, stride=q.stride[::-1],
                       padding=q.padding[::-1], dilation=q.dilation[::-1], groups=q.groups,
                       num_message_bits=q.num_message_bits)
            out = syn.a_out
        port.connect(syn.s_in)
        out.connect(procs[q.target].a_in)

    first = next(iter(procs.values()))
    u = {name: [] for name in procs}
    v = {name: [] for name in procs}
    cfg = TagRunConfig("fixed_pt")
    try:
        for _ in range(steps):
            first.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            for name, lif in procs.items():
                u[name].append(lif.u.get().copy())
                v[name].append(lif.v.get().copy())
        spikes = {name: sink.data.get().copy() for name, sink in sinks.items()}
    finally:
        first.stop()
    result = {}
    for pop in graph.populations:
        nd = len(pop.shape)
        if pop.name not in procs:
            result[pop.name] = (x, x, x)
            continue
        result[pop.name] = tuple(from_lava(a, nd).astype(np.int64) for a in
                                 (spikes[pop.name], np.stack(u[pop.name], -1), np.stack(v[pop.name], -1)))
    return result
