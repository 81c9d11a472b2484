"""Turn a pipelined `Graph` (sequential or residual, float or fixed point) into a network of Lava processes.

Every population becomes one neuron process over its flattened neurons (C order, as the graph flattens):
`lava.proc.lif.LIFReset` for hard reset to 0, our `SoftResetLIF` for soft reset (and no reset), our `Readout`
for a population without threshold, our `GradedRelay` for a graded population, and lava.proc.sdn's Delta,
SigmaDelta, Sigma (with a sample reset, `processes/sdnn.py`) for sigma-delta ones. Every projection becomes one
synapse process: `lava.proc.dense.Dense` (or `DelayDense` when it has a delay) for dense projections, our
`ConvSynapse` for convolutions (stock `lava.proc.conv.Conv` ignores `weight_exp`). Fan-in needs nothing more:
several `a_out` connected to one `a_in` are summed by Lava.

Lava's synapses take one step (the graph's pipelined timing), so only pipelined graphs are accepted. Samples
stream back to back, `steps_per_sample` apart; population p restarts at the first step of each sample's arrival,
i.e. at its depth (`graph.meta['depth']`, as netx resets each layer at its own offset). Every projection must
then be aligned (depth[target] = depth[source] + lag), otherwise a sample would leak into the next.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, UnsupportedError
from .. import loihi
from ..formats.netx import stock_incompatibilities
from ..graph import Graph, Population, Projection
from ..stack import require_lava

require_lava()

from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.proc import io  # noqa: E402
from lava.proc.dense.process import DelayDense, Dense  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402

from lava.proc.sdn.process import ActivationMode  # noqa: E402

from .processes import ConvSynapse, GradedRelay, Readout, SoftResetLIF  # noqa: E402
from .processes.sdnn import RestartingDelta, RestartingSigma, RestartingSigmaDelta  # noqa: E402
from .watchdog import DEFAULT_TIMEOUT_S, run_steps  # noqa: E402

# the simulator's names of a sigma-delta population's states (sim/sdnn.py) -> the lava.proc.sdn variables
SDNN_VARS = {"delta": {"v": "act"}, "sigma_delta": {"u": "sigma", "v": "act"}, "sigma": {"u": "sigma", "v": "sigma"}}


@dataclass
class LavaNetwork:
    """The Lava processes of a graph, built for `num_steps` steps of samples `steps_per_sample` apart.

    neurons / synapses: population / projection name -> Lava process. depth: population -> pipeline depth.
    sinks: (population, 'spikes' | 'v' | 'u') -> the process recording that quantity at every step (an
    `io.sink.RingBuffer` on a port, or an `io.sink.Read` probe of the neuron's state after the step).
    """
    graph: Graph
    steps_per_sample: int
    num_steps: int
    depth: dict[str, int]
    neurons: dict[str, AbstractProcess] = field(default_factory=dict)
    synapses: dict[str, AbstractProcess] = field(default_factory=dict)
    sinks: dict[tuple[str, str], AbstractProcess] = field(default_factory=dict)

    @property
    def latency(self) -> int:
        """Steps from an input to the deepest output population."""
        return max(self.depth[pop.name] for pop in self.graph.outputs)

    def run(self, stream: dict[str, np.ndarray], run_cfg, timeout_s: float = DEFAULT_TIMEOUT_S
            ) -> dict[tuple[str, str], np.ndarray]:
        """Inject `stream` (input population -> `[size, num_steps]`), run (stopped with LavaTimeout after
        `timeout_s`), and return every sink's record `[size, num_steps]`. The processes are stopped afterwards;
        a LavaNetwork runs once."""
        for name, data in stream.items():
            pop = self.graph.population(name)
            if data.shape != (pop.size, self.num_steps):
                raise InputError(f"input stream for '{name}' has shape {data.shape}, "
                                 f"expected {(pop.size, self.num_steps)}")
            source = io.source.RingBuffer(data=data)
            source.s_out.connect(self.neurons[name].a_in)
        anchor = next(iter(self.neurons.values()))
        try:
            with warnings.catch_warnings():
                # Lava also tries to import every sibling module of a process's module as a top-level module;
                # ours use package-relative imports, so that search fails harmlessly (models are found first).
                warnings.filterwarnings("ignore", message="Cannot import module")
                run_steps(anchor, self.num_steps, run_cfg, timeout_s)
            return {key: np.asarray(sink.data.get()) for key, sink in self.sinks.items()}
        finally:
            anchor.stop()


def build_lava(graph: Graph, *, steps_per_sample: int, num_steps: int, record=()) -> LavaNetwork:
    """Lava processes for `graph` (pipelined; float or fixed). Records the output populations (voltage of a
    readout, spikes of a spiking output) and, as `snnchip.sim.simulate`'s `record`, population names (their
    spikes) and the quantities 'u' and 'v' (those populations' states; every population's if no name is given).
    Raises InputError (one line, naming the population or projection) for what Lava cannot run exactly."""
    graph.validate()
    if graph.timing != "pipelined":
        raise InputError("the graph has ideal timing, but every Lava synapse takes a step: pipeline it first "
                         "(snnchip.export.timing.pipeline)")
    if not graph.inputs or not graph.outputs:
        raise InputError("the graph needs at least one input and one output population")
    if steps_per_sample < 1:
        raise InputError(f"steps_per_sample must be >= 1, got {steps_per_sample}")
    depth = graph.depths()
    for proj in graph.projections:
        lags = np.unique(graph.lag(proj))
        if not np.all(depth[proj.source] + lags == depth[proj.target]):
            raise InputError(f"projection '{proj.name}' is not aligned: {proj.source} (depth "
                             f"{depth[proj.source]}) + lag {lags.tolist()} != {proj.target} (depth "
                             f"{depth[proj.target]}); samples would leak into each other")
    net = LavaNetwork(graph, steps_per_sample, num_steps, depth)
    for pop in graph.populations:
        net.neurons[pop.name] = neuron_process(pop, graph.fixed, steps_per_sample, depth[pop.name])
    for proj in graph.projections:
        syn = synapse_process(proj, graph.population(proj.source), graph.fixed)
        net.neurons[proj.source].s_out.connect(syn.s_in)
        syn.a_out.connect(net.neurons[proj.target].a_in)
        net.synapses[proj.name] = syn
    record = (record,) if isinstance(record, str) else tuple(record)
    states = {q for q in record if q in ("u", "v")}
    names = {r for r in record if r not in ("u", "v", "spikes")}
    for name in names:
        graph.population(name)  # KeyError names an unknown population
    for pop in graph.populations:
        proc = net.neurons[pop.name]
        wanted = []
        if pop.is_output and hasattr(proc, "v_out"):
            wanted.append(("v", proc.v_out))
        if (pop.is_output and pop.neuron.threshold is not None) or pop.name in names:
            wanted.append(("spikes", proc.s_out))
        for what, port in wanted:
            sink = io.sink.RingBuffer(shape=(pop.size,), buffer=num_steps)
            port.connect(sink.a_in)
            net.sinks[(pop.name, what)] = sink
        if pop.neuron.graded or not (pop.name in names or not names):
            continue
        for what in sorted(states):
            var = SDNN_VARS[pop.neuron.model].get(what) if pop.neuron.sigma_delta else what
            if (pop.name, what) not in net.sinks and var is not None:
                probe = io.sink.Read(buffer=num_steps)
                probe.connect_var(getattr(proc, var))
                net.sinks[(pop.name, what)] = probe
    return net


def neuron_process(pop: Population, fixed: bool, steps_per_sample: int, depth: int) -> AbstractProcess:
    """The Lava process of one population, restarting at steps `depth + k * steps_per_sample` (0-based)."""
    n = pop.neuron
    shape = (pop.size,)
    if n.graded:
        return GradedRelay(shape=shape, name=pop.name)
    # Lava's models reset when the 1-based time step t satisfies t % interval == offset.
    timing = dict(reset_interval=steps_per_sample, reset_offset=(depth + 1) % steps_per_sample)
    if n.sigma_delta:
        return sigma_delta_process(pop, timing)
    bias = pop.bias_full()
    if fixed:
        # integers in the registers' ranges (Graph.validate: loihi.check_fixed); du = -1 is netx's integrator,
        # which Lava's LIF models run as is (their current decays by du + 1)
        # per-neuron du / dv (netx's vectors) go to Lava's LIF as vectors, as netx passes them
        params = dict(du=np.asarray(n.du).astype(np.int64) if np.ndim(n.du) else int(n.du),
                      dv=np.asarray(n.dv).astype(np.int64) if np.ndim(n.dv) else int(n.dv),
                      bias_mant=bias.astype(np.int64),
                      bias_exp=np.full(shape, int(pop.bias_exp)))
    else:
        params = dict(du=float(n.du), dv=float(n.dv), bias_mant=bias, bias_exp=np.zeros(shape))
    number = int if fixed else float
    if n.threshold is None:
        return Readout(shape=shape, name=pop.name, **params, **timing)
    if n.reset == "hard":
        if n.reset_value != 0:
            raise InputError(f"population '{pop.name}': hard reset to {n.reset_value} (Lava's LIF resets to 0)")
        return LIFReset(shape=shape, name=pop.name, vth=number(n.threshold), **params, **timing)
    amount = n.reset_amount if n.reset == "soft" else 0
    return SoftResetLIF(shape=shape, name=pop.name, vth=number(n.threshold), reset_amount=number(amount),
                        **params, **timing)


def sigma_delta_process(pop: Population, timing: dict) -> AbstractProcess:
    """lava.proc.sdn's process for a sigma-delta population (fixed point; Graph.validate), restarting per sample."""
    n, shape = pop.neuron, (pop.size,)
    if n.model == "sigma":
        return RestartingSigma(shape=shape, name=pop.name, **timing)
    exps = dict(vth=int(n.threshold), cum_error=bool(n.cum_error), spike_exp=int(n.spike_exp),
                state_exp=int(n.state_exp))
    if n.model == "delta":
        return RestartingDelta(shape=shape, name=pop.name, **exps, **timing)
    mode = ActivationMode.RELU if n.activation == "relu" else ActivationMode.UNIT
    return RestartingSigmaDelta(shape=shape, name=pop.name, bias=pop.bias_full().astype(np.int64), act_mode=mode,
                                **exps, **timing)


