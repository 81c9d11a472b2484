"""Read NetX HDF5 networks into a `Graph`: stock lava-dl files and this project's own (see docs/hdf5-format.md).

A stock file (written by lava-dl's slayer, or by hand in its vocabulary) becomes a fixed-point, pipelined graph
with exactly the arithmetic `lava.lib.dl.netx.hdf5.Network` gives it on Lava:

- one population per `input` / `conv` / `dense` / `dense_rec` layer, named `layer<i>` after the layer's index in
  the file; `flatten` layers only mark the C-order flattening the next dense layer sees;
- shapes: the file stores `(C, H, W)` (netx reverses it to Lava's `(x, y, f)`), which is already the graph's
  channel-first order; dense layers are `(F,)`; conv weights are stored `[C_out, C_in/groups, kH, kW(, 1)]` as a
  torch cross-correlation (netx flips and transposes them for Lava's `(x, y)` convolution, which undoes the flip),
  so they are taken as they are; stride, padding, dilation are `(h, w)` in both;
- neurons (CUBA/LOIHI): `du = iDecay - 1`, `dv = vDecay`, `threshold = vThMant`, hard reset to 0, `bias_exp = 6`;
  a dense layer without a neuron group gets netx's default integrator (iDecay 0, vDecay 4096, vThMant 2**17);
- the input layer keeps its neuron (netx's Input block; its stored `weight`/`bias` are netx's unused input
  transform, kept in `meta['netx']['input_transform']`); an input layer without a neuron, or none at all before
  a first dense layer, is a graded relay (named `input` in the latter case) whose input reaches the first
  synapse unchanged;
- a neuron group's `messageBits` becomes the `num_message_bits` of the projections leaving it;
- dense `delay` (axonal delays) is expanded as netx does: a vector of length F_out is one delay per target row,
  of length F_in one per source column, giving a per-synapse `[F_out, F_in]` delay (a plain int when uniform).

Anything netx would change silently (non-integer values, dense weights its bit optimiser would clip, delays above
62) and anything it cannot load raises a one-line `FormatError` (malformed) or `UnsupportedError` naming the file
and layer; values beyond the chip's registers raise `ChipRangeError` (`Graph.validate`).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import loihi
from ..errors import ChipRangeError, FormatError, InputError, UnsupportedError
from ..graph import Graph, Neuron, Population, Projection, conv_output_shape

EXTENSION = "snnchip"            # group holding this project's extension (edges, metadata)
FORMAT = "snnchip-netx"
VERSION = 1
ATTR = "snnchip_"                # prefix of extension attributes on netx layer groups
SUPPORTED_LAYERS = ("input", "conv", "dense", "dense_rec", "flatten")


def read_netx(path: str | Path, num_layers: int | None = None) -> Graph:
    """Load a NetX HDF5 file. Stock files give a fixed, pipelined graph; files written by `write_netx` give back
    the graph that was written. `num_layers` reads only the first layers of a stock file, as netx's argument of
    that name (e.g. ntidigits.net without its unsupported 'average' layer). Raises InputError (one line) for a
    missing, corrupt, foreign or unsupported file; ChipRangeError for values the chip cannot hold."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        if zipfile.is_zipfile(path):
            raise FormatError(f"{path}: is a PyTorch checkpoint (snn-train's best.pt / last.pt?), not a NetX HDF5 "
                              f"network; export it first: snn-export {path} --target loihi -o net.net") from None
        raise FormatError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {_one_line(exc)}") from None
    with handle:
        try:
            if "layer" not in handle or not isinstance(handle["layer"], h5py.Group):
                raise FormatError(f"{path}: not a NetX network (HDF5 file without a 'layer' group)")
            if EXTENSION in handle and num_layers is None:
                return _read_ours(handle, path)
            return _read_stock(handle, path, num_layers)
        except InputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise FormatError(f"{path}: unreadable NetX content (corrupt or truncated?): {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- stock netx vocabulary ---------------------------------------------------------------------------

def layer_groups(handle: h5py.File, path: Path) -> list[h5py.Group]:
    """The `layer/<i>` groups in index order; the indices must be exactly 0..n-1."""
    layers = handle["layer"]
    keys = list(layers.keys())
    if not keys:
        raise FormatError(f"{path}: the 'layer' group is empty")
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
        raise FormatError(f"{path}: layer names must be 0..{len(keys) - 1}, found {sorted(keys)[:8]}")
    return [layers[str(i)] for i in range(len(keys))]


def layer_type(group: h5py.Group) -> str:
    raw = group["type"][()]
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1)[0]
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def _integers(values: Any, what: str, where: str) -> np.ndarray:
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise FormatError(f"{where}: {what} is not numeric and finite")
    if not np.array_equal(array, np.round(array)):
        raise FormatError(f"{where}: {what} has non-integer values (netx would truncate them)")
    return array.astype(np.int64)


