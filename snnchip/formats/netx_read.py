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
- SDNN neurons become lava.proc.sdn's processes as netx builds them (`Network(spike_exp=6)`, state_exp 6, ReLU,
  no cumulative error, 16 message bits unless `messageBits`): the input layer's a `delta` neuron, a layer with
  `sigma_output` a `sigma` neuron (its sigma is the network's output), every other a `sigma_delta` neuron whose
  `bias` is the raw netx bias (scaled by 2**12 in the neuron); an `activation` other than relu is refused
  (netx would silently use ReLU), as is a bias on a sigma_output layer (netx cannot build it);
- the input layer keeps its neuron (netx's Input block; its stored `weight`/`bias` are netx's unused input
  transform, kept in `meta['netx']['input_transform']`); an input layer without a neuron, or none at all before
  a first dense layer, is a `binary` relay (named `input` in the latter case): netx's first synapse reads the
  network's input as spikes (input_message_bits 0, Lava's `astype(bool)`), so every non-zero input value,
  graded or negative, arrives as 1;
- a neuron group's `messageBits` becomes the `num_message_bits` of the projections leaving it;
- dense `delay` (axonal delays) is expanded as netx does: a vector of length F_out is one delay per target row,
  of length F_in one per source column, giving a per-synapse `[F_out, F_in]` delay (a plain int when uniform);
- the layers stock netx refuses (NotImplementedError), as slayer's blocks compute them: `pool` (sum pooling: a
  conv with groups = channels whose every channel takes the layer's one kernel, e.g. 64 = weight_scale << 6),
  `convT` and `unpool` (transposed convolutions, torch's `conv_transpose2d`, expanded into the exact dense
  projection; unpool per channel with its one kernel), and `average` (slayer's Average: the mean of each of
  `shape[0]` consecutive groups of the previous layer's outputs; here a graded relay carrying each group's sum,
  i.e. the mean times the group size, which ranks classes alike);

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
from ..graph import Graph, Neuron, Population, Projection, check_conv_geometry, conv_output_shape
from ..resources import check_memory

EXTENSION = "snnchip"            # group holding this project's extension (edges, metadata)
FORMAT = "snnchip-netx"
VERSION = 1
ATTR = "snnchip_"                # prefix of extension attributes on netx layer groups
FOREIGN_KIND = "stock"          # a file without snnchip's extension (slayer's export, lava-dl's networks)
STOCK_KIND = "stock-exact"       # a file stock netx computes exactly as snnchip does
EXTENSION_KIND = "snnchip-extension"   # a file only snnchip can run; stock netx refuses it
REFUSAL = "snnchip-extension file, stock netx cannot run it (use snn-deploy)"   # what netx's refusal quotes
SUPPORTED_LAYERS = ("input", "conv", "dense", "dense_rec", "flatten", "pool", "convT", "unpool", "average")
NETX_LAYERS = ("input", "conv", "dense", "dense_rec", "flatten")     # the layer types stock netx builds
# neuron fields of a CUBA/LOIHI group: what netx reads, and what slayer writes for training only (surrogate
# gradient: scaleRho, tauRho, theta) that changes nothing on the chip; any other field is refused by name
CUBA_FIELDS = ("type", "iDecay", "vDecay", "vThMant", "messageBits", "refDelay", "gradedSpike", "wgtExp",
               "scaleRho", "tauRho", "theta")
SDNN_FIELDS = ("type", "vThMant", "activation", "sigma_output", "messageBits")
MAX_EXPANDED_SYNAPSES = 2 ** 26  # a convT / unpool layer becomes a dense projection of at most this many weights


def read_netx(path: str | Path, num_layers: int | None = None,
              input_shape: tuple[int, ...] | None = None) -> Graph:
    """Load a NetX HDF5 file. Stock files give a fixed, pipelined graph; files written by `write_netx` give back
    the graph that was written. `num_layers` reads only the first layers of a stock file, as netx's argument of
    that name (e.g. ntidigits.net without its unsupported 'average' layer). `input_shape` `(C, H, W)` or `(F,)`:
    a stock file without an input layer takes its input in this shape (netx's `input_shape`, there in (x, y, f)),
    flattened in C order for a first dense layer. Raises InputError (one line) for a missing, corrupt, foreign or
    unsupported file; ChipRangeError for values the chip cannot hold."""
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
            _check_dataset_sizes(handle, path)
            if EXTENSION in handle and num_layers is None:
                if input_shape is not None:
                    raise InputError(f"{path}: input shape given, but the file records its own input")
                return _read_ours(handle, path)
            return _read_stock(handle, path, num_layers, input_shape)
        except InputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise FormatError(f"{path}: unreadable NetX content (corrupt or truncated?): {_one_line(exc)}") from None


