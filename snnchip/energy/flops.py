"""The synaptic layers of a trained spiking model, with parameters and the FLOPs of the same network as an ANN.

`synaptic_layers(model, input_shape)` runs one frame through the model with forward hooks and returns, for every
conv / dense layer (modules with a `.weight` of slayer layout, docs/model-contract.md): its shapes, its role, the
neuron layer whose spikes feed it, its parameters and its multiply-accumulates per frame.

FLOP convention: one multiply-accumulate = one FLOP (as fvcore's FlopCountAnalysis and seed 000's Table V);
BN / tdBN are folded into the conv (an inference ANN has no separate normalisation), pooling, additions and
activations are not counted. The head's global average pool is folded into the FC, so the FC's FLOPs are
`C * num_classes` and, in the SNN, one spike of the last LIF reaches `num_classes` synapses.

Roles: 'encoding' (the stem conv reading the input frames), 'residual' (the convs of residual paths),
'shortcut' (downsampling convs on the shortcut), 'fc' (the classifier). Seed 000's Table V convention counts
only 'residual' and 'fc' (`PAPER_ROLES`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

PAPER_ROLES = ("residual", "fc")
INPUT = "input"
GRADED = "graded"


@dataclass
class SynapticLayer:
    """One conv or dense layer. Shapes are per sample and per frame: `(C, H, W)` or `(F,)`.

    source: the module name of the spiking neuron layer whose spikes it reads, 'input' (the input frames) or
    'graded' (a real-valued tensor such as MS-ResNet's membrane shortcut). synapses: connections, i.e. the
    multiply-accumulates of one frame (= ann_flops); params: weights (+ bias) of the layer alone.
    """
    name: str
    kind: str
    role: str
    source: str
    in_shape: tuple
    out_shape: tuple
    weight_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    params: int = 0
    ann_flops: int = 0

    @property
    def spike_driven(self) -> bool:
        return self.source not in (INPUT, GRADED)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["spike_driven"] = self.spike_driven
        return d


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))
    return int(v), int(v)


def is_synaptic(module) -> bool:
    """A conv / dense layer of the model contract: a weight `[C_out, C_in/g, kH, kW, 1]` or `[F_out, F_in, 1, 1, 1]`."""
    w = getattr(module, "weight", None)
    return isinstance(w, torch.nn.Parameter) and w.ndim == 5 and not hasattr(module, "affine_eval")


def is_spiking(module) -> bool:
    return hasattr(module, "config") and hasattr(getattr(module, "config"), "threshold")


def _role(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "stem":
        return "encoding"
    if parts[0] == "head":
        return "fc"
    if "shortcut" in parts:
        return "shortcut"
    return "residual"


def _key(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), t.dtype)


class LayerTracer:
    """Forward hooks recording, for every synaptic layer, its input tensor, its source and its output shape.

    Sources are found by tensor identity: a layer whose input is the very tensor a spiking module returned
    reads that module's spikes. The head's FC reads `head.lif` (or, without one, whatever spikes the head got).
    Use as a context manager around `model(x)`; `on_layer(name, module, x)` is called with each input.
    """

    def __init__(self, model, on_layer=None, on_neuron=None) -> None:
        self.model, self.on_layer, self.on_neuron = model, on_layer, on_neuron
        self.names = {id(m): n for n, m in model.named_modules()}
        self.spike_tensors: dict[tuple, str] = {}
        self.alive: list[torch.Tensor] = []  # keeps spike tensors alive so their addresses are not reused
        self.sources: dict[str, str] = {}
        self.shapes: dict[str, tuple[tuple, tuple]] = {}
        self.input_key = None
        self.head_input_source: Optional[str] = None
        self.handles = []

    def __enter__(self):
        side = getattr(self.model, "side_branches", None)
        skip = {id(m) for m in side.modules()} if side is not None else set()
        for name, module in self.model.named_modules():
            if id(module) in skip:
                continue
            if is_spiking(module):
                self.handles.append(module.register_forward_hook(self._neuron_hook))
            elif is_synaptic(module):
                self.handles.append(module.register_forward_hook(self._layer_hook))
        head = getattr(self.model, "head", None)
        if head is not None:
            self.handles.append(head.register_forward_pre_hook(self._head_hook))
        self.handles.append(self.model.register_forward_pre_hook(self._model_hook))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.alive.clear()

    def _model_hook(self, module, args):
        self.spike_tensors.clear()
        self.alive.clear()
        self.input_key = _key(args[0])

    def _head_hook(self, module, args):
        self.head_input_source = self.spike_tensors.get(_key(args[0]))

    def _neuron_hook(self, module, args, out):
        name = self.names[id(module)]
        self.spike_tensors[_key(out)] = name
        self.alive.append(out)
        if self.on_neuron is not None:
            self.on_neuron(name, module, args[0], out)

    def _layer_hook(self, module, args, out):
        name = self.names[id(module)]
        x = args[0]
        key = _key(x)
        if name.startswith("head."):
            lif = getattr(self.model.head, "lif", None)
            source = self.names[id(lif)] if lif is not None else (self.head_input_source or GRADED)
        elif key == self.input_key:
            source = INPUT
        else:
            source = self.spike_tensors.get(key, GRADED)
        self.sources[name] = source
        self.shapes[name] = (tuple(x.shape[1:-1]), tuple(out.shape[1:-1]))
        if self.on_layer is not None:
            self.on_layer(name, module, x, source)


def synaptic_layers(model, input_shape: tuple[int, ...], device="cpu") -> list[SynapticLayer]:
    """The model's synaptic layers in forward order, from one zero frame `[1, *input_shape, 1]` (shapes only)."""
    model = model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, 1, device=device, dtype=param.dtype if param is not None else None)
    with LayerTracer(model) as tracer, torch.no_grad():
        model(x)
    modules = dict(model.named_modules())
    layers = []
    for name, source in tracer.sources.items():
        module = modules[name]
        in_shape, out_shape = tracer.shapes[name]
        w = module.weight
        bias = getattr(module, "bias", None)
        params = int(w.numel()) + (int(bias.numel()) if isinstance(bias, torch.Tensor) else 0)
        if name.startswith("head.") and w.shape[2:] == (1, 1, 1):
            c_in, c_out = int(w.shape[1]), int(w.shape[0])
            layers.append(SynapticLayer(name, "dense", "fc", source, (c_in,), (c_out,), tuple(w.shape[:2]),
                                        params=params, ann_flops=c_in * c_out))
            continue
        if len(out_shape) == 3:
            c_out, c_in_g, kh, kw = (int(s) for s in w.shape[:4])
            groups = int(getattr(module, "groups", 1))
            flops = int(np.prod(out_shape)) * c_in_g * kh * kw
            layers.append(SynapticLayer(
                name, "conv", _role(name), source, in_shape, out_shape, (c_out, c_in_g, kh, kw),
                _pair(module.stride), _pair(module.padding), _pair(getattr(module, "dilation", 1)), groups,
                params, flops))
        else:
            c_out, c_in = int(w.shape[0]), int(w.shape[1])
            layers.append(SynapticLayer(name, "dense", _role(name), source, (c_in,), (c_out,), (c_out, c_in),
                                        params=params, ann_flops=c_in * c_out))
    return layers


