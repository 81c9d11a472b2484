"""Write a `Graph` as a NetX HDF5 file: netx's vocabulary for every population plus this project's extension.

Every population becomes one `layer/<i>` group in netx's vocabulary (`input`, `conv`, `dense`, with a `flatten`
layer before a dense layer whose source is `(C, H, W)`), holding the weight of its first incoming projection,
its neuron (`CUBA`: iDecay = du + 1, vDecay = dv, vThMant = threshold) and its bias. Everything the netx
vocabulary cannot say is stored where netx does not look: exact population fields as `snnchip_*` attributes of
each layer group, and every projection (source, target, weight, delay, weight_exp, message bits) under the
`snnchip/projections/<k>` group, whose first-projection weights are hard links to the layer datasets (stored
once). Graph metadata is tagged JSON. See docs/hdf5-format.md.

Two kinds of file: a sequential fixed-point graph that stock `lava.lib.dl.netx.hdf5.Network` computes exactly
(see `stock_incompatibilities`) is written as a stock-exact file; every other graph as an snnchip-extension
file whose first layer makes stock netx refuse it with a ValueError that quotes why.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import loihi
from ..errors import InputError, UnsupportedError
from ..fileio import write_bytes
from ..resources import check_disk, check_memory
from ..graph import Graph, Population, Projection
from .netx_read import ATTR, EXTENSION, EXTENSION_KIND, FORMAT, REFUSAL, STOCK_KIND, VERSION


def encode_meta(meta: dict) -> str:
    """JSON with numpy arrays and tuples tagged so that `netx_read.decode_meta` restores them exactly."""
    def tag(obj: Any, key: str) -> Any:
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
        if isinstance(obj, tuple):
            return {"__tuple__": [tag(v, key) for v in obj]}
        if isinstance(obj, list):
            return [tag(v, key) for v in obj]
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj):
                raise InputError(f"graph meta '{key}' has non-string keys; cannot store it")
            return {k: tag(v, f"{key}.{k}") for k, v in obj.items()}
        if isinstance(obj, np.generic):
            return obj.item()
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise InputError(f"graph meta '{key}' holds a {type(obj).__name__}, which cannot be stored")
    return json.dumps(tag(meta, "meta"))


def stock_incompatibilities(graph: Graph, *, graded_input: bool = False) -> list[str]:
    """Why stock netx would not compute exactly what this graph computes ([] = it does). Stock netx builds a
    chain: one input, then each population fed by exactly one projection from the previous population.
    graded_input: accept a graded relay input (netx takes its payload only when the caller gives
    `lava.lib.dl.netx.hdf5.Network(..., input_message_bits=N)`; with its default 0 it binarises the input).
    Structural reasons (not a chain) come first, then those of values (exponents, ranges, resets)."""
    reasons, values = [], []
    if not graph.fixed:
        reasons.append("the graph is not fixed point")
    if graph.timing != "pipelined":
        reasons.append("the graph's timing is not pipelined (Lava takes one step per hop)")
    pops = graph.populations
    if not pops or not pops[0].is_input or sum(p.is_input for p in pops) != 1:
        reasons.append("the first population must be the only input")
    for prev, pop in zip(pops, pops[1:]):
        into = graph.into(pop.name)
        if len(into) != 1 or into[0].source != prev.name:
            reasons.append(f"population '{pop.name}' is not fed by exactly one projection from '{prev.name}'")
            continue
        proj = into[0]
        if proj.weight_exp != loihi.NETX_WEIGHT_EXP:
            values.append(f"projection '{proj.name}' has weight_exp {proj.weight_exp} (netx derives its own)")
        if proj.kind == "dense" and not loihi.netx_dense_exact(np.asarray(proj.weight)):
            values.append(f"projection '{proj.name}' has weights netx's 8-bit optimiser would change")
        if proj.kind == "dense" and np.max(proj.delay) > loihi.NETX_MAX_DELAY:
            values.append(f"projection '{proj.name}' has delays above netx's {loihi.NETX_MAX_DELAY}")
        if proj.kind == "conv" and np.any(np.asarray(proj.delay) != 0):
            values.append(f"projection '{proj.name}' is a conv with delays (netx ignores them)")
        if proj.kind == "conv" and len(prev.shape) != 3:
            reasons.append(f"projection '{proj.name}' is a conv from the non-(C, H, W) population '{prev.name}'")
        if prev.neuron.graded and prev.is_input and (proj.num_message_bits or not prev.neuron.binary):
            # netx's first synapse binarises its input (Lava's astype(bool)) unless netx is given
            # input_message_bits, so only a `binary` relay input computes the same by default
            if not (graded_input and proj.num_message_bits):
                reasons.append(f"input '{prev.name}' is graded (stock netx binarises its input unless it is given "
                               f"input_message_bits={proj.num_message_bits})")
        elif prev.neuron.graded and not prev.is_input:
            # netx's CUBA neurons emit binary spikes
            reasons.append(f"population '{prev.name}' sends graded values netx cannot express")
    for pop in pops:
        n = pop.neuron
        if n.sigma_delta:
            reasons.extend(_sdnn_incompatibilities(pop))
            if {q.num_message_bits for q in graph.out_of(pop.name)} - {loihi.NETX_SDNN_MESSAGE_BITS}:
                # netx's NetDict cannot read 'messageBits' (it is not among its array keys): only its default
                reasons.append(f"population '{pop.name}' sends payloads of other than netx's "
                               f"{loihi.NETX_SDNN_MESSAGE_BITS} message bits")
            continue
        if pop.is_input and n.graded:
            if pop.bias is not None and np.any(pop.bias != 0):
                values.append(f"relay input '{pop.name}' has a bias")
            continue
        # a population without threshold never fires (vThMant 2**17), so its reset never happens
        if n.threshold is not None and (n.reset != "hard" or n.reset_value != 0):
            values.append(f"population '{pop.name}' does not hard-reset to 0")
        if n.threshold is not None and not 0 <= n.threshold < loihi.VTH_NEVER:
            values.append(f"population '{pop.name}' has threshold {n.threshold} outside 0..{loihi.VTH_NEVER - 1}")
        has_bias = pop.bias is not None and np.any(pop.bias != 0)
        if has_bias and pop.is_input:
            values.append(f"input '{pop.name}' has a bias (netx's Input block drops it)")
        if has_bias and pop.bias_exp != loihi.NETX_BIAS_EXP:
            values.append(f"population '{pop.name}' has bias_exp {pop.bias_exp} (netx fixes it at 6)")
    return reasons + values


def _sdnn_incompatibilities(pop: Population) -> list[str]:
    """Why netx would build a different process for this sigma-delta population ([] = it builds this one)."""
    n, reasons = pop.neuron, []
    if (n.spike_exp, n.state_exp) != (loihi.NETX_SDNN_SPIKE_EXP, loihi.NETX_SDNN_STATE_EXP):
        reasons.append(f"population '{pop.name}' has spike_exp {n.spike_exp}, state_exp {n.state_exp} (netx: "
                       f"{loihi.NETX_SDNN_SPIKE_EXP}, {loihi.NETX_SDNN_STATE_EXP})")
    if n.model == "sigma_delta" and (n.activation != "relu" or n.cum_error):
        reasons.append(f"population '{pop.name}' has activation {n.activation}, cum_error {n.cum_error} (netx "
                       f"builds ReLU without cumulative error)")
    if (n.model == "delta") != pop.is_input:
        reasons.append(f"population '{pop.name}': netx builds a delta neuron exactly for the input layer")
    return reasons


def write_netx(graph: Graph, path: str | Path, *, require_stock: bool = False, graded_input: bool = False) -> str:
    """Write `graph` to `path` atomically (a temp file in the same folder, then os.replace); returns the kind of
    file written: `STOCK_KIND` when stock netx computes exactly what the graph computes
    (`stock_incompatibilities(graph, graded_input=graded_input)` is empty), else `EXTENSION_KIND`, a file whose
    first layer makes stock netx refuse it (`ValueError` quoting `REFUSAL`) instead of building something else.
    require_stock: raise UnsupportedError unless the file is stock-exact. graded_input: a graded input still
    counts as stock (netx must then be given `input_message_bits`, see `stock_incompatibilities`)."""
    try:
        graph.validate()
    except ValueError as exc:
        raise type(exc)(f"cannot write {path}: {exc}") from None
    reasons = stock_incompatibilities(graph, graded_input=graded_input)
    if require_stock and reasons:
        raise UnsupportedError(f"cannot write {path} for stock netx: {reasons[0]}"
                               + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))
    meta = encode_meta(graph.meta)
    # what the file will hold (weights, biases, delays, metadata) plus HDF5's headers: refused up front if the
    # folder has less free space, so that a full disk never reaches h5py half way
    size = sum(np.asarray(q.weight).nbytes + np.asarray(q.delay).nbytes for q in graph.projections) + sum(
        np.asarray(p.bias).nbytes for p in graph.populations if p.bias is not None) + len(meta) + HDF5_OVERHEAD * (
        1 + len(graph.populations) + len(graph.projections))
    check_disk(path, size)
    check_memory(size, f"writing {path}")
    kind = EXTENSION_KIND if reasons else STOCK_KIND
    buffer = io.BytesIO()            # built in memory: HDF5 can crash on a disk that fills up under it
    with h5py.File(buffer, "w") as handle:
        _write(graph, handle, meta, kind, reasons[0] if reasons else "")
    write_bytes(path, buffer.getvalue())
    return kind


HDF5_OVERHEAD = 8192        # bytes of HDF5 object headers and B-trees per group, generously


def _write(graph: Graph, handle: h5py.File, meta: str, kind: str, reason: str) -> None:
    layers = handle.create_group("layer")
    primary: dict[str, Projection] = {}
    for proj in graph.projections:
        if proj.source != proj.target:
            primary.setdefault(proj.target, proj)
    first_weight: dict[str, h5py.Dataset] = {}
    out_bits = {pop.name: max([q.num_message_bits for q in graph.out_of(pop.name)], default=0)
                for pop in graph.populations}
    index = 0
    if kind == EXTENSION_KIND:
        _refusal(layers.create_group(str(index)), graph.populations[0], reason)
        index += 1
    for pop in graph.populations:
        proj = primary.get(pop.name)
        if not pop.is_input and proj is None:
            raise InputError(f"population '{pop.name}' is neither an input nor fed by a projection; netx has no "
                            f"layer for it")
        if proj is not None and proj.kind == "dense" and len(graph.population(proj.source).shape) != 1:
            flat = layers.create_group(str(index))
            _type(flat, "flatten")
            flat.create_dataset("shape", data=np.array([graph.population(proj.source).size, 1, 1]))
            index += 1
        group = layers.create_group(str(index))
        index += 1
        _population(group, pop, graph.fixed, out_bits[pop.name])
        if proj is not None:
            first_weight[pop.name] = _synapse(group, proj, pop, graph)
    ext = handle.create_group(EXTENSION)
    ext.attrs.update(format=FORMAT, version=VERSION, kind=kind, timing=graph.timing, fixed=graph.fixed, meta=meta)
    edges = ext.create_group("projections")
    for k, proj in enumerate(graph.projections):
        edge = edges.create_group(str(k))
        _attrs(edge, name=proj.name, source=proj.source, target=proj.target, kind=proj.kind,
               stride=np.array(proj.stride), padding=np.array(proj.padding), dilation=np.array(proj.dilation),
               groups=proj.groups, weight_exp=proj.weight_exp, num_message_bits=proj.num_message_bits)
        if primary.get(proj.target) is proj:
            edge["weight"] = first_weight[proj.target]           # hard link: stored once
        else:
            edge.create_dataset("weight", data=np.asarray(proj.weight))
        edge.create_dataset("delay", data=np.asarray(proj.delay))


def _refusal(group: h5py.Group, first: Population, reason: str) -> None:
    """Layer 0 of an extension file: an input layer in netx's vocabulary whose input transform `weight` is the
    text `REFUSAL: <reason>`; netx reads it with `int(...)` and raises a ValueError quoting that text."""
    _type(group, "input")
    group.attrs[ATTR + "refusal"] = True
    group.create_dataset("shape", data=np.array(first.shape))
    neuron = group.create_group("neuron")
    neuron.create_dataset("type", data="CUBA")
    for key, value in (("iDecay", loihi.DECAY_UNITY), ("vDecay", loihi.DU_MAX), ("vThMant", 0), ("refDelay", 1)):
        neuron.create_dataset(key, data=value)
    group.create_dataset("weight", data=np.array([f"{REFUSAL}: {reason}".encode("utf-8")]))


def _type(group: h5py.Group, name: str) -> None:
    group.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def _attrs(node: h5py.HLObject, **values: Any) -> None:
    for key, value in values.items():
        if value is not None:              # absent attribute = None
            node.attrs[ATTR + key] = value


def _population(group: h5py.Group, pop: Population, fixed: bool, out_bits: int) -> None:
    n = pop.neuron
    _attrs(group, population=pop.name, shape=np.array(pop.shape), threshold=n.threshold, du=n.du, dv=n.dv,
           reset=n.reset, reset_value=n.reset_value, reset_amount=n.reset_amount, graded=n.graded,
           binary=n.binary or None, bias_exp=pop.bias_exp, is_input=pop.is_input, is_output=pop.is_output, scale=pop.scale)
    if n.sigma_delta:
        _attrs(group, model=n.model, activation=n.activation, cum_error=bool(n.cum_error),
               spike_exp=int(n.spike_exp), state_exp=int(n.state_exp))
    if pop.is_input:
        _type(group, "input")
        group.create_dataset("shape", data=np.array(pop.shape))
        if n.graded:
            return            # netx: an input layer without a neuron passes its input to the first synapse
    if (np.ndim(n.du) or np.ndim(n.dv)) and len(pop.shape) != 1:
        raise UnsupportedError(f"population '{pop.name}': per-neuron decays of a {pop.shape} population cannot be "
                               f"written as netx's iDecay / vDecay (Lava broadcasts them over channels)")
    neuron = group.create_group("neuron")
    if n.sigma_delta:
        _sdnn_neuron(neuron, n, out_bits)
        _bias(group, pop)
        return
    neuron.create_dataset("type", data="CUBA")
    # Fixed: Lava's integers (iDecay = du + 1 as netx reads it). Float: the same keys as fractions of 4096.
    unit = 1 if fixed else loihi.DECAY_UNITY
    neuron.create_dataset("iDecay", data=loihi.netx_i_decay(n.du) if fixed else n.du * unit)
    neuron.create_dataset("vDecay", data=n.dv * unit)
    neuron.create_dataset("vThMant", data=loihi.VTH_NEVER if n.threshold is None else n.threshold)
    neuron.create_dataset("refDelay", data=1)
    neuron.create_dataset("gradedSpike", data=bool(n.graded))
    if out_bits:
        neuron.create_dataset("messageBits", data=out_bits)
    _bias(group, pop)


def _sdnn_neuron(neuron: h5py.Group, n, out_bits: int) -> None:
    """netx's SDNN vocabulary (docs/sdnn.md); what netx cannot express lives in the extension attributes."""
    neuron.create_dataset("type", data="SDNN")
    neuron.create_dataset("activation", data=n.activation)
    if n.model == "sigma":
        neuron.create_dataset("sigma_output", data=True)
    neuron.create_dataset("vThMant", data=0 if n.threshold is None else int(n.threshold))
    if out_bits and out_bits != loihi.NETX_SDNN_MESSAGE_BITS:
        # stock netx cannot read this key (its NetDict): written for this project's reader only
        neuron.create_dataset("messageBits", data=out_bits)