def netx_file_kind(path: str | Path) -> str:
    """What kind of NetX file `path` is: FOREIGN_KIND (no snnchip extension: written by another tool, e.g.
    slayer), STOCK_KIND (written by snnchip, computed exactly by stock netx) or EXTENSION_KIND (only snnchip
    runs it). Call after `read_netx` accepted the file."""
    with h5py.File(path, "r") as handle:
        if EXTENSION not in handle:
            return FOREIGN_KIND
        kind = handle[EXTENSION].attrs.get("kind", EXTENSION_KIND)
        return kind.decode("utf-8") if isinstance(kind, bytes) else str(kind)


def netx_builds_layers(path: str | Path) -> bool:
    """True if stock netx builds every layer of this file (types `NETX_LAYERS`; it refuses pool, convT, unpool,
    average and concat, which snnchip reads). Call after `read_netx` accepted the file."""
    with h5py.File(path, "r") as handle:
        return all(layer_type(group) in NETX_LAYERS for group in layer_groups(handle, Path(path)))


def _check_dataset_sizes(handle: h5py.File, path: Path) -> None:
    """Refuse (one line) a file whose datasets, read, would not fit in memory (e.g. a small file declaring an
    unwritten 100000 x 100000 weight, which HDF5 would fill in), before any dataset is read."""
    sizes: list[tuple[int, str]] = []

    def visit(name: str, node) -> None:
        if isinstance(node, h5py.Dataset):
            sizes.append((int(node.size or 0) * node.dtype.itemsize, name))
    handle.visititems(visit)
    if sizes:
        largest, name = max(sizes)
        check_memory(largest, f"{path}: dataset '{name}' of shape {handle[name].shape}")
        check_memory(sum(size for size, _ in sizes), f"{path}: its datasets")


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
    return loihi.integers(array, f"{where}: {what}")


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


def _neuron(group: Any, where: str, role: str = "layer", shape: tuple[int, ...] = (1,)) -> tuple[Neuron, int]:
    """A netx neuron group (or netx's default dict) -> (Neuron in Lava integers, output message bits).
    role: 'input' for the input layer's neuron (an SDNN input is a Delta process), else 'layer'; shape: the
    layer's (C, H, W) or (F,), for per-neuron iDecay / vDecay vectors."""
    def get(key):
        if isinstance(group, dict):
            return group[key]
        if key not in group:
            raise FormatError(f"{where}: neuron has no '{key}'")
        return group[key][()]

    kind = get("type")
    kind = kind.decode("ascii") if isinstance(kind, bytes) else str(kind)
    if kind == "SDNN":
        return _sdnn_neuron(group, get, where, role)
    if kind not in ("CUBA", "LOIHI"):
        raise UnsupportedError(f"{where}: neuron type '{kind}' is not supported (only CUBA/LOIHI/SDNN)")
    values = {key: _per_neuron(get(key), key, shape, where) for key in ("iDecay", "vDecay")}
    vth = _integers(get("vThMant"), "vThMant", where).reshape(-1)
    if vth.size != 1 and np.any(vth != vth[0]):
        raise UnsupportedError(f"{where}: neuron field 'vThMant' has {vth.size} different values (per-neuron "
                               f"thresholds are not supported)")
    bits = 0
    if not isinstance(group, dict):
        if "messageBits" in group:
            bits = int(_integers(group["messageBits"][()], "messageBits", where).reshape(-1)[0])
            loihi.check_message_bits(bits, f"{where}: messageBits")
        _refuse_ignored_fields(group, where)
    neuron = Neuron(threshold=int(vth[0]), du=loihi.du_from_netx(values["iDecay"]), dv=values["vDecay"],
                    reset="hard", reset_value=0)
    return neuron, bits