def synapse_process(proj: Projection, src: Population, fixed: bool) -> AbstractProcess:
    """The Lava process of one projection (see the module docstring)."""
    bits = proj.num_message_bits or (loihi.GRADED_BITS if src.neuron.sends_payloads else 0)
    weight, exp = np.asarray(proj.weight), int(proj.weight_exp)
    if fixed:
        weight = weight.astype(np.int64)
    if proj.kind == "conv":
        if fixed:
            loihi.dense_weights(weight, exp, proj.name)  # the same 8-bit synapse limits apply
        return ConvSynapse(weight=weight, in_shape=src.shape, stride=proj.stride, padding=proj.padding,
                           dilation=proj.dilation, groups=proj.groups, weight_exp=exp, num_message_bits=bits,
                           delay=proj.delay, name=proj.name)
    extra = {}
    if fixed:
        weight, exp, extra["num_weight_bits"] = loihi.dense_weights(weight, exp, proj.name)
        extra["weight_exp"] = exp
    delay = np.asarray(proj.delay)
    if delay.ndim == 0 and int(delay) == 0:
        return Dense(weights=weight, num_message_bits=bits, name=proj.name, **extra)
    if delay.ndim and delay.shape != weight.shape:  # one delay per source neuron
        delay = np.broadcast_to(delay.reshape(1, -1), weight.shape)
    delays = np.broadcast_to(delay, weight.shape).astype(np.int64).copy()
    return DelayDense(weights=weight, delays=delays, num_message_bits=bits, name=proj.name, **extra)


