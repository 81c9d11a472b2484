"""Running whole samples through a graph, each as if alone: the convention every stage shares.

A pipelined graph (docs/graph-ir.md, Timing) sees a sample of T steps at population p during steps
[depth_p, depth_p + T): the input needs `latency` extra zero steps so that the deepest population sees all of it,
and each population must start from zero state when the sample reaches it (netx's per-layer reset at its
depth), or it would integrate its bias alone for `depth_p` steps first. `run_samples` does exactly that for a
batch `[N, *input_shape, T]` and returns a `SampleRun` whose `window` gives each population's T steps of its
sample; `predict` reads the classes the way snnchip's exported networks encode them. `sample_stream` lays samples
end to end, as a deployment streams them (Lava), for the same convention on one long run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

import numpy as np
import torch

from ..errors import InputError
from ..graph import Graph
from .executor import SimResult, Simulator


def fit_samples(graph: Graph, x: torch.Tensor, source: str = "the data") -> torch.Tensor:
    """A data set's samples `[N, *shape, T]` for the graph's one input: unchanged when the shapes agree; flattened
    in C order (C, H, W) for a 1-d input of the same size (a dense-first network, as slayer's N-MNIST tutorial
    flattens its input and netx implies); InputError (one line) otherwise."""
    pop = graph.inputs[0]
    shape = tuple(x.shape[1:-1])
    if shape == tuple(pop.shape):
        return x
    if len(pop.shape) == 1 and int(np.prod(shape)) == pop.size:
        return x.reshape(x.shape[0], pop.size, x.shape[-1])
    raise InputError(f"{source} gives samples of shape {shape} x T, the network's input layer is {tuple(pop.shape)} "
                     f"x T")


def pad_for_latency(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """`x` `[N, *shape, T]` with `graph.latency()` zero steps appended (none for a graph without latency)."""
    extra = graph.latency()
    if extra == 0:
        return x
    return torch.cat([x, torch.zeros(*x.shape[:-1], extra, dtype=x.dtype, device=x.device)], dim=-1)


@dataclass
class SampleRun:
    """A batch of samples run as if each were alone. `result` holds the whole run (`T + latency` steps);
    `steps` is T; `depth` the step each population's sample starts at."""
    graph: Graph
    result: SimResult
    steps: int
    depth: dict[str, int]

    def window(self, quantity: str, name: str) -> torch.Tensor:
        """Population `name`'s `quantity` ('spikes', 'u', 'v' as recorded, or 'outputs') over its sample:
        `[N, *shape, T]`."""
        d = self.depth[name]
        return getattr(self.result, quantity)[name][..., d:d + self.steps]

    def window_counts(self) -> dict:
        """The counters summed over each sample's window, over the batch: {'populations': name -> {key: total},
        'projections': name -> {key: total}}. A population counts the T steps from its depth, a projection those
        of its target (an event is counted when it arrives), so the counts are those of T steps of the ideal
        network, not of the `T + latency` steps of the padded run. Needs a run with counting on."""
        c = self.result.counters
        if c is None:
            raise InputError("window_counts needs a run with counting on")
        target = {q.name: q.target for q in self.graph.projections}

        def total(counts, start):
            return {k: int(round(float(v[start:start + self.steps].sum()))) for k, v in counts.items()}
        return {"populations": {n: total(v, self.depth[n]) for n, v in c.populations.items()},
                "projections": {n: total(v, self.depth[target[n]]) for n, v in c.projections.items()}}

    def scores(self) -> torch.Tensor:
        """Per-class scores `[N, classes]` (`class_scores` of this run's windows)."""
        graph = self.graph
        if graph.readout is not None:
            return class_scores(graph, voltage=self.window("outputs", graph.readout))
        return class_scores(graph, spikes=self.window("spikes", graph.outputs[0].name))

    def predict(self) -> torch.Tensor:
        """The predicted class of each sample `[N]` (argmax of `scores`)."""
        return self.scores().argmax(1)


