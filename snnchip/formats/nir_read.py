"""Reading NIR (the Neuromorphic Intermediate Representation, `nir` 1.0.8) into the float deployable graph.

`read_nir(path_or_graph, dt=1e-4) -> Graph` (ideal timing, float64). The mapping is documented in docs/nir.md:
- Neuron nodes (IF, LIF, CubaLIF, LI, CubaLI, I, Threshold) become populations named after the node; `Input`
  nodes become input populations (graded relays, or binary neurons firing iff x > 0 with `input_kind='binary'`).
- Linear nodes (Affine, Linear, Conv2d, Flatten, Scale, SumPool2d, AvgPool2d, Delay, and the Input / Output nodes
  of subgraphs) are folded into the projections between populations (`linmap.compose`); several edges into a node
  are summed. A linear node whose value is a sum of several terms and that feeds several nodes becomes a graded
  relay population (so each sum is computed once), as does one whose composition with a consumer has no exact
  single-projection form. Biases of linear nodes are pushed through the later maps and added to the target
  population's bias.
- The ODEs are discretised by forward Euler with step `dt` (what snnTorch, SpikingJelly and nirtorch compute):
  LIF `v += dt/tau (v_leak - v + r I)` is `dv = dt/tau`, input gain `r dt/tau` (folded into the weights), bias
  `v_leak dt/tau`; CubaLIF adds `I += dt/tau_syn (-I + w_in S)`: `du = dt/tau_syn`, gain `w_in dt/tau_syn`.
  Gains within GAIN_SNAP of 1 are taken as 1 (exporters compute r = tau/dt in float32).
- A cycle of edges is a recurrent connection: the edge that closes it (depth-first from the inputs) reads the
  previous step's output (delay 1), as snnTorch's RLeaky / RSynaptic compute it.
Anything that cannot be deployed exactly raises a one-line UnsupportedError naming the node; a malformed file a
one-line FormatError naming the node or edge.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..errors import FormatError, InputError, UnsupportedError
from ..graph import Graph, Neuron, Population, Projection
from . import linmap
from .linmap import Conv, Dense, Diag, Identity

DEFAULT_DT = 1e-4           # seconds: the step snnTorch 1.0, SpikingJelly 2.0 and Norse write NIR files with
GAIN_SNAP = 1e-6            # relative: an input gain this close to 1 is 1 (float32 rounding of r = tau / dt)
DELAY_TOLERANCE = 1e-6      # steps: a Delay must be this close to a whole number of steps

NEURONS = ("IF", "LIF", "CubaLIF", "LI", "CubaLI", "I", "Threshold")
LINEAR = ("Affine", "Linear", "Conv2d", "Flatten", "Scale", "SumPool2d", "AvgPool2d", "Delay", "Identity")
SUPPORTED = ("Input", "Output", "NIRGraph") + NEURONS + LINEAR
PASS = "pass"               # kind of a subgraph's Input / Output node: an identity


def read_nir(source, *, dt: float = DEFAULT_DT, input_kind: str = "graded", type_check: bool = True) -> Graph:
    """The float graph (ideal timing) of a NIR file or `nir.NIRGraph`; see the module docstring.

    dt: seconds per step (the exporters' default 1e-4). input_kind: 'graded' (exact for any input) or 'binary'
    (a neuron firing iff x > 0: exact for 0/1 inputs). type_check: nir's own shape check on read (files written by
    some exporters need False; the reader then infers every shape itself).
    """
    import nir
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive number of seconds, got {dt!r}")
    if input_kind not in ("graded", "binary"):
        raise InputError(f"input_kind must be 'graded' or 'binary', got {input_kind!r}")
    if isinstance(source, nir.NIRGraph):
        graph, where = source, "NIR graph"
    else:
        graph, where = _load(os.fspath(source), type_check), os.fspath(source)
    try:
        return _Reader(graph, float(dt), input_kind, where).run()
    except InputError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def _load(path: str, type_check: bool):
    import h5py
    import nir
    if not os.path.isfile(path):
        raise InputError(f"NIR file '{path}' does not exist")
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise FormatError(f"{path}: not an HDF5 (NIR) file ({exc})") from None
    try:
        return nir.read(path, type_check=type_check)
    except Exception as exc:   # nir raises ValueError, AssertionError, KeyError ... from deep inside; locate it
        raise FormatError(f"{path}: {_diagnose(path, exc, type_check)}") from None


def _diagnose(path: str, exc: Exception, type_check: bool) -> str:
    """Which node of the file fails to parse, or nir's own type-check message (it names the edge)."""
    import h5py
    import nir
    from nir.serialization import hdf2dict
    message = " ".join(str(exc).split()) or type(exc).__name__

    def walk(group, prefix):
        if "nodes" not in group:
            return None
        for name, node in group["nodes"].items():
            kind = node["type"][()].decode() if "type" in node else "?"
            if kind == "NIRGraph":
                found = walk(node, f"{prefix}{name}.")
                if found:
                    return found
                continue
            if kind not in SUPPORTED and kind not in ("Conv1d",):
                return f"node '{prefix}{name}': unknown NIR node type '{kind}'"
            try:
                nir.dict2NIRNode(hdf2dict(node))
            except Exception as node_exc:
                return f"node '{prefix}{name}' ({kind}): {' '.join(str(node_exc).split()) or type(node_exc).__name__}"
        return None

    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                return "not a NIR file (no 'node' group)"
            found = walk(f["node"], "")
    except Exception:
        found = None
    if found:
        return found
    hint = " (read with type_check=False / --no-type-check to let snnchip infer the shapes)" if type_check else ""
    return f"NIR type check failed: {message}{hint}"


