"""The float network as an ONNX step graph: one time step, with the whole network state passed in and out.

`export_onnx(graph, path)` writes a model that computes, for populations numbered i in graph order:

    inputs : x [N, *input_shape] (the input frame at step t),
             u_i, v_i [N, size_i] (current and voltage after step t-1),
             h_i [L_i, N, size_i] for each population whose output is read with a lag (h_i[k] = its output
             at step t-1-k; L_i = the largest lag of a projection leaving it)
    outputs: s_i, y_i [N, *shape_i] for each output population (its spikes and its voltage, the readout),
             then u_i_next, v_i_next, h_i_next (the same state after step t)

all float32, N dynamic. Start from zeros and feed each step's outputs back as the next step's state; the
arithmetic is the float semantics of snnchip/graph.py, for ideal or pipelined timing. The model's metadata
(`metadata_props['snnchip.step_graph']`, JSON) lists the inputs and outputs the ONNX graph has (state the step
never reads, e.g. an input population's u, is dropped by the exporter and not listed), which output feeds which
state input, the population behind every index with its depth, and how whole samples run (snnchip.sim.samples'
convention: T + latency steps, population i reset when the sample reaches it at its depth, classes read from
the readout's window); a consumer needs nothing else (docs/onnx.md). Exported with torch's
TorchScript-based exporter (`dynamo=False`; the dynamo exporter needs onnxscript, not installed here).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..fileio import atomic_path
from ..graph import Graph, Population, Projection, float_neuron_step

OPSET = 17


class StepGraph(nn.Module):
    """One step of a float `Graph` as a torch module: `forward(x, *state) -> (*outputs, *next_state)` with the
    tensors listed in the module docstring (`state_names`, `output_names` give their names in order)."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        if graph.fixed:
            raise InputError("ONNX export takes the float graph; this one is fixed point")
        if len(graph.inputs) != 1:
            raise InputError(f"ONNX export needs exactly one input population, the graph has {len(graph.inputs)}")
        graph.validate()
        self.graph = graph
        self.pops = graph.populations
        self.index = {pop.name: i for i, pop in enumerate(self.pops)}
        self.history = {pop.name: 0 for pop in self.pops}
        self.terms: list[list[tuple]] = [[] for _ in self.pops]     # per target: (proj, lag, weight name, mask)
        for k, proj in enumerate(graph.projections):
            for lag, weight, mask in self._split_by_lag(proj):
                name = f"w{k}_{lag}"
                self.register_buffer(name, torch.as_tensor(weight, dtype=torch.float32))
                if mask is not None:
                    self.register_buffer(f"{name}_mask", torch.as_tensor(mask, dtype=torch.float32))
                self.terms[self.index[proj.target]].append((proj, lag, name, mask is not None))
                if lag > 0:
                    self.history[proj.source] = max(self.history[proj.source], lag)
        for i, pop in enumerate(self.pops):
            self.register_buffer(f"b{i}", torch.tensor(np.array(pop.bias_full(), dtype=np.float32)))
        self.input_index = self.index[graph.inputs[0].name]
        self.outputs = [self.index[pop.name] for pop in graph.outputs]
        lagged = [i for i, pop in enumerate(self.pops) if self.history[pop.name]]
        self.lagged = lagged
        self.state_names = ([f"u_{i}" for i in range(len(self.pops))] + [f"v_{i}" for i in range(len(self.pops))]
                            + [f"h_{i}" for i in lagged])
        self.output_names = ([f"s_{i}" for i in self.outputs] + [f"y_{i}" for i in self.outputs]
                             + [f"{name}_next" for name in self.state_names])

    def _split_by_lag(self, proj: Projection):
        """(lag, weight, source mask or None) per distinct lag: per-source delays mask the source, per-synapse
        delays (dense) split the weight."""
        base = 1 if self.graph.timing == "pipelined" else 0
        weight = np.asarray(proj.weight, dtype=np.float64)
        delay = np.asarray(proj.delay)
        if delay.ndim == 0:
            return [(int(delay) + base, weight, None)]
        if proj.kind == "dense" and delay.shape == weight.shape:
            return [(int(d) + base, np.where(delay == d, weight, 0.0), None) for d in np.unique(delay)]
        src = self.graph.population(proj.source)
        if delay.shape != tuple(src.shape):
            raise InputError(f"projection '{proj.name}': delay of shape {delay.shape} fits neither the source "
                            f"{src.shape} nor the weight")
        return [(int(d) + base, weight, (delay == d).reshape(-1)) for d in np.unique(delay)]

    def initial_state(self, n: int) -> list[torch.Tensor]:
        """All-zero state for a batch of n, in `state_names` order."""
        sizes = [pop.size for pop in self.pops]
        return ([torch.zeros(n, s) for s in sizes] * 2
                + [torch.zeros(self.history[self.pops[i].name], n, sizes[i]) for i in self.lagged])

    def _project(self, proj: Projection, name: str, masked: bool, s: torch.Tensor) -> torch.Tensor:
        src, dst = self.graph.population(proj.source), self.graph.population(proj.target)
        if masked:
            s = s * getattr(self, f"{name}_mask")
        weight = getattr(self, name)
        if proj.kind == "dense":
            return s @ weight.t()
        out = F.conv2d(s.reshape(-1, *src.shape), weight, stride=proj.stride, padding=proj.padding,
                       dilation=proj.dilation, groups=proj.groups)
        return out.reshape(-1, dst.size)

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        n_pop = len(self.pops)
        u_in, v_in = state[:n_pop], state[n_pop:2 * n_pop]
        hist = dict(zip(self.lagged, state[2 * n_pop:]))
        out: list[torch.Tensor] = [None] * n_pop
        u_out, v_out = list(u_in), list(v_in)
        for i, pop in enumerate(self.pops):
            if i == self.input_index:
                a = x.reshape(x.shape[0], -1)
            else:
                a = torch.zeros_like(u_in[i])
                for proj, lag, name, masked in self.terms[i]:
                    j = self.index[proj.source]
                    s = out[j] if lag == 0 else hist[j][lag - 1]
                    a = a + self._project(proj, name, masked, s)
            out[i], u_out[i], v_out[i] = self._neuron(pop, i, u_in[i], v_in[i], a)
        h_out = [torch.cat([out[i].unsqueeze(0), hist[i][:-1]], dim=0) for i in self.lagged]
        spikes = [out[i].reshape(-1, *self.pops[i].shape) for i in self.outputs]
        volts = [v_out[i].reshape(-1, *self.pops[i].shape) for i in self.outputs]
        return (*spikes, *volts, *u_out, *v_out, *h_out)

    def _neuron(self, pop: Population, i: int, u, v, a):
        """(out, u, v) of one population: the graph's float semantics (`graph.float_neuron_step`)."""
        u, v, out = float_neuron_step(pop.neuron, u, v, a, getattr(self, f"b{i}"))
        return out, u, v

    def describe(self, inputs: list[str], outputs: list[str]) -> dict:
        """What goes into the ONNX metadata (`inputs`, `outputs`: the names the ONNX graph really has; the exporter
        drops state it never reads): the tensors, which output feeds which state input back, the populations
        behind the indices with their depths, and how whole samples are run and read (module docstring)."""
        graph = self.graph
        depth = graph.depths()
        readout = graph.readout
        read = (f"argmax over y_{self.index[readout]} at step depth + T - 1 of population '{readout}'"
                if readout is not None else
                f"argmax over the sum of s_{self.outputs[0]} over steps [depth, depth + T) of its population")
        return {"format": "snnchip-onnx-step", "version": 2, "timing": graph.timing,
                "latency": graph.latency(), "dtype": "float32", "steps_per_sample": graph.steps,
                "inputs": inputs, "outputs": outputs,
                "state": [{"input": name, "output": f"{name}_next"} for name in inputs[1:]],
                "input_population": self.pops[self.input_index].name,
                "samples": {
                    "padding": "append `latency` zero frames to each sample of T = steps_per_sample steps",
                    "reset": "zero population i's u_i and v_i before each step t with (t - depth_i) % T == 0: "
                             "each population starts from zero when a sample reaches it (h_i is not reset, as "
                             "in Lava and snnchip.sim)",
                    "classes": read},
                "readout": readout,
                "populations": [{"index": i, "name": p.name, "shape": list(p.shape), "is_output": p.is_output,
                                 "history": self.history[p.name], "depth": depth[p.name]}
                                for i, p in enumerate(self.pops)]}


def export_onnx(graph: Graph, path: str | Path) -> None:
    """Write the float `graph` as an ONNX step graph (module docstring) to `path`, atomically."""
    import onnx
    path = Path(path)
    try:
        module = StepGraph(graph).eval()
    except ValueError as exc:
        raise InputError(f"cannot export {path}: {exc}") from None
    shape = module.pops[module.input_index].shape
    args = (torch.zeros(1, *shape), *module.initial_state(1))
    names = ["x"] + module.state_names
    dynamic = {name: {0: "N"} for name in names + module.output_names}
    for name in [f"h_{i}" for i in module.lagged]:
        dynamic[name] = {1: "N"}
        dynamic[f"{name}_next"] = {1: "N"}
    with atomic_path(path) as tmp:
        with torch.no_grad():
            torch.onnx.export(module, args, str(tmp), dynamo=False, input_names=names,
                              output_names=module.output_names, dynamic_axes=dynamic, opset_version=OPSET)
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = "snnchip.step_graph", json.dumps(module.describe(
            [i.name for i in model.graph.input], [o.name for o in model.graph.output]))
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
