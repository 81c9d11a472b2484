"""The deployable graph: the one intermediate representation between training and every backend.

A graph is a set of neuron **populations** joined by **projections** (dense or conv synapses). Fan-in is native:
a population's synaptic input is the sum of every projection into it. The same types hold float parameters
(after lowering from a trained model) and, after quantisation, the chip's integers (`Graph.fixed` is True).
Writers (NetX HDF5, ONNX), the simulator (`snnchip.sim`), the Lava builder (`snnchip.deploy`) and the energy
counters (`snnchip.energy`) all read this one structure. See docs/graph-ir.md.

Layouts: population shapes are channel-first, `(C, H, W)` or `(F,)`; tensors flowing through a graph are
`[N, *shape, T]` (slayer's layout). Conv weights are `[C_out, C_in / groups, kH, kW]`, dense weights `[F_out, F_in]`
with the source flattened in C-order (C, H, W).

Semantics of one time step t, for every population p (populations are stored in an order where every
projection with zero lag goes forward):

    a_p[t]  = sum over projections q into p of  q(s_src[t - lag_q])          # synaptic input
    u_p[t]  = (1 - du) u_p[t-1] + a_p[t]                                     # current
    v_p[t]  = (1 - dv) v_p[t-1] + u_p[t] + bias_p                            # voltage
    s_p[t]  = v_p[t] > threshold                                             # strict >, as Loihi
    reset:  hard -> v = reset_value where spiked; soft -> v -= reset_amount where spiked; none -> no change

`lag_q = q.delay` under ideal timing (every layer in the same step, as in torch) and `q.delay + 1` under
pipelined timing (one step per synaptic hop, as Lava's Dense/Conv; delays then align every fan-in).
An input population receives the external input `x[t]` as its synaptic input `a_p[t]`.
A population with `threshold = None` never spikes (a readout: its voltage is the output).
Populations with `graded = True` emit their input value instead of a spike (a relay; Loihi 2 graded spikes).

Fixed point (`Graph.fixed`): parameters are Loihi integers and the arithmetic is Lava's bit-accurate CUBA
(`lava.proc.lif.models.PyLifModelBitAcc`): `du`, `dv` in 1/4096 (12 bits), synaptic input and threshold
left-shifted by 6, 24-bit current with wrap-around, 24-bit voltage saturating, bias = bias_mant << bias_exp,
and a projection's output = (weight_mant @ s) shifted left by weight_exp (arithmetic right if negative).
In float, `du`, `dv` are fractions in [0, 1] and `weight_exp` is 0. The chip's widths and conversions live in
`snnchip.loihi`; `Graph.validate()` runs its range check on fixed graphs.

What `Graph.meta` carries is read through typed accessors (`Graph.steps`, `readout`, `input_scale`,
`message_bits`, `module_names`, `depths()`), never by ad-hoc keys with silent defaults.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import numpy as np

from . import loihi
from .errors import InputError

Reset = Literal["hard", "soft", "none"]
# The neuron models: Loihi's CUBA (lava.proc.lif) and the three sigma-delta processes of lava.proc.sdn
Model = Literal["cuba", "delta", "sigma_delta", "sigma"]
MODELS = ("cuba", "delta", "sigma_delta", "sigma")
SDNN_MODELS = ("delta", "sigma_delta", "sigma")
Activation = Literal["relu", "identity"]
Timing = Literal["ideal", "pipelined"]


@dataclass
class Neuron:
    """Parameters shared by a population. Float: fractions and volts-like units; fixed: Loihi integers.

    threshold: fire when v > threshold (fixed: the mantissa vth, compared against vth << 6); None = never fires.
    du, dv: fraction of current / voltage lost per step (fixed: Lava's du in -1..4095, -1 being netx's integrator,
    and dv in 0..4096; see snnchip.loihi). Fixed point only: either may be a per-neuron integer array `[size]`
    (flat, C order), as netx passes slayer's `iDecay` / `vDecay` vectors to Lava's LIF.
    reset: 'hard' sets v to reset_value, 'soft' subtracts reset_amount, 'none' keeps v (fixed: in v units).

    model: 'cuba' (the rest of this docstring), or one of lava.proc.sdn's sigma-delta processes (fixed point only;
    docs/sdnn.md): 'sigma_delta' (sigma = sum of inputs; act = activation(sigma + bias); delta encoding of act
    against the last sent value with threshold `threshold`, the residue carried over, and with `cum_error` the
    accumulated error gating it), 'delta' (delta encoding of the input itself, no sigma, no bias: netx's SDNN
    input layer) and 'sigma' (sigma decoding only, sending sigma: netx's `sigma_output` readout). Their output is
    a graded payload. `activation` 'relu' or 'identity' (Lava's ActivationMode RELU / UNIT); `spike_exp`,
    `state_exp`: Lava's exponents (threshold and bias are scaled by 2**(spike_exp + state_exp), payloads sent
    shifted right by state_exp).

    binary (with graded, on an input population only): the relay sends 1 for every non-zero input value and 0
    otherwise, i.e. Lava's `astype(bool)`: how netx's first synapse reads a network input that no input neuron
    precedes (its input_message_bits 0), so graded values become spikes.
    """
    threshold: Optional[float]
    du: float = 1.0
    dv: float = 0.0
    reset: Reset = "hard"
    reset_value: float = 0.0
    reset_amount: float = 0.0
    graded: bool = False
    model: Model = "cuba"
    activation: Activation = "relu"
    cum_error: bool = False
    spike_exp: int = 0
    state_exp: int = 0
    binary: bool = False

    @property
    def sigma_delta(self) -> bool:
        """True for the sigma-delta models (lava.proc.sdn), False for CUBA."""
        return self.model in SDNN_MODELS

    @property
    def sends_payloads(self) -> bool:
        """True if the population's outputs are graded payloads (a relay, or a sigma-delta neuron), not 0/1."""
        return (self.graded and not self.binary) or self.sigma_delta


@dataclass
class Population:
    """A group of identical neurons. `bias` has one axis per axis of `shape`, each of the population's size or 1
    (per channel `[C, 1, 1]`, per neuron `[C, H, W]`, `[F]`; see `bias_full`); fixed: bias mantissa with
    `bias_exp`. `scale` (fixed only) is the integer value of one float unit of voltage, kept so
    fixed-point states can be compared with float ones."""
    name: str
    shape: tuple[int, ...]
    neuron: Neuron
    bias: Optional[np.ndarray] = None
    bias_exp: int = 0
    is_input: bool = False
    is_output: bool = False
    scale: Optional[float] = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def bias_full(self) -> np.ndarray:
        """The bias of every neuron, flat `[size]` in C order (zeros without a bias). The one broadcasting rule:
        the bias has as many axes as `shape`, each equal to it or 1 (so `[C]` for a `(C, H, W)` population is an
        error, never a guess between channels and columns)."""
        if self.bias is None:
            return np.zeros(self.size)
        bias = np.asarray(self.bias)
        if bias.ndim != len(self.shape) or any(b not in (1, s) for b, s in zip(bias.shape, self.shape)):
            raise InputError(f"population '{self.name}': bias of shape {bias.shape} does not fit {self.shape} "
                             f"(one axis per axis of the shape, each of its size or 1)")
        return np.broadcast_to(bias, self.shape).reshape(-1)


@dataclass
class Projection:
    """Synapses from population `source` into population `target`.

    kind 'dense': weight [F_out, F_in]; kind 'conv': weight [C_out, C_in/groups, kH, kW] with stride, padding,
    dilation (each (h, w)) and groups. `delay`: extra steps of synaptic delay, an int, or an int array of the
    source's shape (axonal delay per source neuron), or, dense only, of the weight's shape `[F_out, F_in]`
    (per-synapse delay, as Lava's DelayDense; netx's per-output-neuron delays). Each group of synapses sharing a
    delay is summed and shifted by `weight_exp` on its own. `weight_exp` and `num_message_bits` are fixed-point only
    (num_message_bits 0 = binary spikes, > 0 = graded input of that many bits).
    """
    name: str
    source: str
    target: str
    kind: Literal["dense", "conv"]
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    delay: Union[int, np.ndarray] = 0
    weight_exp: int = 0
    num_message_bits: int = 0


@dataclass
class Graph:
    """Populations (in an order valid for zero-lag projections), projections, and how the graph is timed."""
    populations: list[Population] = field(default_factory=list)
    projections: list[Projection] = field(default_factory=list)
    timing: Timing = "ideal"
    fixed: bool = False
    meta: dict = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------------
    def population(self, name: str) -> Population:
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise KeyError(f"no population named '{name}'")

    def into(self, name: str) -> list[Projection]:
        """Projections whose target is population `name`, in graph order."""
        return [proj for proj in self.projections if proj.target == name]

    def out_of(self, name: str) -> list[Projection]:
        return [proj for proj in self.projections if proj.source == name]

    @property
    def inputs(self) -> list[Population]:
        return [pop for pop in self.populations if pop.is_input]

    @property
    def outputs(self) -> list[Population]:
        return [pop for pop in self.populations if pop.is_output]

    # -- what meta carries (typed) ----------------------------------------------------------------------
    @property
    def steps(self) -> Optional[int]:
        """Time steps per sample the network was trained with (meta 'T'), or None (e.g. a stock NetX file)."""
        value = self.meta.get("T")
        return None if value is None else int(value)

    @property
    def readout(self) -> Optional[str]:
        """The population whose final voltage is the class score (meta 'readout'); None: count output spikes."""
        return self.meta.get("readout")

    @property
    def input_scale(self) -> float:
        """Fixed graphs with a graded input: integer payload per float unit of input (meta 'input_scale')."""
        return float(self.meta.get("input_scale", 1.0))

    @property
    def message_bits(self) -> int:
        """Fixed graphs with a graded input: payload bits of the input (meta 'message_bits')."""
        return int(self.meta.get("message_bits", loihi.DEFAULT_MESSAGE_BITS))

    @property
    def module_names(self) -> dict[str, str]:
        """Population -> the trained model's neuron module it was lowered from (meta 'torch_names'; empty for
        graphs read from stock files)."""
        return dict(self.meta.get("torch_names") or {})

    def depths(self) -> dict[str, int]:
        """Steps from the input to each population: `meta['depth']` where given (pipelined graphs, stock NetX
        files), else the longest-lag path."""
        given = self.meta.get("depth") or {}
        depth: dict[str, int] = {}
        for pop in self.populations:
            if pop.name in given:
                depth[pop.name] = int(given[pop.name])
                continue
            lags = [depth[q.source] + int(np.max(self.lag(q))) for q in self.into(pop.name) if q.source in depth]
            depth[pop.name] = max(lags) if lags else 0
        return depth

    def lag(self, proj: Projection) -> np.ndarray | int:
        """Steps between a source spike and its arrival at the target (see module docstring)."""
        return proj.delay + (1 if self.timing == "pipelined" else 0)

    def latency(self) -> int:
        """Steps from an input at step t to the earliest effect on the deepest output population."""
        depth = self.depths()
        return max(depth[pop.name] for pop in self.outputs) if self.outputs else 0

    def copy(self) -> "Graph":
        return dataclasses.replace(
            self,
            populations=[dataclasses.replace(p, neuron=dataclasses.replace(p.neuron),
                                             bias=None if p.bias is None else p.bias.copy())
                         for p in self.populations],
            projections=[dataclasses.replace(q, weight=q.weight.copy()) for q in self.projections],
            meta=dict(self.meta),
        )

    # -- checks ----------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise InputError (a ValueError; one line, naming the offender) if the graph is not well formed, and
        ChipRangeError if a fixed graph holds a value the chip cannot (`loihi.check_fixed`)."""
        if self.timing not in ("ideal", "pipelined"):
            raise InputError(f"timing '{self.timing}' is neither 'ideal' nor 'pipelined'")
        names = [pop.name for pop in self.populations]
        if len(set(names)) != len(names):
            raise InputError(f"duplicate population names: {sorted({n for n in names if names.count(n) > 1})}")
        order = {name: i for i, name in enumerate(names)}
        for proj in self.projections:
            for end in (proj.source, proj.target):
                if end not in order:
                    raise InputError(f"projection '{proj.name}' refers to unknown population '{end}'")
            if self.population(proj.target).is_input:
                raise InputError(f"projection '{proj.name}' targets input population '{proj.target}'")
            if np.min(self.lag(proj)) == 0 and order[proj.source] >= order[proj.target]:
                raise InputError(f"projection '{proj.name}' has zero lag but does not go forward "
                                 f"({proj.source} -> {proj.target})")
            if not np.all(np.isfinite(proj.weight)):
                raise InputError(f"projection '{proj.name}' has non-finite weights")
            expect = 2 if proj.kind == "dense" else 4
            if proj.weight.ndim != expect:
                raise InputError(f"projection '{proj.name}' ({proj.kind}) weight has {proj.weight.ndim} dims, "
                                 f"expected {expect}")
            if proj.kind not in ("dense", "conv"):
                raise InputError(f"projection '{proj.name}': kind '{proj.kind}' is neither 'dense' nor 'conv'")
            _check_projection_shapes(self, proj)
        for pop in self.populations:
            if pop.neuron.model not in MODELS:
                raise InputError(f"population '{pop.name}': unknown neuron model '{pop.neuron.model}' "
                                 f"(known: {', '.join(MODELS)})")
            if pop.neuron.sigma_delta and not self.fixed:
                raise InputError(f"population '{pop.name}': sigma-delta neurons are fixed-point only")
            for key in ("du", "dv"):
                value = getattr(pop.neuron, key)
                if np.ndim(value) and (not self.fixed or np.shape(value) != (pop.size,)):
                    raise InputError(f"population '{pop.name}': per-neuron {key} of shape {np.shape(value)} "
                                     f"(per-neuron decays are fixed-point only, one per neuron: ({pop.size},))")
            if pop.neuron.binary and not (pop.neuron.graded and pop.is_input):
                raise InputError(f"population '{pop.name}': only an input relay (graded) can be binary")
            if pop.neuron.activation not in ("relu", "identity"):
                raise InputError(f"population '{pop.name}': unknown activation '{pop.neuron.activation}'")
            if pop.neuron.reset not in ("hard", "soft", "none"):
                raise InputError(f"population '{pop.name}': unsupported reset '{pop.neuron.reset}'")
            if any(int(s) < 1 for s in pop.shape):
                raise InputError(f"population '{pop.name}' has shape {tuple(pop.shape)}; every size must be >= 1")
            if pop.bias is not None:
                if not np.all(np.isfinite(pop.bias)):
                    raise InputError(f"population '{pop.name}' has non-finite bias")
                pop.bias_full()
        if self.fixed:
            loihi.check_fixed(self)


def check_conv_geometry(where: str, stride, padding, dilation, groups: int = 1) -> None:
    """Raise InputError (one line, naming `where` and the field) unless stride and dilation are >= 1, padding is
    >= 0 and groups >= 1 (each an int or an (h, w) pair of integers)."""
    for key, value in (("stride", stride), ("padding", padding), ("dilation", dilation), ("groups", groups)):
        items = np.atleast_1d(np.asarray(value)).reshape(-1)
        if not items.size or not np.issubdtype(items.dtype, np.number) or not np.all(np.isfinite(items)) \
                or not np.array_equal(items, np.round(items)):
            raise InputError(f"{where}: {key} {value!r} is not an integer or a pair of integers")
        low = 0 if key == "padding" else 1
        if items.min() < low:
            raise InputError(f"{where}: {key} {tuple(int(v) for v in items)} must be >= {low}")


def _check_projection_shapes(graph: Graph, proj: Projection) -> None:
    """The weight maps the source's shape onto the target's (dense: [F_out, F_in]; conv: channels, groups and the
    output size), and a delay array has the source's or (dense) the weight's shape."""
    where = f"projection '{proj.name}'"
    src, dst = graph.population(proj.source), graph.population(proj.target)
    w = np.shape(proj.weight)
    if proj.kind == "dense":
        if w != (dst.size, src.size):
            raise InputError(f"{where}: dense weight {w} does not map {src.size} inputs to {dst.size} neurons")
    else:
        check_conv_geometry(where, proj.stride, proj.padding, proj.dilation, proj.groups)
        if len(src.shape) != 3 or len(dst.shape) != 3:
            raise InputError(f"{where}: a conv needs (C, H, W) populations, has {src.shape} -> {dst.shape}")
        groups = int(proj.groups)
        if src.shape[0] % groups or w[0] % groups or w[1] * groups != src.shape[0]:
            raise InputError(f"{where}: conv weight {w} with groups={groups} does not fit {src.shape[0]} input "
                             f"channels")
        expect = conv_output_shape(src.shape, w[0], w[2:], proj.stride, proj.padding, proj.dilation, where)
        if tuple(dst.shape) != expect:
            raise InputError(f"{where}: the conv's output {expect} differs from population '{dst.name}' "
                             f"{tuple(dst.shape)}")
    delay = np.asarray(proj.delay)
    if delay.ndim and delay.shape not in (tuple(src.shape), w if proj.kind == "dense" else None):
        raise InputError(f"{where}: delay of shape {delay.shape} fits neither the source {tuple(src.shape)} nor "
                         f"the weight {w}")
    if delay.size and (not np.issubdtype(delay.dtype, np.number) or not np.all(np.isfinite(delay))
                       or not np.array_equal(delay, np.round(delay)) or delay.min() < 0):
        raise InputError(f"{where}: delays must be integers >= 0")


def conv_output_shape(in_shape: tuple[int, int, int], c_out: int, kernel: tuple[int, int],
                      stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                      where: str = "conv") -> tuple[int, int, int]:
    """(C_out, H_out, W_out) of a convolution of a (C, H, W) input (floor division, as torch and Lava); InputError
    (naming `where`) for a stride or dilation below 1, a negative padding, or an empty output."""
    check_conv_geometry(where, stride, padding, dilation)
    hw = [(int(in_shape[1 + a]) + 2 * int(padding[a]) - int(dilation[a]) * (int(kernel[a]) - 1) - 1)
          // int(stride[a]) + 1 for a in (0, 1)]
    if min(hw) < 1:
        raise InputError(f"{where}: a {tuple(int(k) for k in kernel)} kernel (dilation {tuple(dilation)}, padding "
                         f"{tuple(padding)}) does not fit the {tuple(int(s) for s in in_shape[1:])} input")
    return (int(c_out), hw[0], hw[1])


def relay_output(neuron: Neuron, a):
    """What a graded relay sends for its input `a` (torch tensor or numpy array): `a` itself, or for a `binary`
    relay 1 where `a` is non-zero and 0 elsewhere, in a's dtype."""
    return _as_dtype_of(a != 0, a) if neuron.binary else a


def float_neuron_step(neuron: Neuron, u, v, a, bias):
    """One step of a float population (the module docstring's semantics) on torch tensors or numpy arrays of the
    same shape; bias broadcasts. Returns (u, v, out): out is the spikes (0/1 in v's dtype), zeros for a
    readout, or the input itself for a graded relay. Written with arithmetic only (no `where`), so that the
    simulator and the ONNX step graph run exactly this function."""
    if neuron.graded:
        out = relay_output(neuron, a)
        return out, out, out
    u = u * (1.0 - float(neuron.du)) + a
    v = v * (1.0 - float(neuron.dv)) + u + bias
    if neuron.threshold is None:
        return u, v, _as_dtype_of(v > np.inf, v)      # never fires: zeros
    spiked = _as_dtype_of(v > float(neuron.threshold), v)
    if neuron.reset == "hard":
        v = v * (1.0 - spiked) + spiked * float(neuron.reset_value)
    elif neuron.reset == "soft":
        v = v - spiked * float(neuron.reset_amount)
    return u, v, spiked


def _as_dtype_of(mask, like):
    """A boolean mask as 0/1 in `like`'s dtype (torch tensor or numpy array)."""
    return mask.to(like.dtype) if hasattr(mask, "to") else mask.astype(like.dtype)