def _scalar_int(group: h5py.Group, key: str, where: str) -> int:
    if key not in group:
        raise FormatError(f"{where}: missing '{key}'")
    value = _integers(group[key][()], key, where)
    if value.size != 1:
        raise FormatError(f"{where}: '{key}' should be one number, has shape {value.shape}")
    return int(value.reshape(-1)[0])


def _pair(group: h5py.Group, key: str, default: int, where: str) -> tuple[int, int]:
    if key not in group:
        return (default, default)
    value = _integers(group[key][()], key, where).reshape(-1)
    if value.size == 1:
        return (int(value[0]), int(value[0]))
    if value.size != 2:
        raise FormatError(f"{where}: '{key}' should have 1 or 2 entries, has {value.size}")
    return (int(value[0]), int(value[1]))


def _neuron(group: Any, where: str) -> tuple[Neuron, int]:
    """A netx CUBA neuron group (or netx's default dict) -> (Neuron in Lava integers, output message bits)."""
    def get(key):
        if isinstance(group, dict):
            return group[key]
        if key not in group:
            raise FormatError(f"{where}: neuron has no '{key}'")
        return group[key][()]

    kind = get("type")
    kind = kind.decode("ascii") if isinstance(kind, bytes) else str(kind)
    if kind not in ("CUBA", "LOIHI"):
        raise UnsupportedError(f"{where}: neuron type '{kind}' is not supported (only CUBA/LOIHI)")
    values = {key: int(_integers(get(key), key, where).reshape(-1)[0]) for key in ("iDecay", "vDecay", "vThMant")}
    bits = 0
    if not isinstance(group, dict) and "messageBits" in group:
        bits = int(_integers(group["messageBits"][()], "messageBits", where).reshape(-1)[0])
    neuron = Neuron(threshold=values["vThMant"], du=loihi.du_from_netx(values["iDecay"]), dv=values["vDecay"],
                    reset="hard", reset_value=0)
    return neuron, bits


def _shape(group: h5py.Group, where: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in _integers(group["shape"][()], "shape", where).reshape(-1))
    if any(s < 1 for s in shape):
        raise FormatError(f"{where}: shape {shape} has a non-positive size")
    return shape


def _bias(group: h5py.Group, shape: tuple[int, ...], where: str) -> np.ndarray | None:
    """netx bias: one per channel (last Lava axis, the first graph axis) or one per neuron in Lava's (x, y, f)."""
    if "bias" not in group:
        return None
    bias = _integers(group["bias"][()], "bias", where)
    if len(shape) == 1:
        if bias.size not in (1, shape[0]):
            raise FormatError(f"{where}: bias of shape {bias.shape} does not fit {shape[0]} neurons")
        return bias.reshape(-1) if bias.size == shape[0] else np.full(shape, bias.reshape(-1)[0])
    xyf = shape[::-1]
    if bias.shape == xyf:
        return np.ascontiguousarray(bias.transpose(2, 1, 0))
    if bias.ndim == 1 and bias.shape[0] == shape[0]:
        return bias.reshape(-1, 1, 1)
    raise FormatError(f"{where}: bias of shape {bias.shape} fits neither {shape[0]} channels nor (x, y, f) {xyf}")