def class_scores(graph: Graph, voltage=None, spikes=None):
    """Per-class scores `[N, classes]` from a sample window `[N, *shape, T]` (torch or numpy) of the output
    population: the readout's voltage at the last step for graphs with a readout (`Graph.readout`, snnchip's
    exports), else the spike count over the window. The classes are the argmax (`.argmax(1)`)."""
    if graph.readout is not None:
        if voltage is None:
            raise InputError(f"the graph's readout '{graph.readout}' is read from its voltage, none was given")
        return voltage.reshape(voltage.shape[0], -1, voltage.shape[-1])[..., -1]
    if spikes is None:
        raise InputError("a graph without readout is read from its output spikes, none were given")
    return spikes.reshape(spikes.shape[0], -1, spikes.shape[-1]).sum(-1)


def run_samples(sim: Union[Simulator, Graph], x, *, record=(), count: bool = True) -> SampleRun:
    """Run the samples of `x` (`[N, *input_shape, T]`, already encoded for a fixed graph) each as if alone (module
    docstring): the way to classify samples (`.predict()`); `simulate(graph, x)` instead runs `x` as one raw
    stream, exactly as given. `sim`: a `Simulator` (built once for many batches) or a graph. `record` as
    `Simulator.run`; the output population's spikes are always recorded for a graph without readout
    (`SampleRun.scores` needs them)."""
    if isinstance(sim, Graph):
        sim = Simulator(sim)
    graph = sim.graph
    x = torch.as_tensor(x)
    if len(graph.inputs) != 1 or not graph.outputs:
        raise InputError(f"run_samples needs one input and an output population; the graph has "
                         f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs")
    steps = int(x.shape[-1])
    record = (record,) if isinstance(record, str) else tuple(record)
    if graph.readout is None and not any(q in record for q in ("spikes", graph.outputs[0].name)):
        record = record + (graph.outputs[0].name,)
    latency = graph.latency()
    result = sim.run(pad_for_latency(graph, x), record=record, count=count,
                     reset_interval=steps if latency else None)
    return SampleRun(graph, result, steps, graph.depths())


def sample_stream(graph: Graph, x, steps_per_sample: Optional[int] = None, extra_steps: int = 0
                  ) -> dict[str, np.ndarray]:
    """Lay the samples of `x` (`[N, *shape, T]`, or input name -> that) end to end: input name ->
    `[*shape, N * steps_per_sample + extra_steps]`, sample k starting at step k * steps_per_sample (default T)."""
    if not isinstance(x, Mapping):
        if len(graph.inputs) != 1:
            raise InputError(f"the graph has {len(graph.inputs)} input populations; pass a dict name -> array")
        x = {graph.inputs[0].name: x}
    if set(x) != {pop.name for pop in graph.inputs}:
        raise InputError(f"inputs given for {sorted(x)}, but the graph's inputs are "
                         f"{[pop.name for pop in graph.inputs]}")
    out = {}
    for name, value in x.items():
        value = np.asarray(value)
        shape = graph.population(name).shape
        if value.ndim != len(shape) + 2 or tuple(value.shape[1:-1]) != tuple(shape):
            raise InputError(f"input '{name}' has shape {value.shape}, expected [N, {', '.join(map(str, shape))}, T]")
        n, t = value.shape[0], value.shape[-1]
        interval = steps_per_sample or t
        if t > interval:
            raise InputError(f"input '{name}' has {t} steps per sample, more than steps_per_sample={interval}")
        if graph.fixed and not np.all(value == np.round(value)):
            raise InputError(f"input '{name}': a fixed-point graph takes integer inputs")
        data = np.zeros((*shape, n * interval + extra_steps), dtype=np.int64 if graph.fixed else np.float64)
        for k in range(n):
            data[..., k * interval:k * interval + t] = value[k]
        out[name] = data
    return out