def _per_neuron(value: Any, key: str, shape: tuple[int, ...], where: str):
    """A neuron field as netx passes it to Lava's LIF: one number, or a vector (slayer's per-neuron decays): one
    per neuron of a dense layer, one per channel of a (C, H, W) layer (Lava broadcasts it over the last axis of
    (x, y, f)). Returns an int, or the flat C-order `[size]` int64 array."""
    array = _integers(value, key, where).reshape(-1)
    if array.size == 1 or np.all(array == array[0]):
        return int(array[0])
    if array.size == shape[0]:
        return np.repeat(array, int(np.prod(shape[1:], dtype=np.int64)))
    raise FormatError(f"{where}: neuron field '{key}' has {array.size} values, neither one nor one per "
                      f"{'neuron' if len(shape) == 1 else 'channel'} ({shape[0]})")


def _refuse_ignored_fields(group: h5py.Group, where: str) -> None:
    """Fields slayer writes that netx ignores: refused where ignoring them changes the network (a refractory
    period, graded spikes of a CUBA neuron), never silently dropped."""
    if "refDelay" in group and int(_integers(group["refDelay"][()], "refDelay", where).reshape(-1)[0]) > 1:
        raise UnsupportedError(f"{where}: neuron field 'refDelay' > 1 (a refractory period netx ignores) is not "
                               f"supported")
    if "gradedSpike" in group and bool(np.asarray(group["gradedSpike"][()]).reshape(-1)[0]):
        raise UnsupportedError(f"{where}: neuron field 'gradedSpike' is set (netx's LIF sends binary spikes) and "
                               f"is not supported")
    if "wgtExp" in group and int(_integers(group["wgtExp"][()], "wgtExp", where).reshape(-1)[0]) != 0:
        raise UnsupportedError(f"{where}: neuron field 'wgtExp' is not 0 (netx ignores a weight exponent) and is "
                               f"not supported")
    _refuse_unknown_fields(group, CUBA_FIELDS, where)


def _refuse_unknown_fields(group: h5py.Group, known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(group.keys()) - set(known))
    if unknown:
        raise UnsupportedError(f"{where}: neuron field '{unknown[0]}' is not supported (known: {', '.join(known)})")


def _sdnn_neuron(group: h5py.Group, get, where: str, role: str) -> tuple[Neuron, int]:
    """netx's sigma-delta neuron (`get_neuron_params`, SDNN): Delta for the input, Sigma with `sigma_output`,
    SigmaDelta otherwise."""
    bits = loihi.NETX_SDNN_MESSAGE_BITS
    if not isinstance(group, dict):
        _refuse_unknown_fields(group, SDNN_FIELDS, where)
    if "messageBits" in group:
        bits = int(_integers(group["messageBits"][()], "messageBits", where).reshape(-1)[0])
    if "activation" in group:
        act = get("activation")
        act = act.decode("ascii") if isinstance(act, bytes) else str(act)
        if act != "relu":
            raise UnsupportedError(f"{where}: neuron field 'activation' is '{act}'; netx builds every SDNN neuron "
                                   f"with ReLU, so only 'relu' is supported")
    exps = dict(spike_exp=loihi.NETX_SDNN_SPIKE_EXP, state_exp=loihi.NETX_SDNN_STATE_EXP)
    if role != "input" and "sigma_output" in group:
        return Neuron(threshold=None, model="sigma", **exps), bits
    vth = int(_integers(get("vThMant"), "vThMant", where).reshape(-1)[0])
    model = "delta" if role == "input" else "sigma_delta"
    return Neuron(threshold=vth, model=model, activation="relu" if model == "sigma_delta" else "identity",
                  **exps), bits


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


def _spike_input() -> Neuron:
    """The input of a stock file without an input neuron: netx's first synapse reads it with input_message_bits 0,
    i.e. Lava's `astype(bool)` (on Lava: graded values 1..5 and negative ones arrive as 1)."""
    return Neuron(threshold=None, graded=True, binary=True)