def model_params(model) -> int:
    """Trainable parameters of the inference model (training-only side branches left out)."""
    side = getattr(model, "side_branches", None)
    skip = {id(p) for p in side.parameters()} if side is not None else set()
    return int(sum(p.numel() for p in model.parameters() if id(p) not in skip))


def flops_summary(model, input_shape: tuple[int, ...], T: int) -> dict:
    """Parameters and ANN FLOPs (per frame and for T frames), in full and by seed 000's Table V convention."""
    layers = synaptic_layers(model, input_shape)
    full = sum(l.ann_flops for l in layers)
    paper = sum(l.ann_flops for l in layers if l.role in PAPER_ROLES)
    by_role = {}
    for l in layers:
        by_role[l.role] = by_role.get(l.role, 0) + l.ann_flops
    return {
        "params": model_params(model),
        "params_synaptic": sum(l.params for l in layers),
        "flop_convention": "one multiply-accumulate = one FLOP (fvcore's convention); BN folded, pooling and "
                           "additions not counted",
        "T": T,
        "ann_flops_per_frame": {"full": full, "paper": paper, "by_role": by_role},
        "ann_flops_T_frames": {"full": full * T, "paper": paper * T},
        "paper_convention": "seed 000 Table V: residual-path convs and the FC; without the encoding layer and the "
                            "shortcut downsampling convs",
        "layers": [l.as_dict() for l in layers],
    }