# -- the graph, flattened ------------------------------------------------------------------------------------
@dataclass
class _Node:
    name: str
    kind: str               # the NIR class name, or PASS
    node: object
    index: int
    preds: list = field(default_factory=list)
    succs: list = field(default_factory=list)
    shape: Optional[tuple] = None


def _flatten(graph, prefix: str = "", top: bool = True) -> tuple[dict, list]:
    """Nodes (name -> (kind, node)) and edges of a NIRGraph with its subgraphs inlined: node k of subgraph S is
    'S.k'; an edge into / out of S goes to its Input / from its Output node, which become identities."""
    import nir
    nodes: dict = {}
    edges: list = []
    ports: dict = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, f"{full}.", top=False)
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            ins = [k for k, n in node.nodes.items() if isinstance(n, nir.Input)]
            outs = [k for k, n in node.nodes.items() if isinstance(n, nir.Output)]
            ports[full] = (ins, outs)
        elif isinstance(node, (nir.Input, nir.Output)) and not top:
            nodes[full] = (PASS, node)
        else:
            nodes[full] = (type(node).__name__, node)
    for a, b in graph.edges:
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        if a in ports:
            outs = ports[a][1]
            if len(outs) != 1:
                raise FormatError(f"edge ({a!r}, {b!r}): subgraph '{a}' has {len(outs)} Output nodes; name one")
            a = f"{a}.{outs[0]}"
        if b in ports:
            ins = ports[b][0]
            if len(ins) != 1:
                raise FormatError(f"edge ({a!r}, {b!r}): subgraph '{b}' has {len(ins)} Input nodes; name one")
            b = f"{b}.{ins[0]}"
        edges.append((a, b))
    return nodes, edges


def _shape_of(arr) -> tuple:
    return tuple(int(s) for s in np.shape(arr))


def _pair(value, name: str, what: str) -> tuple[int, int]:
    v = np.ravel(np.asarray(value))
    if v.size == 1:
        return int(v[0]), int(v[0])
    if v.size == 2:
        return int(v[0]), int(v[1])
    raise FormatError(f"node '{name}': {what} {v.tolist()} is not one or two integers")


# -- terms of linear expressions ----------------------------------------------------------------------------
@dataclass
class _Term:
    """`op(output of population source)`, read `delay` steps late (an int, or an int array of the source's shape:
    an axonal delay per source neuron)."""
    source: str
    op: linmap.Map
    delay: Union[int, np.ndarray] = 0


@dataclass
class _Expr:
    """`sum of terms + bias` (bias: a full array of `shape`)."""
    shape: tuple
    terms: list
    bias: np.ndarray