def _bias(group: h5py.Group, pop: Population) -> None:
    if pop.bias is not None:
        bias = np.asarray(pop.bias)
        _attrs(group, bias_shape=np.array(bias.shape))
        if len(pop.shape) == 3 and bias.size == pop.shape[0]:
            group.create_dataset("bias", data=bias.reshape(-1))                    # per channel
        elif len(pop.shape) == 3 and bias.shape == pop.shape:
            _attrs(group, bias_xyf=True)                                             # per neuron, Lava's (x, y, f)
            group.create_dataset("bias", data=bias.transpose(2, 1, 0))
        else:
            group.create_dataset("bias", data=bias)


def _synapse(group: h5py.Group, proj: Projection, pop: Population, graph: Graph) -> h5py.Dataset:
    """Write the netx synapse keys of `pop`'s layer from its first projection; returns the weight dataset."""
    source = graph.population(proj.source)
    weight = np.asarray(proj.weight)
    if proj.kind == "conv":
        _type(group, "conv")
        group.create_dataset("shape", data=np.array(pop.shape))
        for key, value in (("stride", proj.stride), ("padding", proj.padding), ("dilation", proj.dilation),
                           ("kernelSize", weight.shape[2:])):
            group.create_dataset(key, data=np.array(value))
        group.create_dataset("groups", data=proj.groups)
        group.create_dataset("inChannels", data=source.shape[0])
        group.create_dataset("outChannels", data=weight.shape[0])
    else:
        _type(group, "dense")
        group.create_dataset("shape", data=np.array([pop.size]))
        group.create_dataset("inFeatures", data=weight.shape[1])
        group.create_dataset("outFeatures", data=weight.shape[0])
        delay = np.asarray(proj.delay)
        if np.any(delay != 0) and np.max(delay) <= loihi.NETX_MAX_DELAY:
            # netx expands a vector by its length, ambiguous when F_in == F_out: write per synapse.
            if delay.ndim and delay.shape != weight.shape:
                delay = np.broadcast_to(delay.reshape(1, -1), weight.shape)
            group.create_dataset("delay", data=delay)
    return group.create_dataset("weight", data=weight)