def netx_compatible(graph: Graph) -> bool:
    """True if stock netx builds exactly this graph (a chain, see `formats.netx.stock_incompatibilities`)
    with one step per layer (netx resets layer i at offset i, so a delay would misplace the sample boundary) and
    no sigma-delta population (netx ignores `reset_interval` for them, so samples would not restart)."""
    return not stock_incompatibilities(graph) and all(np.all(np.asarray(q.delay) == 0) for q in graph.projections) \
        and not any(pop.neuron.sigma_delta for pop in graph.populations)


@dataclass
class NetxNetwork:
    """A chain graph run by stock `lava.lib.dl.netx.hdf5.Network` from the NetX file `path`: the file the graph
    was read from (a stock file, or a stock-exact one of ours), or the one `write_netx` gives it.

    Its blocks are the graph's populations with a neuron (an input relay is netx's neuron-less input layer; its
    payload bits are netx's `input_message_bits`). The input enters as lava-dl's own tests feed it: into the
    Input block's neuron (`in_layer.neuron.a_in`; netx leaves `Input.inp` unconnected), or into the first
    synapse after a neuron-less input. Recorded: every block's spikes (a sink on its neuron's `s_out`) and the
    output population's voltage (an `io.sink.Read` of its neuron's v: netx's LIFReset resets inside the step, so
    the probe after the step never races the reset)."""
    graph: Graph
    steps_per_sample: int
    num_steps: int
    depth: dict[str, int]
    path: str

    @property
    def latency(self) -> int:
        return max(self.depth[pop.name] for pop in self.graph.outputs)

    @property
    def layers(self) -> list[Population]:
        return [pop for pop in self.graph.populations if not (pop.is_input and pop.neuron.graded)]

    def run(self, stream: dict[str, np.ndarray], run_cfg, timeout_s: float = DEFAULT_TIMEOUT_S
            ) -> dict[tuple[str, str], np.ndarray]:
        """As `LavaNetwork.run`: input population -> `[size, num_steps]` (C order); sink records `[size, steps]`
        of every block's spikes and the output's voltage."""
        from lava.lib.dl import netx

        layers = self.layers
        inp, out = self.graph.inputs[0], self.graph.outputs[0]
        relay = inp.neuron.graded
        bits = self.graph.out_of(inp.name)[0].num_message_bits if relay else 0
        # netx resets layer j at 1-based steps k * interval + reset_offset + 1 + j: the first layer's depth.
        try:
            # a file without an input layer takes its input shape from the caller, in Lava's (x, y, f)
            shape = {"input_shape": tuple(inp.shape[::-1])} if relay and len(inp.shape) == 3 else {}
            net = netx.hdf5.Network(net_config=self.path, reset_interval=self.steps_per_sample,
                                    reset_offset=self.depth[layers[0].name], input_message_bits=bits, **shape)
        except Exception as exc:      # netx refuses what snnchip's reader accepted: say so, in one line
            raise UnsupportedError(f"{self.path}: stock netx cannot build it: {type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())}") from None
        net.net_config.f.close()      # netx keeps its h5py handle open; the blocks are built
        if len(net.layers) != len(layers):
            raise InputError(f"{self.path}: stock netx builds {len(net.layers)} blocks, snnchip read "
                             f"{len(layers)} layers")
        data = stream[inp.name].reshape(*inp.shape, self.num_steps)
        source = io.source.RingBuffer(data=np.transpose(data, (*_xyf(len(inp.shape)), len(inp.shape))))
        source.s_out.connect(net.inp if relay else net.in_layer.neuron.a_in)
        sinks = {}
        for pop, block in zip(layers, net.layers):
            sinks[(pop.name, "spikes")] = io.sink.RingBuffer(shape=block.neuron.s_out.shape, buffer=self.num_steps)
            block.neuron.s_out.connect(sinks[(pop.name, "spikes")].a_in)
        probe = io.sink.Read(buffer=self.num_steps)
        probe.connect_var(net.layers[-1].neuron.v)
        sinks[(out.name, "v")] = probe
        try:
            run_steps(net, self.num_steps, run_cfg, timeout_s)
            records = {key: np.asarray(sink.data.get()) for key, sink in sinks.items()}
        finally:
            net.stop()
        shapes = {pop.name: pop for pop in layers}
        return {key: np.transpose(data, (*_xyf(data.ndim - 1), data.ndim - 1)).reshape(shapes[key[0]].size,
                                                                                       self.num_steps)
                for key, data in records.items()}


def _xyf(ndim: int) -> tuple[int, ...]:
    """The axis order that turns the graph's (C, H, W) into Lava's (x, y, f) and back (its own inverse)."""
    return tuple(range(ndim))[::-1]