def _read_stock(handle: h5py.File, path: Path, num_layers: int | None = None,
                input_shape: tuple[int, ...] | None = None) -> Graph:
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
        if ATTR + "refusal" in group.attrs:
            raise UnsupportedError(f"{where}: {REFUSAL}; its network is in the '{EXTENSION}' group (read it "
                                   f"without num_layers)")
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
            if input_shape is not None and tuple(input_shape) != shape:
                raise InputError(f"{where}: input shape {tuple(input_shape)} given, but the input layer is {shape}")
            if len(shape) not in (1, 3):
                raise FormatError(f"{where}: input shape {shape} is neither (F,) nor (C, H, W)")
            if "neuron" in group:
                neuron, out_bits = _neuron(group["neuron"], where, role="input", shape=shape)
                block_index[name] = len(block_index)
                transform = {key: float(np.asarray(group[key][()]).reshape(-1)[0])
                             for key in ("weight", "bias") if key in group}
                if transform:
                    meta_netx["input_transform"] = transform
            else:
                # No neuron: netx builds no block and the network's input reaches the first synapse directly.
                neuron, out_bits = _spike_input(), 0
            populations.append(Population(name, shape, neuron, is_input=True))
            layer_index[name] = i
            continue
        if not populations:
            # netx feeds the network's input straight into the first synapse: a relay input, of the given shape
            # (flattened for a dense layer, as netx implies), else of a first dense layer's width.
            if input_shape is None and kind != "dense" and kind != "dense_rec":
                raise InputError(f"{where}: a network starting with a {kind} layer has no input layer for its "
                                 f"shape; give the input shape (C, H, W) (snn-sim/snn-deploy/snn-energy "
                                 f"--input-shape C,H,W)")
            shape = tuple(int(s) for s in input_shape) if input_shape is not None else \
                (np.asarray(group["weight"][()]).reshape(int(np.prod(_shape(group, where))), -1).shape[1],)
            if len(shape) not in (1, 3) or any(s < 1 for s in shape):
                raise InputError(f"{where}: input shape {shape} is neither (F,) nor (C, H, W)")
            populations.append(Population("input", shape, _spike_input(), is_input=True))
            flatten_next = flatten_next or len(shape) == 3
        source = populations[-1]
        if kind == "average":
            pop, proj = _stock_average(group, source, name, where)
            proj.num_message_bits = out_bits
            populations.append(pop)
            projections.append(proj)
            layer_index[name] = i
            out_bits = 0
            continue
        if kind in ("pool", "convT", "unpool"):
            if len(source.shape) != 3:
                raise FormatError(f"{where}: a {kind} layer needs a (C, H, W) input, the previous layer is "
                                  f"{source.shape}")
            proj, shape = (_stock_pool if kind == "pool" else _stock_transposed)(group, source, name, kind, where)
            projs = [proj]
        elif kind == "conv":
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
            neuron, out_bits = _neuron(group["neuron"], where, shape=shape)
        elif kind in ("dense", "dense_rec"):
            neuron, out_bits = _neuron(loihi.NETX_DEFAULT_NEURON, where)
        else:
            raise FormatError(f"{where}: {kind} layer without a neuron group")
        bias = _bias(group, shape, where)
        if neuron.model == "sigma" and bias is not None:
            raise UnsupportedError(f"{where}: field 'bias' on a sigma_output layer (netx's Sigma process has no bias "
                                   f"and cannot be built)")
        populations.append(Population(name, shape, neuron, bias=bias,
                                      bias_exp=0 if neuron.sigma_delta else loihi.NETX_BIAS_EXP))
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
    check_conv_geometry(where, stride, padding, dilation, groups)
    c_in = source.shape[0]
    if groups < 1 or c_in % groups or weight.shape[0] % groups or weight.shape[1] * groups != c_in:
        raise FormatError(f"{where}: conv weight {weight.shape} with groups={groups} does not fit {c_in} input "
                        f"channels")
    if "delay" in group and np.any(np.asarray(group["delay"][()]) != 0):
        raise UnsupportedError(f"{where}: conv delays are not supported (netx ignores them)")
    expect = conv_output_shape(source.shape, weight.shape[0], weight.shape[2:], stride, padding, dilation, where)
    shape = _shape(group, where)
    if shape != expect:
        raise FormatError(f"{where}: shape {shape} differs from the conv's output {expect}")
    proj = Projection(f"{source.name}->{name}", source.name, name, "conv", weight, stride=stride,
                      padding=padding, dilation=dilation, groups=groups)
    return proj, shape


def _kernel(group: h5py.Group, where: str) -> np.ndarray:
    """A layer's integer weight without slayer's trailing time kernel of 1."""
    if "weight" not in group or not isinstance(group["weight"], h5py.Dataset):
        raise FormatError(f"{where}: missing a real 'weight' dataset")
    weight = _integers(group["weight"][()], "weight", where)
    if weight.ndim == 5 and weight.shape[4] == 1:
        weight = weight[..., 0]
    if weight.ndim != 4:
        raise FormatError(f"{where}: weight has shape {weight.shape}, expected 4 axes")
    return weight