def _dense_delay(group: h5py.Group, weight: np.ndarray, where: str) -> int | np.ndarray:
    """netx's reading of a dense layer's 'delay' as the graph's delay (int, or per synapse [F_out, F_in])."""
    if "delay" not in group:
        return 0
    delay = _integers(group["delay"][()], "delay", where)
    if delay.size and (delay.min() < 0 or delay.max() > loihi.NETX_MAX_DELAY):
        raise ChipRangeError(f"{where}: delays must lie in 0..{loihi.NETX_MAX_DELAY} (netx clamps larger ones), "
                        f"found {delay.min()}..{delay.max()}")
    if delay.ndim == 0:
        return int(delay)
    if delay.ndim == 1:
        if delay.size == weight.shape[0]:
            delay = np.repeat(delay.reshape(-1, 1), weight.shape[1], axis=1)
        elif delay.size == weight.shape[1]:
            delay = np.repeat(delay.reshape(1, -1), weight.shape[0], axis=0)
        else:
            raise FormatError(f"{where}: delay of {delay.size} entries fits neither {weight.shape[0]} outputs nor "
                            f"{weight.shape[1]} inputs")
    if delay.shape != weight.shape:
        raise FormatError(f"{where}: delay of shape {delay.shape} does not match the weight {weight.shape}")
    return int(delay.flat[0]) if np.all(delay == delay.flat[0]) else delay


def _read_stock(handle: h5py.File, path: Path, num_layers: int | None = None) -> Graph:
    populations: list[Population] = []
    projections: list[Projection] = []
    layer_index: dict[str, int] = {}
    block_index: dict[str, int] = {}
    meta_netx: dict[str, Any] = {}
    out_bits = 0          # message bits of the previous population's output (netx's input_message_bits)
    flatten_next = False
    groups = layer_groups(handle, path)[:num_layers]
    for i, group in enumerate(groups):
        where = f"{path}: layer {i}"
        if "type" not in group:
            raise FormatError(f"{where}: missing 'type'")
        kind = layer_type(group)
        if kind not in SUPPORTED_LAYERS:
            raise UnsupportedError(f"{where}: layer type '{kind}' is not supported (supported: "
                            f"{', '.join(SUPPORTED_LAYERS)})")
        where = f"{where} ({kind})"
        if kind == "flatten":
            flatten_next = True
            continue
        name = f"layer{i}"
        if kind == "input":
            if populations:
                raise FormatError(f"{where}: an input layer must come first")
            shape = _shape(group, where)
            if len(shape) not in (1, 3):
                raise FormatError(f"{where}: input shape {shape} is neither (F,) nor (C, H, W)")
            if "neuron" in group:
                neuron, out_bits = _neuron(group["neuron"], where)
                block_index[name] = len(block_index)
                transform = {key: float(np.asarray(group[key][()]).reshape(-1)[0])
                             for key in ("weight", "bias") if key in group}
                if transform:
                    meta_netx["input_transform"] = transform
            else:
                # No neuron: netx builds no block and the network's input reaches the first synapse directly.
                neuron, out_bits = Neuron(threshold=None, graded=True), 0
            populations.append(Population(name, shape, neuron, is_input=True))
            layer_index[name] = i
            continue
        if not populations:
            # netx feeds the network's input straight into a first dense synapse: a relay input of its width.
            if kind == "conv":
                raise FormatError(f"{where}: a network starting with a conv layer needs an input layer for its shape")
            width = np.asarray(group["weight"][()]).reshape(int(np.prod(_shape(group, where))), -1).shape[1]
            populations.append(Population("input", (width,), Neuron(threshold=None, graded=True), is_input=True))
        source = populations[-1]
        if kind == "conv":
            if len(source.shape) != 3:
                raise FormatError(f"{where}: a conv layer needs a (C, H, W) input, the previous layer is "
                                f"{source.shape}")
            proj, shape = _stock_conv(group, source, name, where)
            projs = [proj]
        else:
            if len(source.shape) != 1 and not flatten_next:
                raise FormatError(f"{where}: a dense layer after the {source.shape} layer needs a flatten layer "
                                f"before it")
            projs, shape = _stock_dense(group, source, name, kind == "dense_rec", where)
        for proj in projs:
            proj.num_message_bits = out_bits
        if "neuron" in group:
            neuron, out_bits = _neuron(group["neuron"], where)
        elif kind in ("dense", "dense_rec"):
            neuron, out_bits = _neuron(loihi.NETX_DEFAULT_NEURON, where)
        else:
            raise FormatError(f"{where}: conv layer without a neuron group")
        populations.append(Population(name, shape, neuron, bias=_bias(group, shape, where),
                                      bias_exp=loihi.NETX_BIAS_EXP))
        projections.extend(projs)
        layer_index[name] = i
        block_index[name] = len(block_index)
        flatten_next = False
    if len(populations) < 2:
        raise FormatError(f"{path}: the network has no layer after its input")
    populations[-1].is_output = True
    depth = {pop.name: hop for hop, pop in enumerate(populations)}
    meta_netx.update(layer_index=layer_index, block_index=block_index)
    if "simulation" in handle:
        sim = handle["simulation"]
        meta_netx["simulation"] = {key: np.asarray(sim[key][()]).item() for key in sim.keys()
                                   if isinstance(sim[key], h5py.Dataset) and sim[key].size == 1}
    graph = Graph(populations, projections, timing="pipelined", fixed=True,
                  meta={"source": "netx", "netx": meta_netx, "depth": depth})
    try:
        graph.validate()
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return graph


