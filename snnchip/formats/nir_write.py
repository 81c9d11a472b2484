"""Writing the float deployable graph as NIR (`nir` 1.0.8), the inverse of `nir_read` (docs/nir.md).

`write_nir(graph, path, dt=1e-4)` / `to_nir(graph, dt)`: an ideal-timing float graph becomes a NIRGraph:
- every population a node named after it: IF (dv = 0), LIF, LI / I (readouts), CubaLIF / CubaLI (du < 1), with
  `tau = dt / dv`, `r = 1 / dv` (input gain 1), `v_threshold`, `v_reset`; input populations are `Input` nodes;
- every projection a Conv2d or Affine node between them (a dense projection from a `(C, H, W)` population behind a
  Flatten; a dense map that only sums each channel over its positions, as the lowering's GAP + FC, as AvgPool2d +
  Flatten + Affine), projections with equal weights from one source share one node, identity projections are plain
  edges, delays are Delay nodes;
- graded relays (the MS-ResNet shortcut of `lower(..., shortcut='relay')`) are no node at all: NIR sums the edges
  into a node, so every consumer of a relay takes an edge from each node feeding the relay. The membrane shortcut
  becomes edges, one Conv2d node per convolution;
- a population's bias goes into the bias of a linear node feeding it that no population written before it reads
  (so an MS-ResNet's biases land on the convolutions they came from), else into `v_leak` (`bias / dv`).
Refused in one line: fixed-point or pipelined graphs, soft reset, a threshold without reset, per-synapse delay
matrices, recurrent (backward) projections, and a dense projection into a `(C, H, W)` population (NIR has no
reshape node).
"""
from __future__ import annotations

import io
from typing import Optional

import numpy as np

from ..errors import FormatError, InputError, UnsupportedError
from ..fileio import write_bytes
from ..graph import Graph, Population, Projection
from . import linmap
from .nir_read import DEFAULT_DT

BIAS_TOLERANCE = 1e-10      # relative: a residual bias this small is float rounding, not a bias to place


def write_nir(graph: Graph, path, *, dt: float = DEFAULT_DT, metadata: Optional[dict] = None) -> None:
    """Write `graph` (float, ideal timing) to `path` as a NIR HDF5 file, atomically."""
    import nir
    nir_graph = to_nir(graph, dt=dt, metadata=metadata)
    buffer = io.BytesIO()            # built in memory: HDF5 can crash on a disk that fills up under it
    nir.write(buffer, nir_graph)
    write_bytes(path, buffer.getvalue())


def to_nir(graph: Graph, *, dt: float = DEFAULT_DT, metadata: Optional[dict] = None):
    """The `nir.NIRGraph` of `graph`; see the module docstring."""
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise InputError(f"dt must be a positive number of seconds, got {dt!r}")
    return _Writer(graph, float(dt), metadata or {}).run()


def _is_identity(graph: Graph, q: Projection) -> bool:
    src, tgt = graph.population(q.source).shape, graph.population(q.target).shape
    if np.any(np.asarray(q.delay) != 0) and np.ndim(q.delay) != 0:
        return False
    w = q.weight
    if q.kind == "conv":
        c = w.shape[0]
        plain = tuple(q.stride) == (1, 1) and tuple(q.padding) == (0, 0) and tuple(q.dilation) == (1, 1)
        if not plain or tuple(src) != tuple(tgt) or w.shape[2:] != (1, 1):
            return False
        if q.groups == 1:
            return w.shape[1] == c and np.array_equal(w[:, :, 0, 0], np.eye(c))
        return q.groups == c and w.shape[1] == 1 and np.all(w == 1)
    return w.shape[0] == w.shape[1] and tuple(src) == tuple(tgt) and np.array_equal(w, np.eye(w.shape[0]))