def _no_delay(group: h5py.Group, kind: str, where: str) -> None:
    if "delay" in group and np.any(np.asarray(group["delay"][()]) != 0):
        raise UnsupportedError(f"{where}: field 'delay' on a {kind} layer is not supported")


def _stock_pool(group: h5py.Group, source: Population, name: str, kind: str, where: str
                ) -> tuple[Projection, tuple]:
    """slayer's sum pooling: each channel convolved with the layer's one kernel `[1, 1, kH, kW]`."""
    kernel = _kernel(group, where)
    if kernel.shape[:2] != (1, 1):
        raise FormatError(f"{where}: pool weight has shape {kernel.shape}, expected [1, 1, kH, kW]")
    _no_delay(group, kind, where)
    channels = source.shape[0]
    weight = np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1, *kernel.shape[2:])))
    stride = _pair(group, "stride", int(kernel.shape[2]), where)
    padding, dilation = _pair(group, "padding", 0, where), _pair(group, "dilation", 1, where)
    expect = conv_output_shape(source.shape, channels, weight.shape[2:], stride, padding, dilation)
    shape = _shape(group, where)
    if shape != expect:
        raise FormatError(f"{where}: shape {shape} differs from the pooling's output {expect}")
    return Projection(f"{source.name}->{name}", source.name, name, "conv", weight, stride=stride, padding=padding,
                      dilation=dilation, groups=channels), shape