def _stock_conv(group: h5py.Group, source: Population, name: str, where: str) -> tuple[Projection, tuple]:
    weight = _integers(group["weight"][()], "weight", where)
    if weight.ndim == 5 and weight.shape[4] == 1:      # slayer's trailing time kernel
        weight = weight[..., 0]
    if weight.ndim != 4:
        raise FormatError(f"{where}: conv weight has shape {weight.shape}, expected [C_out, C_in/groups, kH, kW]")
    stride, padding = _pair(group, "stride", 1, where), _pair(group, "padding", 0, where)
    dilation = _pair(group, "dilation", 1, where)
    groups = _scalar_int(group, "groups", where) if "groups" in group else 1
    c_in = source.shape[0]
    if groups < 1 or c_in % groups or weight.shape[0] % groups or weight.shape[1] * groups != c_in:
        raise FormatError(f"{where}: conv weight {weight.shape} with groups={groups} does not fit {c_in} input "
                        f"channels")
    if "delay" in group and np.any(np.asarray(group["delay"][()]) != 0):
        raise UnsupportedError(f"{where}: conv delays are not supported (netx ignores them)")
    expect = conv_output_shape(source.shape, weight.shape[0], weight.shape[2:], stride, padding, dilation)
    shape = _shape(group, where)
    if shape != expect:
        raise FormatError(f"{where}: shape {shape} differs from the conv's output {expect}")
    proj = Projection(f"{source.name}->{name}", source.name, name, "conv", weight, stride=stride,
                      padding=padding, dilation=dilation, groups=groups)
    return proj, shape