def _channel_sum(q: Projection, src_shape: tuple) -> Optional[np.ndarray]:
    """For a dense projection from `(C, H, W)` whose weight is constant over each channel's positions (GAP + FC),
    the per-channel weight `[F_out, C]`; else None."""
    if q.kind != "dense" or len(src_shape) != 3 or src_shape[1] * src_shape[2] == 1:
        return None
    w = q.weight.reshape(q.weight.shape[0], src_shape[0], -1)
    return w[:, :, 0].copy() if np.all(w == w[:, :, :1]) else None


class _Writer:
    def __init__(self, graph: Graph, dt: float, metadata: dict) -> None:
        self.graph, self.dt, self.metadata = graph, dt, metadata
        self.nodes: dict = {}           # NIR node name -> dict of what to build (kind, params)
        self.edges: list = []
        self.edge_set: set = set()
        self.preds: dict = {}           # NIR node -> its NIR predecessors
        self.outlets: dict = {}         # projection name -> NIR node carrying its output (None: identity)
        self.bias_free: list = []       # linear nodes that may still take a bias, in creation order
        self.node_of_pop: dict = {}     # population -> its NIR node (None for relays)

    # -- checks -----------------------------------------------------------------------------------------------
    def check(self) -> None:
        graph = self.graph
        if graph.fixed:
            raise UnsupportedError("NIR is a float format: write the float graph (before quantisation)")
        if graph.timing != "ideal":
            raise UnsupportedError("NIR graphs have ideal timing (every layer in the same step): write the ideal "
                                   "graph (before pipelining)")
        graph.validate()
        order = {p.name: i for i, p in enumerate(graph.populations)}
        for q in graph.projections:
            if order[q.source] >= order[q.target]:
                raise UnsupportedError(f"projection '{q.name}' goes backwards ({q.source} -> {q.target}): recurrent "
                                       f"projections are not written to NIR")
            src = graph.population(q.source)
            if np.ndim(q.delay) != 0 and tuple(np.shape(q.delay)) != tuple(src.shape):
                raise UnsupportedError(f"projection '{q.name}': per-synapse delays have no NIR form (NIR delays one "
                                       f"signal per neuron)")
            tgt = graph.population(q.target)
            if q.kind == "dense" and len(tgt.shape) != 1 and not _is_identity(graph, q):
                raise UnsupportedError(f"projection '{q.name}': a dense projection into the {tgt.shape} population "
                                       f"'{tgt.name}' has no NIR form (NIR has no reshape node)")
        for p in graph.populations:
            n = p.neuron
            if p.is_input or n.graded:
                continue
            if n.reset == "soft":
                raise UnsupportedError(f"population '{p.name}': soft reset (subtract) has no NIR form (NIR neurons "
                                       f"reset to v_reset)")
            if n.threshold is not None and n.reset == "none":
                raise UnsupportedError(f"population '{p.name}': a threshold without reset has no NIR form")
            if not 0.0 <= n.dv <= 1.0 or not 0.0 < n.du <= 1.0:
                raise UnsupportedError(f"population '{p.name}': du {n.du}, dv {n.dv} outside NIR's time constants "
                                       f"(0 < du <= 1, 0 <= dv <= 1)")
            if n.du < 1.0 and n.dv == 0.0:
                raise UnsupportedError(f"population '{p.name}': a CubaLIF without leak (dv = 0) has no finite NIR "
                                       f"tau_mem")

    # -- structure ---------------------------------------------------------------------------------------------
    def name(self, wanted: str) -> str:
        base = wanted.replace("/", "|")      # HDF5 group names cannot hold '/'
        name, i = base, 2
        while name in self.nodes:
            name, i = f"{base}#{i}", i + 1
        return name

    def edge(self, a: str, b: str, why: str) -> None:
        if (a, b) in self.edge_set:
            raise UnsupportedError(f"{why}: the output of '{a}' would reach '{b}' twice by plain edges (NIR sums "
                                   f"edges but cannot double one)")
        self.edge_set.add((a, b))
        self.edges.append((a, b))
        self.preds.setdefault(b, []).append(a)

    def out(self, pop: str) -> list[str]:
        """The NIR nodes whose sum is population `pop`'s output (a relay: the nodes feeding it)."""
        node = self.node_of_pop[pop]
        if node is not None:
            return [node]
        names = []
        for q in self.graph.into(pop):
            names += self.out(q.source) if self.outlets[q.name] is None else [self.outlets[q.name]]
        return names

    def linear_node(self, q: Projection) -> Optional[str]:
        """The NIR node chain of projection q (delay, flatten / pool, then Conv2d / Affine); returns its last node,
        None for an identity projection without delay. Projections equal in everything but the target share it."""
        graph = self.graph
        src = graph.population(q.source)
        delayed = np.any(np.asarray(q.delay) != 0)
        if _is_identity(graph, q) and not delayed:
            return None
        key = (q.source, q.kind, q.weight.shape, tuple(q.stride), tuple(q.padding), tuple(q.dilation), q.groups,
               np.asarray(q.delay).tobytes())
        for other, node in self.shared.get(key, []):
            if np.array_equal(other.weight, q.weight) and np.array_equal(other.delay, q.delay):
                return node
        chain = []
        if delayed:
            chain.append((self.name(f"{q.name}.delay"), dict(kind="Delay", delay=np.broadcast_to(
                np.asarray(q.delay, dtype=np.float64) * self.dt, src.shape).copy(), out_shape=tuple(src.shape))))
        if _is_identity(graph, q):
            pass
        elif q.kind == "conv":
            chain.append((self.name(q.name), dict(
                kind="Conv2d", weight=q.weight, stride=tuple(q.stride), padding=tuple(q.padding),
                dilation=tuple(q.dilation), groups=int(q.groups), input_shape=tuple(src.shape[1:]),
                bias=np.zeros(q.weight.shape[0]), out_shape=tuple(graph.population(q.target).shape))))
        else:
            sums = _channel_sum(q, src.shape)
            if sums is not None:
                hw = src.shape[1] * src.shape[2]
                chain.append((self.name(f"{q.name}.pool"), dict(kind="AvgPool2d", kernel=tuple(src.shape[1:]),
                                                                out_shape=(src.shape[0], 1, 1))))
                chain.append((self.name(f"{q.name}.flatten"), dict(kind="Flatten", shape=(src.shape[0], 1, 1),
                                                                   out_shape=(src.shape[0],))))
                chain.append((self.name(q.name), dict(kind="Affine", weight=sums * hw,
                                                      bias=np.zeros(q.weight.shape[0]),
                                                      out_shape=(q.weight.shape[0],))))
            else:
                if len(src.shape) != 1:
                    chain.append((self.name(f"{q.name}.flatten"), dict(kind="Flatten", shape=tuple(src.shape),
                                                                       out_shape=(src.size,))))
                chain.append((self.name(q.name), dict(kind="Affine", weight=q.weight,
                                                      bias=np.zeros(q.weight.shape[0]),
                                                      out_shape=(q.weight.shape[0],))))
        for node, spec in chain:
            self.nodes[node] = spec
        for s in self.out(q.source):
            self.edge(s, chain[0][0], f"projection '{q.name}'")
        for (a, _), (b, _) in zip(chain, chain[1:]):
            self.edge(a, b, f"projection '{q.name}'")
        last = chain[-1][0]
        if self.nodes[last]["kind"] in ("Conv2d", "Affine"):
            self.bias_free.append(last)
        self.shared.setdefault(key, []).append((q, last))
        return last

    def run(self):
        import nir
        self.check()
        graph = self.graph
        self.shared: dict = {}
        for p in graph.populations:
            if p.is_input:
                self.node_of_pop[p.name] = self.name(p.name)
                self.nodes[self.node_of_pop[p.name]] = dict(kind="Input", shape=tuple(p.shape))
            elif p.neuron.graded:
                self.node_of_pop[p.name] = None
            else:
                self.node_of_pop[p.name] = self.name(p.name)
                self.nodes[self.node_of_pop[p.name]] = dict(kind="neuron", pop=p, v_leak=np.zeros(p.shape))
        for p in graph.populations:
            for q in graph.into(p.name):
                self.outlets[q.name] = self.linear_node(q)
                target = self.node_of_pop[p.name]
                if target is None:
                    continue
                for s in ([self.outlets[q.name]] if self.outlets[q.name] else self.out(q.source)):
                    self.edge(s, target, f"projection '{q.name}'")
        self.place_biases()
        outputs = [p for p in graph.populations if p.is_output]
        for p in outputs:
            node = self.name("output" if len(outputs) == 1 else f"{p.name}.output")
            self.nodes[node] = dict(kind="Output", shape=tuple(p.shape))
            for s in self.out(p.name):
                self.edge(s, node, f"output '{p.name}'")
        nodes = {name: self.build(name, spec) for name, spec in self.nodes.items()}
        meta = {"written_by": "snnchip", "dt": self.dt, "input_kind": str(graph.meta.get("input_kind", "graded"))}
        if graph.steps is not None:
            meta["T"] = int(graph.steps)
        meta.update({k: v for k, v in self.metadata.items() if isinstance(v, (str, int, float))})
        try:
            return nir.NIRGraph(nodes=nodes, edges=list(self.edges), metadata=meta, type_check=True)
        except Exception as exc:    # a writer bug, not the user's: still one line
            raise FormatError(f"the NIR graph failed nir's type check: {' '.join(str(exc).split())}") from None

    # -- biases ------------------------------------------------------------------------------------------------
    def place_biases(self) -> None:
        """Each population's bias on a linear node feeding it that no earlier population reads, else in v_leak."""
        done: set[str] = set()
        for p in self.graph.populations:
            node = self.node_of_pop[p.name]
            if node is None or p.is_input:
                continue
            spec = self.nodes[node]
            want = p.bias_full().reshape(p.shape)
            have = self.effective(node)
            residual = want - have
            scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
            if residual.size and float(np.max(np.abs(residual))) > BIAS_TOLERANCE * scale:
                holder = self.bias_holder(node, residual, done)
                if holder is not None:
                    name, value = holder
                    self.nodes[name]["bias"] = value
                    self.bias_free.remove(name)
                elif p.neuron.dv == 0.0:
                    raise UnsupportedError(f"population '{p.name}': its bias has no NIR form (no linear input of its "
                                           f"own to carry it, and a neuron without leak has no v_leak)")
                else:
                    spec["v_leak"] = residual / p.neuron.dv
            done.add(node)

    def bias_holder(self, node: str, residual: np.ndarray, done: set) -> Optional[tuple[str, np.ndarray]]:
        """(linear node, its bias) that delivers `residual` to `node` and reaches no population in `done`."""
        for cand in reversed(self.preds.get(node, [])):
            if cand not in self.bias_free:
                continue
            if self.readers(cand) & done:
                continue
            kind = self.nodes[cand]["kind"]
            if kind == "Conv2d":
                value = linmap.per_channel(residual.reshape(-1), residual.shape)
                if value is not None:
                    return cand, value
            elif kind == "Affine" and residual.ndim == 1:
                return cand, residual.copy()
        return None

    def readers(self, node: str) -> set[str]:
        """The neuron / output nodes that a linear node's output reaches (through linear nodes)."""
        found, stack, seen = set(), [node], set()
        while stack:
            n = stack.pop()
            for b in (b for a, b in self.edges if a == n):
                if b in seen:
                    continue
                seen.add(b)
                if self.nodes[b]["kind"] in ("neuron", "Output"):
                    found.add(b)
                else:
                    stack.append(b)
        return found

    def effective(self, node: str) -> np.ndarray:
        """The constant part of the input of NIR node `node`: the biases of the linear nodes feeding it, through
        their maps (a neuron's or input's output contributes none)."""
        memo: dict = {}

        def out_bias(n: str) -> Optional[np.ndarray]:
            if n in memo:
                return memo[n]
            spec = self.nodes[n]
            kind = spec["kind"]
            if kind in ("neuron", "Input"):
                memo[n] = None
                return None
            inputs = [out_bias(a) for a in self.preds.get(n, [])]
            inputs = [x for x in inputs if x is not None]
            x = sum(inputs) if inputs else None
            if kind == "Delay":
                if x is not None and np.any(x) and np.any(spec["delay"]):
                    raise UnsupportedError(f"node '{n}': a bias would pass through a delay (it would start late)")
                y = x
            elif kind == "Conv2d":
                y = np.broadcast_to(np.asarray(spec["bias"], dtype=np.float64)[:, None, None], spec["out_shape"])
                if x is not None:
                    y = y + linmap.conv_forward(x[None], spec["weight"], spec["stride"], spec["padding"],
                                                spec["dilation"], spec["groups"])[0]
            elif kind == "AvgPool2d":
                y = None if x is None else x.mean(axis=(1, 2), keepdims=True)
            elif kind == "Flatten":
                y = None if x is None else x.reshape(-1)
            else:   # Affine
                y = spec["bias"] + (0 if x is None else spec["weight"] @ x.reshape(-1))
            memo[n] = y
            return y

        pop = self.nodes[node]["pop"]
        total = np.zeros(pop.shape)
        for a in self.preds.get(node, []):
            y = out_bias(a)
            if y is not None:
                total = total + y.reshape(pop.shape)
        return total

    # -- nodes -------------------------------------------------------------------------------------------------
    def build(self, name: str, spec: dict):
        import nir
        kind = spec["kind"]
        if kind == "Input":
            return nir.Input(input_type=np.array(spec["shape"]))
        if kind == "Output":
            return nir.Output(output_type=np.array(spec["shape"]))
        if kind == "Delay":
            return nir.Delay(delay=spec["delay"])
        if kind == "Conv2d":
            return nir.Conv2d(input_shape=spec["input_shape"], weight=spec["weight"], stride=spec["stride"],
                              padding=spec["padding"], dilation=spec["dilation"], groups=spec["groups"],
                              bias=np.asarray(spec["bias"], dtype=np.float64))
        if kind == "AvgPool2d":
            k = np.array(spec["kernel"])
            return nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array([0, 0]))
        if kind == "Flatten":
            return nir.Flatten(input_type={"input": np.array(spec["shape"])}, start_dim=0, end_dim=-1)
        if kind == "Affine":
            return nir.Affine(weight=spec["weight"], bias=np.asarray(spec["bias"], dtype=np.float64))
        return self.neuron_node(spec["pop"], spec["v_leak"])

    def neuron_node(self, p: Population, v_leak: np.ndarray):
        """The NIR neuron whose forward-Euler step with dt is the population's update (input gain 1)."""
        import nir
        n, dt, shape = p.neuron, self.dt, p.shape

        def full(value):
            return np.full(shape, float(value))

        fires = n.threshold is not None
        if n.du < 1.0:
            common = dict(tau_syn=full(dt / n.du), w_in=full(1.0 / n.du), tau_mem=full(dt / n.dv),
                          r=full(1.0 / n.dv), v_leak=np.asarray(v_leak, dtype=np.float64))
            if fires:
                return nir.CubaLIF(v_threshold=full(n.threshold), v_reset=full(n.reset_value), **common)
            return nir.CubaLI(**common)
        if n.dv == 0.0:
            if fires:
                return nir.IF(r=full(1.0 / dt), v_threshold=full(n.threshold), v_reset=full(n.reset_value))
            return nir.I(r=full(1.0 / dt))
        common = dict(tau=full(dt / n.dv), r=full(1.0 / n.dv), v_leak=np.asarray(v_leak, dtype=np.float64))
        if fires:
            return nir.LIF(v_threshold=full(n.threshold), v_reset=full(n.reset_value), **common)
        return nir.LI(**common)
