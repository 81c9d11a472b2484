"""Lowering a trained spiking ResNet (docs/model-contract.md) to the float deployable graph (ideal timing).

`lower(model)` returns a float64 `Graph` whose populations are the model's spiking neurons, named by their module
names (`graph.meta['torch_names']` maps population -> `forward_all` key), plus an input population and a readout:
- BN / tdBN folded into the preceding conv (fuse.py).
- MS-ResNet (`kind='ms'`): the membrane shortcut unrolled and its downsampling shortcuts composed into spike-driven
  convolutions (compose.py): every LIF population receives the stem projection of the input and the conv2
  projection of every earlier block's lif2 spikes; the composed biases are summed into the population's bias.
- Vanilla spiking ResNet (`'vanilla'`): spikes on the shortcut (identity = 1x1 identity projection, downsample =
  folded 1x1 conv on spikes). PlainNet (`'plain'`): no shortcut.
- Head: final LIF, then GAP + FC as one dense projection (weight `W_fc / (H W)` repeated over positions) into a
  readout population (no threshold, du = 1, dv = 0) whose voltage at step t is `sum_{tau <= t} FC(GAP(s_tau))`
  (+ (t + 1) b), i.e. (t + 1) times the model's output when t + 1 = T.
- Input: binary -> a neuron firing iff x > 0; graded -> a relay (`graded=True`) forwarding x.
- MPR is firing-invariant and dropped; training side branches are ignored.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ..errors import InputError
from ..graph import Graph, Neuron, Population, Projection, conv_output_shape
from .compose import MembraneSum, Term
from .fuse import fold, layer_weight

InputKind = Literal["binary", "graded"]
ShortcutMode = Literal["composed", "relay"]
INPUT = "input"
READOUT = "readout"


def lower(model, *, input_kind: InputKind = "graded", shortcut: ShortcutMode = "composed") -> Graph:
    """Float64 graph (ideal timing) of `model` (a `train.models.SpikingResNet`); see the module docstring.

    input_kind: 'binary' if the input frames are 0/1 spikes, 'graded' (default, always exact) otherwise.
    shortcut (MS-ResNet): 'composed' (default) gives every LIF population a projection from each earlier block,
    spike-driven only (quadratic in the blocks per stage); 'relay' adds after each block a graded relay
    population `<block>.relay` forwarding the running membrane sum (linear cost, graded payloads).
    Raises InputError naming the module for anything that cannot be mapped.
    """
    if input_kind not in ("binary", "graded"):
        raise InputError(f"input_kind must be 'binary' or 'graded', got '{input_kind}'")
    if shortcut not in ("composed", "relay"):
        raise InputError(f"shortcut must be 'composed' or 'relay', got '{shortcut}'")
    return _Lowering(model, input_kind, shortcut).run()


def neuron_of(module, name: str) -> Neuron:
    """The graph neuron of a `SpikingNeuron` (h = decay u + I; fire if h > threshold; reset)."""
    cfg = getattr(module, "config", None)
    if cfg is None:
        raise InputError(f"module '{name}' ({type(module).__name__}) is not a SpikingNeuron (no .config)")
    reset = cfg.reset
    if reset not in ("hard", "soft", "none"):
        raise InputError(f"neuron '{name}': unsupported reset '{reset}'")
    decay = float(cfg.decay)
    if not 0.0 <= decay <= 1.0:
        raise InputError(f"neuron '{name}': decay {decay} is outside [0, 1]")
    return Neuron(threshold=float(cfg.threshold), du=1.0, dv=1.0 - decay, reset=reset,
                  reset_value=float(cfg.reset_value) if reset == "hard" else 0.0,
                  reset_amount=float(cfg.spike_value) if reset == "soft" else 0.0)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))
    return int(v), int(v)


def _conv_geometry(conv) -> dict:
    return dict(stride=_pair(conv.stride), padding=_pair(conv.padding),
                dilation=_pair(getattr(conv, "dilation", 1)), groups=int(getattr(conv, "groups", 1)))


def _out_shape(shape: tuple[int, ...], weight: np.ndarray, geo: dict) -> tuple[int, int, int]:
    return conv_output_shape(shape, weight.shape[0], weight.shape[2:], geo["stride"], geo["padding"], geo["dilation"])


class _Lowering:
    def __init__(self, model, input_kind: InputKind, shortcut: ShortcutMode) -> None:
        self.model = model
        self.input_kind = input_kind
        self.relay = shortcut == "relay"
        self.names = {id(m): n for n, m in model.named_modules()}
        self.graph = Graph(meta={"torch_names": {}, "source": "snnchip.export.lower", "input_kind": input_kind,
                                 "shortcut": shortcut})

    # -- helpers ---------------------------------------------------------------------------------
    def name(self, module) -> str:
        return self.names[id(module)]

    def add_population(self, module, shape, bias=None) -> str:
        name = self.name(module)
        self.graph.populations.append(Population(
            name=name, shape=tuple(int(s) for s in shape), neuron=neuron_of(module, name),
            bias=None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1, 1, 1)))
        self.graph.meta["torch_names"][name] = name
        return name

    def project(self, source: str, target: str, weight: np.ndarray, geo: dict) -> None:
        self.graph.projections.append(Projection(
            name=f"{source}->{target}", source=source, target=target, kind="conv", weight=weight,
            stride=geo["stride"], padding=geo["padding"], dilation=geo["dilation"], groups=geo["groups"]))

    def conv_norm(self, conv, norm) -> tuple[np.ndarray, np.ndarray, dict]:
        w, b = fold(conv, norm, self.name(conv))
        return w, b, _conv_geometry(conv)

    def shape_of(self, pop: str) -> tuple[int, ...]:
        return self.graph.population(pop).shape

    # -- the walk --------------------------------------------------------------------------------
    def run(self) -> Graph:
        model = self.model
        missing = [a for a in ("config", "stem", "stages", "head") if not hasattr(model, a)]
        if missing:
            raise InputError(f"{type(model).__name__} is not a spiking ResNet (no {', '.join(missing)}; "
                            f"see docs/model-contract.md)")
        self.check_supported()
        cfg = model.config
        in_ch = int(cfg.in_channels)
        size = _pair(cfg.input_size)
        # model_config: the trained architecture, on which snn-energy prices the ANN baseline (docs/energy.md)
        from ..train.checkpoint import plain_config
        self.graph.meta.update(T=int(cfg.T), arch=str(cfg.arch), num_classes=int(cfg.num_classes),
                               model_config=plain_config(cfg))
        graded = self.input_kind == "graded"
        self.graph.populations.append(Population(
            name=INPUT, shape=(in_ch, *size), is_input=True,
            neuron=Neuron(threshold=0.0, du=1.0, dv=1.0, reset="hard", graded=graded)))

        stem = model.stem
        w, b, geo = self.conv_norm(stem.conv, stem.norm)
        shape = _out_shape((in_ch, *size), w, geo)
        if getattr(stem, "lif", None) is None:
            if geo["dilation"] != (1, 1) or geo["groups"] != 1:
                raise InputError(f"'{self.name(stem.conv)}': a membrane-input stem needs groups=1, dilation=1")
            state = MembraneSum(shape)
            state.add(Term(INPUT, w, geo["stride"], geo["padding"]), b)
        else:
            state = self.add_population(stem.lif, shape, b)
            self.project(INPUT, state, w, geo)

        for stage in model.stages:
            for block in stage:
                state = self.block(block, state)
        self.head(model.head, state)
        self.graph.validate()
        return self.graph

    def check_supported(self) -> None:
        for name, module in self.model.named_modules():
            if hasattr(module, "rec_weight") or type(module).__name__ == "RecurrentDense":
                raise InputError(f"module '{name}': recurrent layers are not supported in a spiking ResNet export")
        for stage in self.model.stages:
            for block in stage:
                kind = getattr(block, "kind", None)
                if kind not in ("ms", "vanilla", "plain"):
                    raise InputError(f"block '{self.name(block)}' of kind '{kind}' cannot be lowered "
                                    f"(supported: ms, vanilla, plain)")

    def block(self, block, state):
        if block.kind == "ms":
            if not isinstance(state, MembraneSum):
                raise InputError(f"block '{self.name(block)}' (ms) follows a spiking layer; mixed archs unsupported")
            return self.ms_block(block, state)
        if isinstance(state, MembraneSum):
            raise InputError(f"block '{self.name(block)}' ({block.kind}) needs spikes but receives a membrane input")
        return self.spiking_block(block, state)

    def membrane_population(self, module, state: MembraneSum) -> str:
        """A LIF population receiving every term of `state` (one projection each) and its bias."""
        pop = self.add_population(module, state.shape, state.bias)
        for term in state.terms:
            self.project(term.source, pop, term.weight,
                         dict(stride=term.stride, padding=term.padding, dilation=(1, 1), groups=1))
        return pop

    def ms_block(self, block, state: MembraneSum) -> MembraneSum:
        lif1 = self.membrane_population(block.lif1, state)
        w1, b1, geo1 = self.conv_norm(block.conv1, block.norm1)
        lif2 = self.add_population(block.lif2, _out_shape(state.shape, w1, geo1), b1)
        self.project(lif1, lif2, w1, geo1)
        w2, b2, geo2 = self.conv_norm(block.conv2, block.norm2)
        if geo2["dilation"] != (1, 1) or geo2["groups"] != 1:
            raise InputError(f"'{self.name(block.conv2)}': conv2 of an MS block needs groups=1, dilation=1")
        out_shape = _out_shape(self.shape_of(lif2), w2, geo2)
        if block.shortcut is not None:
            state = self.shortcut_on_membrane(block.shortcut, state)
        if tuple(out_shape) != tuple(state.shape):
            raise InputError(f"block '{self.name(block)}': residual {out_shape} and shortcut {state.shape} differ")
        state = MembraneSum(state.shape, list(state.terms), state.bias.copy())
        state.add(Term(lif2, w2, geo2["stride"], geo2["padding"]), b2)
        return self.relay_population(block, state) if self.relay else state

    def relay_population(self, block, state: MembraneSum) -> MembraneSum:
        """A graded relay emitting the spike-driven part of `state` (its bias stays with the LIF targets), and the
        state as a single identity term of that relay."""
        name = f"{self.name(block)}.relay"
        self.graph.populations.append(Population(
            name=name, shape=state.shape, neuron=Neuron(threshold=0.0, du=1.0, dv=1.0, graded=True)))
        for term in state.terms:
            self.project(term.source, name, term.weight,
                         dict(stride=term.stride, padding=term.padding, dilation=(1, 1), groups=1))
        c = state.shape[0]
        return MembraneSum(state.shape, [Term(name, np.eye(c).reshape(c, c, 1, 1))], state.bias.copy())

    def shortcut_on_membrane(self, sc, state: MembraneSum) -> MembraneSum:
        where = self.name(sc)
        pool = getattr(sc, "pool", None)
        if pool is not None:
            kernel, stride = _pool_params(pool, where)
            state = state.avgpool(kernel, stride)
        w, b, geo = self.conv_norm(sc.conv, sc.norm)
        if geo["padding"] != (0, 0) or geo["dilation"] != (1, 1) or geo["groups"] != 1:
            raise InputError(f"'{where}': shortcut conv must be 1x1, padding 0, groups 1")
        return state.conv1x1(w, b, geo["stride"], where)

    def spiking_block(self, block, source: str) -> str:
        src_shape = self.shape_of(source)
        w1, b1, geo1 = self.conv_norm(block.conv1, block.norm1)
        lif1 = self.add_population(block.lif1, _out_shape(src_shape, w1, geo1), b1)
        self.project(source, lif1, w1, geo1)
        w2, b2, geo2 = self.conv_norm(block.conv2, block.norm2)
        out_shape = _out_shape(self.shape_of(lif1), w2, geo2)
        shortcut = None
        if block.kind == "vanilla":
            shortcut = self.shortcut_on_spikes(block, source, src_shape)
            if shortcut.shape != out_shape:
                raise InputError(f"block '{self.name(block)}': residual {out_shape} and shortcut "
                                f"{shortcut.shape} differ")
            b2 = b2 + shortcut.bias
        lif2 = self.add_population(block.lif2, out_shape, b2)
        self.project(lif1, lif2, w2, geo2)
        if shortcut is not None:
            (term,) = shortcut.terms
            self.project(source, lif2, term.weight, dict(stride=term.stride, padding=term.padding,
                                                         dilation=(1, 1), groups=1))
        return lif2

    def shortcut_on_spikes(self, block, source: str, src_shape) -> MembraneSum:
        """The vanilla shortcut as a single conv of the source spikes (identity: a 1x1 identity weight)."""
        c = src_shape[0]
        state = MembraneSum(tuple(src_shape))
        state.add(Term(source, np.eye(c).reshape(c, c, 1, 1)), np.zeros(c))
        if block.shortcut is not None:
            state = self.shortcut_on_membrane(block.shortcut, state)
        return state

    def head(self, head, state) -> None:
        lif = getattr(head, "lif", None)
        if lif is not None:
            if not isinstance(state, MembraneSum):
                raise InputError(f"'{self.name(lif)}': a head LIF after spiking blocks is not supported")
            source = self.membrane_population(lif, state)
        elif isinstance(state, MembraneSum):
            raise InputError("the head has no LIF but the last block outputs a membrane input (not spikes)")
        else:
            source = state
        c, h, w = self.shape_of(source)
        fc_w = layer_weight(head.fc, self.name(head.fc))
        if fc_w.shape[1] != c:
            raise InputError(f"'{self.name(head.fc)}' expects {fc_w.shape[1]} features, the last layer has {c}")
        fc_b = getattr(head.fc, "bias", None)
        fc_b = np.zeros(fc_w.shape[0]) if fc_b is None else fc_b.detach().cpu().double().numpy().reshape(-1)
        self.graph.populations.append(Population(
            name=READOUT, shape=(fc_w.shape[0],), is_output=True, bias=fc_b,
            neuron=Neuron(threshold=None, du=1.0, dv=0.0, reset="none")))
        # GAP then FC = one dense map with each channel's weight spread evenly over its H*W positions.
        self.graph.projections.append(Projection(
            name=f"{source}->{READOUT}", source=source, target=READOUT, kind="dense",
            weight=np.repeat(fc_w / (h * w), h * w, axis=1)))
        self.graph.meta["readout"] = READOUT


def _pool_params(pool, where: str) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(pool, (tuple, list)):
        kernel, stride = pool
        return _pair(kernel), _pair(stride)
    if type(pool).__name__ not in ("AvgPool2d", "AvgPool3d") and not hasattr(pool, "kernel_size"):
        raise InputError(f"'{where}': unsupported shortcut pool {type(pool).__name__}")
    if any(p != 0 for p in np.ravel(getattr(pool, "padding", 0))) or getattr(pool, "ceil_mode", False):
        raise InputError(f"'{where}': shortcut pool must have padding 0 and floor mode")
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return kernel, stride