def _stock_dense(group: h5py.Group, source: Population, name: str, recurrent: bool, where: str
                 ) -> tuple[list[Projection], tuple]:
    if "weight" not in group or not isinstance(group["weight"], h5py.Dataset):
        raise UnsupportedError(f"{where}: dense layer without a real 'weight' dataset (complex dense is not supported)")
    size = int(np.prod(_shape(group, where)))
    weight = _integers(group["weight"][()], "weight", where)
    if weight.ndim == 1:
        weight = weight.reshape(size, -1)
    if weight.shape != (size, source.size):
        raise FormatError(f"{where}: dense weight {weight.shape} does not map {source.size} inputs to {size} "
                        f"neurons")
    weights = [weight]
    if recurrent:
        rec = _integers(group["weight_rec"][()], "weight_rec", where).reshape(size, -1)
        if rec.shape != (size, size):
            raise FormatError(f"{where}: recurrent weight {rec.shape} is not {size}x{size}")
        if "delay" in group:
            raise UnsupportedError(f"{where}: delays on a recurrent dense layer are not supported")
        weights.append(rec)
    joint = np.hstack(weights)
    if not loihi.netx_dense_exact(joint):
        raise ChipRangeError(f"{where}: dense weights {joint.min()}..{joint.max()} do not fit netx's 8-bit synapse "
                        f"(it would clip them)")
    delay = _dense_delay(group, weight, where)
    projs = [Projection(f"{source.name}->{name}", source.name, name, "dense", weight, delay=delay)]
    if recurrent:
        projs.append(Projection(f"{name}->{name}", name, name, "dense", weights[1]))
    return projs, (size,)


# -- this project's files ----------------------------------------------------------------------------

def decode_meta(text: str) -> dict:
    """Inverse of netx_write.encode_meta: JSON with tagged numpy arrays and tuples."""
    def hook(obj):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
        if "__tuple__" in obj:
            return tuple(obj["__tuple__"])
        return obj
    return json.loads(text, object_hook=hook)


def _attr(node: h5py.HLObject, key: str, default: Any = None) -> Any:
    if ATTR + key not in node.attrs:
        return default
    value = node.attrs[ATTR + key]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value
    return value.item() if isinstance(value, np.generic) else value


def _read_ours(handle: h5py.File, path: Path) -> Graph:
    ext = handle[EXTENSION]
    if ext.attrs.get("format") != FORMAT:
        raise FormatError(f"{path}: group '{EXTENSION}' is not a {FORMAT} extension")
    version = int(ext.attrs.get("version", 0))
    if version != VERSION:
        raise UnsupportedError(f"{path}: {FORMAT} version {version} is not supported (this reader knows {VERSION})")
    populations = []
    for group in layer_groups(handle, path):
        name = _attr(group, "population")
        if name is None:
            continue        # a flatten layer, written for stock netx only
        threshold = _attr(group, "threshold")
        neuron = Neuron(threshold=threshold, du=_attr(group, "du"), dv=_attr(group, "dv"),
                        reset=_attr(group, "reset"), reset_value=_attr(group, "reset_value"),
                        reset_amount=_attr(group, "reset_amount"), graded=bool(_attr(group, "graded")))
        bias = None
        if "bias" in group:
            bias = group["bias"][()]
            if _attr(group, "bias_xyf", False):
                bias = bias.transpose(2, 1, 0)
            bias = np.ascontiguousarray(bias).reshape(tuple(_attr(group, "bias_shape")))
        populations.append(Population(
            name=name, shape=tuple(int(s) for s in _attr(group, "shape")), neuron=neuron, bias=bias,
            bias_exp=_attr(group, "bias_exp"), is_input=bool(_attr(group, "is_input")),
            is_output=bool(_attr(group, "is_output")), scale=_attr(group, "scale")))
    projections = []
    edges = ext["projections"]
    for k in range(len(edges)):
        edge = edges[str(k)]
        delay = edge["delay"][()]
        delay = delay.item() if np.ndim(delay) == 0 else delay
        projections.append(Projection(
            name=_attr(edge, "name"), source=_attr(edge, "source"), target=_attr(edge, "target"),
            kind=_attr(edge, "kind"), weight=edge["weight"][()],
            stride=tuple(int(s) for s in _attr(edge, "stride")),
            padding=tuple(int(s) for s in _attr(edge, "padding")),
            dilation=tuple(int(s) for s in _attr(edge, "dilation")), groups=_attr(edge, "groups"),
            delay=delay, weight_exp=_attr(edge, "weight_exp"), num_message_bits=_attr(edge, "num_message_bits")))
    graph = Graph(populations, projections, timing=ext.attrs["timing"], fixed=bool(ext.attrs["fixed"]),
                  meta=decode_meta(ext.attrs["meta"]))
    try:
        graph.validate()
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return graph