class _Reader:
    def __init__(self, nir_graph, dt: float, input_kind: str, where: str) -> None:
        self.dt, self.input_kind, self.where = dt, input_kind, where
        flat, edges = _flatten(nir_graph)
        self.metadata = dict(getattr(nir_graph, "metadata", None) or {})
        self.nodes = {name: _Node(name, kind, node, i) for i, (name, (kind, node)) in enumerate(flat.items())}
        seen = set()
        for a, b in edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise FormatError(f"edge ({a!r}, {b!r}) refers to node '{end}', which does not exist")
            if (a, b) in seen:
                raise FormatError(f"duplicate edge ({a!r}, {b!r})")
            seen.add((a, b))
            self.nodes[a].succs.append(b)
            self.nodes[b].preds.append(a)
        for n in self.nodes.values():
            if n.kind not in SUPPORTED and n.kind != PASS:
                raise UnsupportedError(f"node '{n.name}' ({n.kind}) is not supported "
                                       f"(supported: {', '.join(s for s in SUPPORTED if s != 'NIRGraph')}, subgraphs)")
        self.exprs: dict[str, _Expr] = {}
        self.populations: list[tuple[int, Population]] = []
        self.projections: list[Projection] = []
        self.relays: set[str] = set()

    # -- shapes -------------------------------------------------------------------------------------------
    def infer_shapes(self) -> None:
        pending = [n for n in self.nodes.values()]
        for n in pending:
            if n.kind == "Input":
                n.shape = tuple(int(s) for s in np.ravel(n.node.input_type["input"]))
            elif n.kind in NEURONS and not n.preds:
                n.shape = self.param_shape(n)
        progress = True
        while progress:
            progress = False
            for n in pending:
                if n.shape is not None:
                    continue
                known = [self.nodes[p].shape for p in n.preds if self.nodes[p].shape is not None]
                own = self.param_shape(n) if n.kind in NEURONS + ("Scale", "Delay") else None
                if not known and own is None:
                    continue
                in_shape = known[0] if known else own
                n.shape = self.out_shape(n, in_shape)
                progress = True
        for n in pending:
            if n.shape is None:
                if n.preds or n.kind != "Output":
                    raise FormatError(f"node '{n.name}' ({n.kind}): its shape cannot be inferred (not reached from "
                                      f"an Input)")
                n.shape = tuple(int(s) for s in np.ravel(n.node.output_type["output"]))
        for n in pending:
            shapes = {p: self.nodes[p].shape for p in n.preds}
            want = self.in_shape(n)
            for p, s in shapes.items():
                if linmap.size(s) != linmap.size(want) or (s != want and n.kind not in ("Affine", "Linear")):
                    raise FormatError(f"edge ({p!r}, {n.name!r}): '{p}' outputs shape {s}, '{n.name}' ({n.kind}) "
                                      f"takes {want}")

    def param_shape(self, n: _Node) -> Optional[tuple]:
        """The shape a neuron / Scale / Delay node's parameters give, None if they are scalars (broadcast)."""
        field_name = {"Scale": "scale", "Delay": "delay", "Threshold": "threshold", "I": "r", "LI": "r",
                      "CubaLI": "r", "IF": "r"}.get(n.kind, "v_threshold")
        shape = _shape_of(getattr(n.node, field_name))
        return shape if linmap.size(shape) > 1 or len(shape) > 1 else None

    def in_shape(self, n: _Node) -> tuple:
        """The shape node n takes (its inputs must produce it; Affine / Linear take any shape of their size)."""
        preds = [self.nodes[p].shape for p in n.preds]
        if n.kind in ("Affine", "Linear"):
            return (int(n.node.weight.shape[-1]),)
        if n.kind in NEURONS:
            return n.shape
        return preds[0] if preds else n.shape

    def out_shape(self, n: _Node, shape: tuple) -> tuple:
        node, kind = n.node, n.kind
        if kind in ("Affine", "Linear"):
            w = np.asarray(node.weight)
            if w.ndim != 2:
                raise UnsupportedError(f"node '{n.name}' ({kind}): weight of shape {w.shape}; only 2-D weights")
            if linmap.size(shape) != w.shape[1]:
                raise FormatError(f"node '{n.name}' ({kind}): weight {w.shape} takes {w.shape[1]} inputs, its "
                                  f"input has shape {shape}")
            return (int(w.shape[0]),)
        if kind == "Conv2d":
            return self.conv_of(n, shape).conv_shape
        if kind in ("SumPool2d", "AvgPool2d"):
            return self.pool_of(n, shape).conv_shape
        if kind == "Flatten":
            start, end = int(node.start_dim), int(node.end_dim)
            nd = len(shape)
            start, end = start % nd if nd else 0, end % nd if nd else 0
            if start > end:
                raise FormatError(f"node '{n.name}' (Flatten): start_dim {node.start_dim} > end_dim {node.end_dim} "
                                  f"for shape {shape}")
            return shape[:start] + (linmap.size(shape[start:end + 1]),) + shape[end + 1:]
        own = self.param_shape(n) if kind in NEURONS + ("Scale", "Delay") else None
        if own is not None and own != tuple(shape):
            raise FormatError(f"node '{n.name}' ({kind}): parameters of shape {own}, input of shape {shape}")
        return tuple(shape)

    def conv_of(self, n: _Node, shape: tuple) -> Conv:
        node = n.node
        w = np.asarray(node.weight, dtype=np.float64)
        groups = int(np.ravel(node.groups)[0])
        if w.ndim != 4:
            raise FormatError(f"node '{n.name}' (Conv2d): weight of shape {w.shape} is not [C_out, C_in/g, kH, kW]")
        if len(shape) != 3 or shape[0] != w.shape[1] * groups or w.shape[0] % groups:
            raise FormatError(f"node '{n.name}' (Conv2d): weight {w.shape} with groups {groups} does not take an "
                              f"input of shape {shape} (expected (C, H, W); a leading batch dimension? snnTorch's "
                              f"export_to_nir needs ignore_dims=[0])")
        stride = _pair(node.stride, n.name, "stride")
        dilation = _pair(node.dilation, n.name, "dilation")
        padding = node.padding
        if isinstance(padding, bytes):
            padding = padding.decode()
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same":
                if stride != (1, 1):
                    raise UnsupportedError(f"node '{n.name}' (Conv2d): padding 'same' with stride {stride}")
                total = [dilation[a] * (w.shape[2 + a] - 1) for a in (0, 1)]
                if any(t % 2 for t in total):
                    raise UnsupportedError(f"node '{n.name}' (Conv2d): padding 'same' with kernel {w.shape[2:]} "
                                           f"and dilation {dilation} pads unevenly (the chip pads symmetrically)")
                padding = (total[0] // 2, total[1] // 2)
            else:
                raise FormatError(f"node '{n.name}' (Conv2d): padding '{padding}'")
        padding = _pair(padding, n.name, "padding")
        op = Conv(w, stride, padding, dilation, groups, tuple(shape), ())
        out = op.conv_shape
        if min(out) < 1:
            raise FormatError(f"node '{n.name}' (Conv2d): input {shape} is smaller than its kernel")
        declared = getattr(node, "input_shape", None)
        if declared is not None and tuple(int(s) for s in np.ravel(declared)) != tuple(shape[1:]):
            raise FormatError(f"node '{n.name}' (Conv2d): input_shape {tuple(np.ravel(declared))} but its input "
                              f"is {shape}")
        return linmap.with_shapes(op, out_shape=out)

    def pool_of(self, n: _Node, shape: tuple) -> Conv:
        node = n.node
        if len(shape) != 3:
            raise FormatError(f"node '{n.name}' ({n.kind}): input of shape {shape}, expected (C, H, W)")
        kernel = _pair(node.kernel_size, n.name, "kernel_size")
        stride = kernel if node.stride is None else _pair(node.stride, n.name, "stride")
        padding = _pair(node.padding, n.name, "padding")
        c = shape[0]
        value = 1.0 if n.kind == "SumPool2d" else 1.0 / (kernel[0] * kernel[1])    # zero padding counts (torch)
        op = Conv(np.full((c, 1, *kernel), value), stride, padding, (1, 1), c, tuple(shape), ())
        return linmap.with_shapes(op, out_shape=op.conv_shape)

    # -- linear nodes ---------------------------------------------------------------------------------------
    def map_of(self, n: _Node, in_shape: tuple) -> tuple[linmap.Map, np.ndarray]:
        """(bias-free map, bias as a full array of the output shape) of a linear node."""
        node, kind, out = n.node, n.kind, n.shape
        zeros = np.zeros(out)
        if kind in ("Affine", "Linear"):
            w = np.asarray(node.weight, dtype=np.float64)
            bias = np.asarray(node.bias, dtype=np.float64).reshape(out) if kind == "Affine" else zeros
            return Dense(w, tuple(in_shape), out), bias
        if kind == "Conv2d":
            op = self.conv_of(n, in_shape)
            b = np.asarray(node.bias, dtype=np.float64).reshape(-1)
            if b.size not in (1, out[0]):
                raise FormatError(f"node '{n.name}' (Conv2d): bias of {b.size} values for {out[0]} channels")
            return op, np.broadcast_to(b.reshape(-1, 1, 1), out).copy()
        if kind in ("SumPool2d", "AvgPool2d"):
            return self.pool_of(n, in_shape), zeros
        if kind == "Scale":
            scale = np.broadcast_to(np.asarray(node.scale, dtype=np.float64), out).reshape(-1)
            return Diag(scale.copy(), tuple(in_shape), out), zeros
        return Identity(tuple(in_shape), out), zeros       # Flatten, Identity, subgraph ports

    def expr_of(self, name: str) -> _Expr:
        n = self.nodes[name]
        if name in self.exprs:
            return self.exprs[name]
        return _Expr(n.shape, [_Term(name, Identity(n.shape, n.shape))], np.zeros(n.shape))

    def input_sum(self, n: _Node) -> _Expr:
        """The sum of n's inputs (each input's expression)."""
        terms, bias = [], np.zeros(self.in_shape(n)) if n.preds else np.zeros(n.shape)
        for p in n.preds:
            e = self.expr_of(p)
            terms += [t for t in e.terms]
            bias = bias + e.bias.reshape(bias.shape)
        return _Expr(bias.shape, terms, bias)

    def relay(self, name: str) -> _Expr:
        """Turn linear node `name` into a graded relay population emitting its terms; its bias is carried on."""
        n = self.nodes[name]
        e = self.exprs[name]
        if name in self.relays:
            return e
        self.relays.add(name)
        self.add_population(n, Population(name=name, shape=n.shape,
                                          neuron=Neuron(threshold=0.0, du=1.0, dv=1.0, graded=True)))
        self.emit(name, e.terms, np.ones(linmap.size(n.shape)))
        relayed = _Expr(n.shape, [_Term(name, Identity(n.shape, n.shape))], e.bias)
        self.exprs[name] = relayed
        return relayed

    def linear(self, n: _Node) -> None:
        """The expression of linear node n: each input's terms through n's map (an input whose terms do not
        compose becomes a relay first)."""
        if n.kind == "Delay":
            self.exprs[n.name] = self.delayed(n)
            return
        in_shape = self.in_shape(n)
        op, own_bias = self.map_of(n, in_shape)
        terms, bias = [], np.zeros(in_shape)
        for p in n.preds:
            e = self.expr_of(p)
            composed = [linmap.compose(op, linmap.with_shapes(t.op, out_shape=in_shape)) for t in e.terms]
            if any(c is None for c in composed):
                if p not in self.exprs:
                    raise UnsupportedError(f"node '{n.name}' ({n.kind}): its map is too large to build "
                                           f"({linmap.MAX_DENSE} entries at most)")
                e = self.relay(p)
                composed = [linmap.compose(op, linmap.with_shapes(t.op, out_shape=in_shape)) for t in e.terms]
                if any(c is None for c in composed):
                    raise UnsupportedError(f"node '{n.name}' ({n.kind}): its map is too large to build")
            terms += [_Term(t.source, c, t.delay) for t, c in zip(e.terms, composed)]
            bias = bias + e.bias.reshape(in_shape)
        out_bias = linmap.apply(op, bias[None])[0] + own_bias
        self.exprs[n.name] = _Expr(n.shape, terms, out_bias)
        if len(terms) > 1 and len(n.succs) > 1:
            self.relay(n.name)

    def delayed(self, n: _Node) -> _Expr:
        steps_f = np.broadcast_to(np.asarray(n.node.delay, dtype=np.float64), n.shape) / self.dt
        steps = np.rint(steps_f)
        if np.any(np.abs(steps_f - steps) > DELAY_TOLERANCE) or np.any(steps < 0):
            raise UnsupportedError(f"node '{n.name}' (Delay): delays {np.unique(steps_f)[:4].tolist()} steps are not "
                                   f"whole non-negative numbers of dt = {self.dt} s")
        steps = steps.astype(np.int64)
        uniform = bool(np.all(steps == steps.flat[0]))
        terms, bias = [], np.zeros(n.shape)
        for p in n.preds:
            e = self.expr_of(p)
            if np.any(e.bias != 0) and np.any(steps != 0):
                raise UnsupportedError(f"node '{n.name}' (Delay): a bias reaches it (from '{p}'); a delayed bias "
                                       f"would start late, the chip's bias cannot")
            if not uniform and not (len(e.terms) == 1 and isinstance(e.terms[0].op, Identity)):
                e = self.relay(p)
            for t in e.terms:
                if uniform:
                    add = int(steps.flat[0])
                else:
                    add = steps.reshape(self.nodes[t.source].shape)
                terms.append(_Term(t.source, linmap.with_shapes(t.op, out_shape=n.shape), t.delay + add))
            bias = bias + e.bias.reshape(n.shape)
        return _Expr(n.shape, terms, bias)

    # -- populations ----------------------------------------------------------------------------------------
    def add_population(self, n: _Node, pop: Population) -> None:
        self.populations.append((n.index, pop))

    def emit(self, target: str, terms: list, gain: np.ndarray) -> None:
        """Projections into `target` for each term, with the target's input gain folded into the weights."""
        tshape = next(p for _, p in self.populations if p.name == target).shape
        for t in terms:
            op = linmap.scale_rows(linmap.with_shapes(t.op, out_shape=tshape), gain)
            if op is None:
                raise UnsupportedError(f"node '{target}': the projection from '{t.source}' is too large as a dense "
                                       f"matrix ({linmap.MAX_DENSE} entries at most)")
            self.projections.append(self.projection(t.source, target, op, t.delay))

    def projection(self, source: str, target: str, op: linmap.Map, delay) -> Projection:
        name = f"{source}->{target}"
        count = sum(1 for q in self.projections if q.source == source and q.target == target)
        if count:
            name = f"{name}#{count + 1}"
        src_shape = self.nodes[source].shape
        tgt_shape = next(p for _, p in self.populations if p.name == target).shape
        delay = delay if np.ndim(delay) == 0 else np.broadcast_to(delay, src_shape).astype(np.int64).copy()
        delay = int(delay) if np.ndim(delay) == 0 else delay
        if isinstance(op, Identity) and len(src_shape) == 3 and tuple(src_shape) == tuple(tgt_shape):
            c = src_shape[0]
            return Projection(name, source, target, "conv", np.eye(c).reshape(c, c, 1, 1), delay=delay)
        if isinstance(op, Diag) and len(tgt_shape) == 3 and tuple(src_shape) == tuple(tgt_shape):
            gain = linmap.per_channel(op.scale, tgt_shape)
            if gain is not None:
                return Projection(name, source, target, "conv", np.diag(gain).reshape(*gain.shape * 2, 1, 1),
                                  delay=delay)
        if isinstance(op, Conv) and len(tgt_shape) == 3 and tuple(op.conv_shape) == tuple(tgt_shape) \
                and tuple(op.in_shape) == tuple(src_shape):
            return Projection(name, source, target, "conv", op.weight, stride=tuple(op.stride),
                              padding=tuple(op.padding), dilation=tuple(op.dilation), groups=int(op.groups),
                              delay=delay)
        m = linmap.matrix(op)
        if m is None:
            raise UnsupportedError(f"node '{target}': the projection from '{source}' is too large as a dense matrix")
        return Projection(name, source, target, "dense", np.array(m, dtype=np.float64), delay=delay)

    def neuron(self, n: _Node) -> None:
        """A population for neuron node n: its parameters, its input gain and bias, its projections."""
        e = self.input_sum(n)
        neuron, gain, v_bias = self.neuron_params(n)
        if neuron.du < 1.0 and np.any(e.bias != 0):
            raise UnsupportedError(f"node '{n.name}' ({n.kind}): a bias reaches its synaptic current (tau_syn > dt); "
                                   f"the chip adds bias to the voltage only")
        bias = gain.reshape(n.shape) * e.bias.reshape(n.shape) + v_bias
        self.add_population(n, Population(name=n.name, shape=n.shape, neuron=neuron, bias=_compact_bias(bias)))
        self.emit(n.name, e.terms, gain.reshape(-1))

    def neuron_params(self, n: _Node) -> tuple[Neuron, np.ndarray, np.ndarray]:
        """(Neuron, input gain [shape], voltage bias [shape]) of a neuron node (forward Euler with step dt)."""
        node, kind, dt = n.node, n.kind, self.dt

        def arr(field_name):
            value = np.asarray(getattr(node, field_name), dtype=np.float64)
            try:
                return np.broadcast_to(value, n.shape).astype(np.float64)
            except ValueError:
                raise FormatError(f"node '{n.name}' ({kind}): {field_name} of shape {value.shape} does not fit "
                                  f"the shape {n.shape}") from None

        def uniform(field_name, values):
            flat = np.ravel(values)
            if flat.size and not np.all(flat == flat[0]):
                raise UnsupportedError(f"node '{n.name}' ({kind}): {field_name} varies across neurons "
                                       f"({flat.min():g} .. {flat.max():g}); the chip shares one per population")
            return float(flat[0]) if flat.size else 0.0

        def decay(tau_name):
            tau = arr(tau_name)
            if np.any(~(tau > 0)):
                raise UnsupportedError(f"node '{n.name}' ({kind}): {tau_name} must be positive")
            d = uniform(f"{tau_name} (dt / {tau_name})", dt / tau)
            if d > 1.0:
                raise UnsupportedError(f"node '{n.name}' ({kind}): {tau_name} {tau.flat[0]:g} s is shorter than "
                                       f"dt = {dt:g} s (forward Euler would overshoot; pass the exporter's dt)")
            return d, tau

        def ratio(r, tau, what):
            with np.errstate(invalid="ignore", divide="ignore"):
                g = r * (dt / tau)
            if not np.all(np.isfinite(g)):
                raise UnsupportedError(f"node '{n.name}' ({kind}): {what} is undefined (infinite tau and r: snnTorch "
                                       f"writes beta = 1 this way; export the neuron as IF)")
            return g

        def threshold():
            return uniform("v_threshold", arr("v_threshold")), uniform("v_reset", arr("v_reset"))

        zeros = np.zeros(n.shape)
        if kind == "Threshold":
            thr = uniform("threshold", arr("threshold"))
            return Neuron(threshold=thr, du=1.0, dv=1.0, reset="hard"), np.ones(n.shape), zeros
        if kind in ("IF", "I"):
            gain = arr("r") * dt
            neuron = Neuron(threshold=None, du=1.0, dv=0.0, reset="none")
            if kind == "IF":
                thr, reset = threshold()
                neuron = Neuron(threshold=thr, du=1.0, dv=0.0, reset="hard", reset_value=reset)
            return neuron, _snap(gain), zeros
        if kind in ("LIF", "LI"):
            dv, tau = decay("tau")
            gain = ratio(arr("r"), tau, "the input gain r dt / tau")
            v_bias = arr("v_leak") * (dt / tau)
            neuron = Neuron(threshold=None, du=1.0, dv=dv, reset="none")
            if kind == "LIF":
                thr, reset = threshold()
                neuron = Neuron(threshold=thr, du=1.0, dv=dv, reset="hard", reset_value=reset)
            return neuron, _snap(gain), v_bias
        # CubaLIF, CubaLI: I += dt/tau_syn (-I + w_in S); v += dt/tau_mem (v_leak - v + r I)
        du, tau_syn = decay("tau_syn")
        dv, tau_mem = decay("tau_mem")
        gain = ratio(arr("w_in"), tau_syn, "w_in dt / tau_syn") * ratio(arr("r"), tau_mem, "r dt / tau_mem")
        v_bias = arr("v_leak") * (dt / tau_mem)
        neuron = Neuron(threshold=None, du=du, dv=dv, reset="none")
        if kind == "CubaLIF":
            thr, reset = threshold()
            neuron = Neuron(threshold=thr, du=du, dv=dv, reset="hard", reset_value=reset)
        return neuron, _snap(gain), v_bias

    # -- the whole graph ------------------------------------------------------------------------------------
    def linear_order(self) -> list[_Node]:
        """Linear nodes in an order where each comes after the linear nodes feeding it."""
        linear = {name for name, n in self.nodes.items() if n.kind in LINEAR or n.kind == PASS}
        indeg = {name: sum(1 for p in self.nodes[name].preds if p in linear) for name in linear}
        ready = sorted((self.nodes[name].index, name) for name, d in indeg.items() if d == 0)
        order = []
        while ready:
            _, name = ready.pop(0)
            order.append(self.nodes[name])
            for s in self.nodes[name].succs:
                if s in indeg:
                    indeg[s] -= 1
                    if indeg[s] == 0:
                        ready.append((self.nodes[s].index, s))
                        ready.sort()
        if len(order) != len(linear):
            cycle = sorted(name for name, d in indeg.items() if d > 0)
            raise UnsupportedError(f"nodes {', '.join(cycle[:4])}: a cycle through linear nodes only (no neuron to "
                                   f"carry the state)")
        return order

    def run(self) -> Graph:
        self.infer_shapes()
        for n in self.nodes.values():
            if n.kind == "Input":
                graded = self.input_kind == "graded"
                self.add_population(n, Population(name=n.name, shape=n.shape, is_input=True, neuron=Neuron(
                    threshold=0.0, du=1.0, dv=1.0, reset="hard", graded=graded)))
        for n in self.linear_order():
            self.linear(n)
        for n in self.nodes.values():
            if n.kind in NEURONS:
                self.neuron(n)
        outputs = []
        for n in self.nodes.values():
            if n.kind != "Output" or not n.preds:
                continue
            pops = {p.name: p for _, p in self.populations}
            if len(n.preds) == 1 and n.preds[0] in pops and n.preds[0] not in self.relays:
                pops[n.preds[0]].is_output = True
                outputs.append(pops[n.preds[0]])
                continue
            # a readout of a linear value: v = a + bias each step (no memory, never fires)
            e = self.input_sum(n)
            pop = Population(name=n.name, shape=n.shape, is_output=True, bias=_compact_bias(e.bias),
                             neuron=Neuron(threshold=None, du=1.0, dv=1.0, reset="none"))
            self.add_population(n, pop)
            self.emit(n.name, e.terms, np.ones(linmap.size(n.shape)))
            outputs.append(pop)
        graph = Graph(populations=[], projections=self.projections, timing="ideal",
                      meta={"source": self.where, "format": "nir", "dt": self.dt, "input_kind": self.input_kind})
        graph.populations = self.ordered()
        readouts = [p for p in outputs if p.neuron.threshold is None]
        if len(outputs) == 1 and readouts:
            graph.meta["readout"] = readouts[0].name
        steps = self.metadata.get("T")
        if steps is not None and np.ndim(steps) == 0:
            graph.meta["T"] = int(steps)
        graph.validate()
        return graph

    def ordered(self) -> list[Population]:
        """Populations in an order where every zero-delay projection goes forward; a zero-delay projection that
        closes a cycle (depth first from the inputs, in file order) gets delay 1: the recurrent connection reads
        the previous step."""
        pops = {p.name: (i, p) for i, p in self.populations}
        out_edges: dict[str, list[Projection]] = {name: [] for name in pops}
        for q in self.projections:
            out_edges[q.source].append(q)
        state: dict[str, int] = {}
        post: list[str] = []
        roots = sorted(pops, key=lambda name: (not pops[name][1].is_input, pops[name][0]))
        for root in roots:
            if root in state:
                continue
            stack = [(root, iter(sorted(out_edges[root], key=lambda q: pops[q.target][0])))]
            state[root] = 1
            while stack:
                name, it = stack[-1]
                q = next(it, None)
                if q is None:
                    state[name] = 2
                    post.append(name)
                    stack.pop()
                    continue
                if np.max(q.delay) > 0 and np.min(q.delay) > 0:
                    continue
                if state.get(q.target) == 1:           # back edge: recurrent
                    q.delay = q.delay + 1
                elif q.target not in state:
                    state[q.target] = 1
                    stack.append((q.target, iter(sorted(out_edges[q.target], key=lambda r: pops[r.target][0]))))
        return [pops[name][1] for name in reversed(post)]


def _snap(gain: np.ndarray) -> np.ndarray:
    return np.where(np.abs(gain - 1.0) <= GAIN_SNAP, 1.0, gain)


def _compact_bias(bias: np.ndarray) -> Optional[np.ndarray]:
    """A full bias as `[C, 1, 1]` when constant per channel, None when zero."""
    bias = np.asarray(bias, dtype=np.float64)
    if not np.any(bias):
        return None
    if bias.ndim == 3 and np.all(bias == bias[:, :1, :1]):
        return bias[:, :1, :1].copy()
    return bias