def _stock_transposed(group: h5py.Group, source: Population, name: str, kind: str, where: str
                      ) -> tuple[Projection, tuple]:
    """slayer's ConvT (weight `[C_in, C_out/groups, kH, kW]`, torch's conv_transpose layout) or Unpool (one kernel
    `[1, 1, kH, kW]` per channel), as the dense projection that computes it exactly."""
    import torch
    import torch.nn.functional as F

    weight = _kernel(group, where)
    c_in = source.shape[0]
    if kind == "unpool":
        if weight.shape[:2] != (1, 1):
            raise FormatError(f"{where}: unpool weight has shape {weight.shape}, expected [1, 1, kH, kW]")
        groups = c_in
        weight = np.broadcast_to(weight, (c_in, 1, *weight.shape[2:]))
    else:
        groups = _scalar_int(group, "groups", where) if "groups" in group else 1
        if groups < 1 or weight.shape[0] != c_in or c_in % groups:
            raise FormatError(f"{where}: convT weight {weight.shape} with groups={groups} does not fit {c_in} "
                              f"input channels")
    _no_delay(group, kind, where)
    stride = _pair(group, "stride", int(weight.shape[2]) if kind == "unpool" else 1, where)
    padding, dilation = _pair(group, "padding", 0, where), _pair(group, "dilation", 1, where)
    shape = _shape(group, where)
    c_out = weight.shape[1] * groups
    full = [(source.shape[1 + a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (weight.shape[2 + a] - 1) + 1
            for a in (0, 1)]
    extra = [shape[1 + a] - full[a] for a in (0, 1)] if len(shape) == 3 else [-1, -1]
    if len(shape) != 3 or shape[0] != c_out or any(not 0 <= e < max(stride[a], dilation[a])
                                                   for a, e in enumerate(extra)):
        raise FormatError(f"{where}: shape {shape} is not the transposed convolution's output ({c_out}, "
                          f"{full[0]}, {full[1]})")
    size = int(np.prod(shape))
    if size * source.size > MAX_EXPANDED_SYNAPSES:
        raise UnsupportedError(f"{where}: a {kind} layer of {source.size} -> {size} neurons is too large to expand "
                               f"into a dense projection (at most {MAX_EXPANDED_SYNAPSES} weights)")
    basis = torch.eye(source.size, dtype=torch.float64).reshape(source.size, *source.shape)
    out = F.conv_transpose2d(basis, torch.as_tensor(np.ascontiguousarray(weight), dtype=torch.float64),
                             stride=stride, padding=padding, output_padding=tuple(extra), groups=groups,
                             dilation=dilation)
    dense = out.reshape(source.size, size).T.round().numpy().astype(np.int64)
    return Projection(f"{source.name}->{name}", source.name, name, "dense", np.ascontiguousarray(dense)), shape


def _stock_average(group: h5py.Group, source: Population, name: str, where: str
                   ) -> tuple[Population, Projection]:
    """slayer's Average: `shape[0]` outputs, each the mean of a consecutive group of the source's flattened
    outputs; here a graded relay of each group's sum (unit weights)."""
    outputs = _shape(group, where)[0]
    if source.size % outputs:
        raise FormatError(f"{where}: {source.size} inputs do not split into {outputs} equal groups")
    width = source.size // outputs
    weight = (np.arange(source.size)[None, :] // width == np.arange(outputs)[:, None]).astype(np.int64)
    pop = Population(name, (outputs,), Neuron(threshold=None, graded=True))
    return pop, Projection(f"{source.name}->{name}", source.name, name, "dense", weight)


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


def _field(node: h5py.HLObject, key: str, where: str, kind: str, default: Any = None, choices=None) -> Any:
    """Extension attribute `key` of `node`, checked for its type before anything uses it: 'int' (one integer),
    'number' (one finite number, or None when absent), 'numbers' (that, or a 1-d array of them), 'bool', 'str' (one of `choices` if given), 'ints' (a tuple
    of integers). FormatError (one line naming `where` and the field) otherwise."""
    value = _attr(node, key, default)
    what = f"{where}: field '{ATTR}{key}'"
    if value is None:
        if kind in ("number",):
            return None
        raise FormatError(f"{what} is missing")
    if kind == "str":
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f" (one of {', '.join(choices)})" if choices else ""
            raise FormatError(f"{what} is {value!r}, expected a string{allowed}")
        return value
    array = np.asarray(value)
    if kind == "ints":
        return tuple(int(v) for v in loihi.integers(array, what, FormatError).reshape(-1))
    if kind == "numbers" and array.ndim == 1:          # per-neuron values (fixed decays)
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise FormatError(f"{what} is not an array of finite numbers")
        return array
    if array.size != 1:
        raise FormatError(f"{what} should be one value, has shape {array.shape}")
    if kind == "bool":
        if array.dtype != bool and not (np.issubdtype(array.dtype, np.integer) and int(array) in (0, 1)):
            raise FormatError(f"{what} is {value!r}, expected a boolean")
        return bool(array)
    if kind == "int":
        return int(loihi.integers(array, what, FormatError).reshape(-1)[0])
    if kind == "numbers":
        array = array.reshape(())
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or \
            np.issubdtype(array.dtype, np.complexfloating) or not np.isfinite(array).all():
        raise FormatError(f"{what} is {value!r}, expected a finite number")
    number = array.reshape(-1)[0].item()
    if isinstance(number, int):
        loihi.integers(number, what, FormatError)
    return number


def _check_stock_half(group: h5py.Group, neuron: Neuron, where: str) -> None:
    """In a fixed file, the stock neuron keys netx reads must say what the extension says (one line if not: the
    file was edited, and stock netx and snnchip would run different networks)."""
    if "neuron" not in group or neuron.graded:
        return
    stock = group["neuron"]
    if neuron.sigma_delta:
        want = {"vThMant": 0 if neuron.threshold is None else neuron.threshold}
    else:
        want = {"vThMant": loihi.VTH_NEVER if neuron.threshold is None else neuron.threshold,
                "iDecay": loihi.netx_i_decay(np.asarray(neuron.du)), "vDecay": neuron.dv}
    for key, value in want.items():
        if key in stock:
            have, value = np.asarray(stock[key][()]).reshape(-1), np.asarray(value).reshape(-1)
            if not (have.size == value.size or 1 in (have.size, value.size)) or np.any(have != value):
                raise FormatError(f"{where}: the stock '{key}' {have[:4].tolist()} disagrees with the extension's "
                                  f"{value[:4].tolist()} (the file was edited; stock netx would run the stock value)")


def _read_ours(handle: h5py.File, path: Path) -> Graph:
    ext = handle[EXTENSION]
    if ext.attrs.get("format") != FORMAT:
        raise FormatError(f"{path}: group '{EXTENSION}' is not a {FORMAT} extension")
    version = np.asarray(ext.attrs.get("version", 0))
    if version.size != 1 or not np.issubdtype(version.dtype, np.integer) or int(version) != VERSION:
        raise UnsupportedError(f"{path}: {FORMAT} version {version.tolist()} is not supported (this reader knows "
                               f"{VERSION})")
    where = f"{path}: group '{EXTENSION}'"
    timing = ext.attrs.get("timing")
    timing = timing.decode("utf-8") if isinstance(timing, bytes) else timing
    if timing not in ("ideal", "pipelined"):
        raise FormatError(f"{where}: timing {timing!r} is neither 'ideal' nor 'pipelined'")
    fixed = np.asarray(ext.attrs.get("fixed"))
    if fixed.size != 1 or fixed.dtype != bool:
        raise FormatError(f"{where}: 'fixed' {fixed.tolist()!r} is not a boolean")
    fixed = bool(fixed)
    populations = []
    for i, group in enumerate(layer_groups(handle, path)):
        name = _attr(group, "population")
        if name is None:
            continue        # a flatten layer, written for stock netx only
        where = f"{path}: layer {i}"
        name = _field(group, "population", where, "str")
        where = f"{where} (population '{name}')"
        neuron = Neuron(threshold=_field(group, "threshold", where, "number"),
                        du=_field(group, "du", where, "numbers", 0), dv=_field(group, "dv", where, "numbers", 0),
                        reset=_field(group, "reset", where, "str", choices=("hard", "soft", "none")),
                        reset_value=_field(group, "reset_value", where, "number", 0),
                        reset_amount=_field(group, "reset_amount", where, "number", 0),
                        graded=_field(group, "graded", where, "bool", False),
                        binary=_field(group, "binary", where, "bool", False),
                        model=_field(group, "model", where, "str", "cuba"),
                        activation=_field(group, "activation", where, "str", "relu"),
                        cum_error=_field(group, "cum_error", where, "bool", False),
                        spike_exp=_field(group, "spike_exp", where, "int", 0),
                        state_exp=_field(group, "state_exp", where, "int", 0))
        shape = _field(group, "shape", where, "ints")
        bias = None
        if "bias" in group:
            bias = group["bias"][()]
            if _field(group, "bias_xyf", where, "bool", False):
                if bias.ndim != 3:
                    raise FormatError(f"{where}: bias of shape {bias.shape} is not (x, y, f)")
                bias = bias.transpose(2, 1, 0)
            bias_shape = _field(group, "bias_shape", where, "ints")
            if int(np.prod(bias_shape)) != bias.size:
                raise FormatError(f"{where}: bias of {bias.size} values does not fit its shape {bias_shape}")
            bias = np.ascontiguousarray(bias).reshape(bias_shape)
        if fixed:
            _check_stock_half(group, neuron, where)
        populations.append(Population(
            name=name, shape=shape, neuron=neuron, bias=bias, bias_exp=_field(group, "bias_exp", where, "int", 0),
            is_input=_field(group, "is_input", where, "bool", False),
            is_output=_field(group, "is_output", where, "bool", False),
            scale=_field(group, "scale", where, "number")))
    projections = []
    edges = ext["projections"]
    for k in range(len(edges)):
        if str(k) not in edges:
            raise FormatError(f"{path}: projections must be named 0..{len(edges) - 1}, '{k}' is missing")
        edge = edges[str(k)]
        where = f"{path}: projection {k}"
        delay = edge["delay"][()]
        delay = delay.item() if np.ndim(delay) == 0 else delay
        projections.append(Projection(
            name=_field(edge, "name", where, "str"), source=_field(edge, "source", where, "str"),
            target=_field(edge, "target", where, "str"),
            kind=_field(edge, "kind", where, "str", choices=("dense", "conv")), weight=edge["weight"][()],
            stride=_field(edge, "stride", where, "ints"), padding=_field(edge, "padding", where, "ints"),
            dilation=_field(edge, "dilation", where, "ints"), groups=_field(edge, "groups", where, "int"),
            delay=delay, weight_exp=_field(edge, "weight_exp", where, "int", 0),
            num_message_bits=_field(edge, "num_message_bits", where, "int", 0)))
    graph = Graph(populations, projections, timing=timing, fixed=fixed, meta=decode_meta(ext.attrs["meta"]))
    if not graph.inputs or not graph.outputs:
        raise FormatError(f"{path}: the network has {len(graph.inputs)} input and {len(graph.outputs)} output "
                          f"populations; it needs at least one of each")
    try:
        graph.validate()
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return graph
