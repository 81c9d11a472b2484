"""Quantisation-aware training (`snn-train --qat`): the forward pass uses the weights the chip will use.

Each synapse layer (a `Conv` / `Dense` whose input is spikes or the network input) feeds one population of the
exported graph (docs/model-contract.md: populations are named by their neuron modules; the FC feeds 'readout').
Its `pre_hook_fx` replaces the weight in the forward pass by what `snn-export` stores for it: the norm-folded
weight `w * g` (g: the norm's eval-mode factor per output channel; the FC's 1 / (H W) of the average pool)
quantised by `loihi.quantize_weight` to B-bit mantissas with its own exponent, against the integer scale of the
population it feeds, and divided back by g (the norm multiplies it again). The gradient is straight through.

The scales come from `loihi.population_scale`, the exporter's rule, on the folded weights, biases, thresholds and
bounds: the worst-case input of one step (for an MS-ResNet's membrane sum: every earlier term of the sum,
composed through the downsampling shortcuts, as `snnchip.export.lower` unrolls it) and running peaks of every
population's input and voltage (`loihi.calibrated_bounds`), gathered every `STAT_EVERY` training steps on the
batch in eval mode and re-estimated then, unless frozen (`--qat-freeze N`: the last N epochs). Decays are Lava's
12-bit ones (`loihi.chip_decay`); a scale always makes the threshold an integer mantissa, so thresholds are exact.
The checkpoint records the bit width and the scales; `snn-export` quantises with exactly those scales.

An MS-ResNet's membrane sums are unrolled in the QAT forward (`Qat.forward`) as the lowering unrolls them:
every LIF they feed receives each term (the stem, each earlier block's conv2, composed through the downsampling
shortcuts) as its own convolution, quantised at that LIF's scale, so each of the chip's projections is trained.
These terms fold their norms with running statistics (fine-tune a float run: `--init-from`).
What stays float in the forward: biases (13-bit mantissas on the chip) and the 24-bit state arithmetic.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .. import loihi
from ..errors import InputError
from .neurons import SpikingNeuron

READOUT = "readout"          # the population export.lower makes of the FC (GAP + FC, voltage = class score)
STAT_EVERY = 8               # training steps between two gatherings of running peaks (and re-estimations)
MAX_ROUNDS = 8               # searches of one scale under the worst case of the chip's weights
PEAK_DECAY = 0.9             # a running peak forgets this much per gathering: max(batch peak, 0.9 * peak)


@dataclass
class Synapse:
    """One synapse layer and the population it feeds (`target`, a graph population name)."""
    name: str
    layer: torch.nn.Module
    norm: Optional[torch.nn.Module]
    target: str
    factor: float = 1.0       # extra weight factor of the lowering (the FC's 1 / (H W))
    hooked: bool = True       # False: a term of an MS-ResNet membrane sum, quantised by `Qat.forward` instead

    def gain(self) -> torch.Tensor:
        """The eval-mode factor per output channel `[C_out]` that folding multiplies the weight by (detached)."""
        out = self.layer.weight.shape[0]
        if self.norm is None:
            return torch.full((out,), self.factor, dtype=self.layer.weight.dtype, device=self.layer.weight.device)
        return self.norm.affine_eval()[0].detach().to(self.layer.weight.dtype) * self.factor

    def bias(self) -> np.ndarray:
        """The folded bias `[C_out]` (float64): the norm's shift, or the layer's bias."""
        if self.norm is not None:
            return self.norm.affine_eval()[1].detach().cpu().double().numpy().reshape(-1)
        b = getattr(self.layer, "bias", None)
        return np.zeros(self.layer.weight.shape[0]) if b is None else b.detach().cpu().double().numpy()

    def folded(self) -> np.ndarray:
        """The folded float weight per payload unit, float64, in the layer's shape."""
        g = self.gain().double().cpu().numpy()
        w = self.layer.weight.detach().cpu().double().numpy()
        return w * g.reshape(-1, *([1] * (w.ndim - 1)))


def _fold_torch(conv, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight `[C_out, C_in, kH, kW, 1]`, bias `[C_out]`) of `norm(conv(x))` in eval mode, differentiable in
    the conv's weight and the norm's affine parameters."""
    scale, shift = norm.affine_eval()
    return conv.weight * scale.reshape(-1, 1, 1, 1, 1), shift


def _row_abs_max(w: np.ndarray) -> float:
    """Largest sum of |weight| into one output neuron (every source active)."""
    return float(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0.0))


class _Quantised:
    """The `pre_hook_fx` of one synapse layer: the chip's weight, divided back by the fold factor; the gradient
    passes straight through."""

    def __init__(self, qat: "Qat", synapse: Synapse):
        self.qat, self.synapse = qat, synapse

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        scale = self.qat.scales.get(self.synapse.target)
        if scale is None:
            return weight
        w = weight.detach()
        g = self.synapse.gain().to(w).reshape(-1, *([1] * (w.dim() - 1)))
        ints, exp = loihi.quantize_weight((w * g).cpu().double().numpy(), scale, self.qat.bits)[:2]
        chip = torch.from_numpy(loihi.weight_value(ints, exp, scale)).to(w)
        unfolded = torch.where(g != 0, chip / torch.where(g != 0, g, torch.ones_like(g)), w)
        return weight + (unfolded - w)


class Qat:
    """Quantisation-aware training state of one model: synapses, bit width, scales, running peaks."""

    def __init__(self, model, bits: int = loihi.MANT_BITS, scales: Optional[dict] = None):
        self.model = model
        self.bits = loihi.check_weight_bits(bits)
        self.scales: dict[str, float] = {k: float(v) for k, v in (scales or {}).items()}
        self.peaks: dict[str, list[float]] = {}          # population -> [peak |input|, peak |v|]
        self.frozen = False
        self.synapses = _synapses(model)
        for s in self.synapses:
            s.layer.pre_hook_fx = _Quantised(self, s) if s.hooked else None
        self.unrolls = any(not s.hooked for s in self.synapses)     # MS-ResNet: `forward` unrolls the sums
        self.neurons = {name: m for name, m in model.named_modules()
                        if isinstance(m, SpikingNeuron) and not name.startswith("side_branches")}
        for m in self.neurons.values():
            m.config = dataclasses.replace(m.config, decay=loihi.chip_decay(m.config.decay))

    # -- statistics and scales -----------------------------------------------------------------------------------
    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """Gather the running peaks on the batch `x` (a forward in eval mode, with the current chip weights), then
        re-estimate the scales unless frozen."""
        batch: dict[str, list[float]] = {}

        def neuron_hook(module, inputs, output, name):
            current = inputs[0].float()
            cfg = module.config
            u = torch.zeros_like(current[..., 0])
            peak_v = 0.0
            for t in range(current.shape[-1]):
                h = cfg.decay * u + current[..., t]
                peak_v = max(peak_v, float(h.abs().max()))
                fired = h > cfg.threshold
                u = h.masked_fill(fired, cfg.reset_value) if cfg.reset == "hard" else (
                    h - cfg.spike_value * fired.to(h.dtype) if cfg.reset == "soft" else h)
            batch[name] = [float(current.abs().max()), peak_v]

        def readout_hook(module, inputs, output):
            y = output.float()
            b = 0 if module.bias is None else module.bias.float()[:, None]
            batch[READOUT] = [float((y - b).abs().max()), float(y.cumsum(dim=-1).abs().max())]

        hooks = [m.register_forward_hook(lambda mod, i, o, n=n: neuron_hook(mod, i, o, n))
                 for n, m in self.neurons.items()]
        hooks.append(self.model.head.fc.register_forward_hook(readout_hook))
        was_training = self.model.training
        self.model.eval()
        try:
            self.model(x)
        finally:
            for h in hooks:
                h.remove()
            self.model.train(was_training)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            names = sorted(batch)           # every process takes the peaks of the global batch: equal scales
            peaks = torch.tensor([batch[n] for n in names], dtype=torch.float64, device=x.device)
            torch.distributed.all_reduce(peaks, op=torch.distributed.ReduceOp.MAX)
            batch = {n: [float(a), float(v)] for n, (a, v) in zip(names, peaks.tolist())}
        for name, (a, v) in batch.items():
            old = self.peaks.get(name)
            self.peaks[name] = [a, v] if old is None else [max(a, PEAK_DECAY * old[0]), max(v, PEAK_DECAY * old[1])]
        if not self.frozen or not self.scales:
            self.estimate()

    def estimate(self) -> None:
        """Every population's scale from `loihi.population_scale` on the current weights and running peaks, in
        forward order. The worst-case input counts the chip's weights (those at the scale found, and in a membrane
        sum the earlier terms at their own targets' scales): while it forbids the scale (u could wrap), the scale
        is searched again under it."""
        self.scales = self._scales(keep_valid=False)

    def settle(self) -> int:
        """Make the scales valid for the current weights (frozen scales may not be once the weights moved): if
        the chip's bounds forbid any (u could wrap), every scale is estimated again. Returns how many were
        forbidden."""
        checked = self._scales(keep_valid=True)
        bad = sum(checked[k] != v for k, v in self.scales.items())
        if bad:
            self.estimate()
        return bad

    def _scales(self, keep_valid: bool) -> dict[str, float]:
        targets: dict[str, list[Synapse]] = {}
        for s in self.synapses:
            targets.setdefault(s.target, []).append(s)
        sums = _membrane_sums(self.model, self.synapses)
        scales: dict[str, float] = {}
        known = self.scales if keep_valid else scales      # the scales the earlier terms are quantised at
        for target, incoming in targets.items():
            # a membrane sum's terms: a term through downsampling shortcuts composed with their 1x1 weights `mix`
            terms, bias = sums.get(target, ([(s, None) for s in incoming], sum(s.bias() for s in incoming)))
            float_ws = [_mixed(mix, s.folded()) for s, mix in terms]
            unrolled = target in sums       # every term is quantised against this population's scale
            theta = None if target == READOUT else float(self.neurons[target].config.threshold)
            b_max = float(np.abs(bias).max(initial=0.0))
            a = sum(_row_abs_max(w) for w in float_ws)
            peak_a, peak_v = self.peaks.get(target, (a, a))
            bound_v = loihi.calibrated_bounds(peak_a, peak_v, b_max)[1]
            scale = self.scales.get(target) if keep_valid else None
            search_ws = float_ws
            for _ in range(MAX_ROUNDS):
                if scale is None:
                    scale = loihi.population_scale(target, theta, search_ws, bias, a, bound_v, bits=self.bits)
                chip = ([self._chip(w, scale) for w in float_ws] if unrolled else
                        [self._chip(s.folded(), known.get(s.target, scale)) for s, _ in terms])
                # neither the chip's weights may wrap u nor those the exporter reads (and bounds its scale by):
                # an unrolled sum's float terms, a hooked layer's chip weights
                exported = float_ws if unrolled else chip
                a_chip = max(sum(_row_abs_max(w) for w in chip), sum(_row_abs_max(w) for w in exported))
                if scale <= loihi.scale_bound(theta, chip + exported, b_max, a_chip, 0.0, bits=self.bits):
                    break
                if keep_valid:
                    scale = float("nan")           # forbidden: settle() estimates again
                    break
                a, search_ws, scale = a_chip, chip, None
            else:
                raise InputError(f"population '{target}': no scale keeps the worst-case input of the "
                                 f"{self.bits}-bit weights within 24 bits")
            scales[target] = scale
        return scales

    def _chip(self, folded: np.ndarray, scale: float) -> np.ndarray:
        """The weight the chip uses for the folded float weight `folded` at `scale` (float64, per payload unit)."""
        ints, exp = loihi.quantize_weight(folded, scale, self.bits)[:2]
        return loihi.weight_value(ints, exp, scale)

    def fake_quantize(self, folded: torch.Tensor, target: str) -> torch.Tensor:
        """`folded` with the chip's values at `target`'s scale in the forward, the identity in the backward."""
        scale = self.scales.get(target)
        if scale is None:
            return folded
        w = folded.detach()
        chip = torch.from_numpy(self._chip(w.cpu().double().numpy(), scale)).to(w)
        return folded + (chip - w)

    # -- the forward of an MS-ResNet ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """An MS-ResNet's forward as the chip computes it (`SpikingResNet.forward` calls it): every LIF fed by the
        membrane sum receives each term of the sum (the stem's conv of the input, every earlier block's conv2 of
        its lif2 spikes, composed through the downsampling shortcuts as `snnchip.export.lower` composes them) as
        its own convolution, each weight quantised at that LIF's scale, plus the composed bias. The folds of
        these terms use the norms' running statistics (fine-tuning: `--init-from` a float run)."""
        model = self.model
        model._check_input(x)
        outputs = {"input": x}
        w, b = _fold_torch(model.stem.conv, model.stem.norm)
        terms, bias = [("input", w, model.stem.conv.stride, model.stem.conv.padding)], b
        names = {id(m): n for n, m in model.named_modules()}

        def membrane(lif):
            target = names[id(lif)]
            current = bias.reshape(1, -1, 1, 1, 1)
            for source, weight, stride, padding in terms:
                current = current + torch.nn.functional.conv3d(
                    outputs[source], self.fake_quantize(weight, target), None, (*stride, 1), (*padding, 0))
            return lif(current)

        for block in (b for stage in model.stages for b in stage):
            spikes = block.lif2(block.norm1(block.conv1(membrane(block.lif1))))
            outputs[names[id(block.lif2)]] = spikes
            if block.shortcut is not None:
                w, b = _fold_torch(block.shortcut.conv, block.shortcut.norm)
                mix, s = w[:, :, 0, 0, 0], block.shortcut.conv.stride
                terms = [(src, torch.einsum("om,mikl...->oikl...", mix, wt), (st[0] * s[0], st[1] * s[1]), pad)
                         for src, wt, st, pad in terms]
                bias = mix @ bias + b
            w, b = _fold_torch(block.conv2, block.norm2)
            terms = terms + [(names[id(block.lif2)], w, block.conv2.stride, block.conv2.padding)]
            bias = bias + b
        head = model.head
        return head.fc(head.dropout(membrane(head.lif).mean(dim=(2, 3)))).mean(dim=-1)

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state(self) -> dict:
        """What a checkpoint records (plain types)."""
        return {"weight_bits": self.bits, "scales": dict(self.scales), "peaks": {k: list(v) for k, v in
                                                                                 self.peaks.items()},
                "frozen": self.frozen}

    def load_state(self, state: dict) -> None:
        self.scales = {k: float(v) for k, v in state["scales"].items()}
        self.peaks = {k: [float(a), float(v)] for k, (a, v) in state["peaks"].items()}
        self.frozen = bool(state["frozen"])

    def export_scales(self, graph) -> dict:
        """{population: scale} for the populations of `graph` (an exported graph of this model)."""
        names = {p.name for p in graph.populations}
        return {k: v for k, v in self.scales.items() if k in names}


def attach_qat(model, bits: int = loihi.MANT_BITS, scales: Optional[dict] = None) -> Qat:
    """Make `model` (a `SpikingResNet`) compute with the chip's weights and decays; returns its `Qat`, also kept
    as `model.qat`."""
    qat = Qat(model, bits, scales)
    model.qat = qat
    return qat


def _synapses(model) -> list[Synapse]:
    """Every synapse layer of an MS, vanilla or plain spiking ResNet and the population it feeds."""
    names = {id(m): n for n, m in model.named_modules()}
    blocks = [b for stage in model.stages for b in stage]
    kinds = {b.kind for b in blocks}
    if not kinds <= {"ms", "vanilla", "plain"}:
        raise InputError(f"--qat supports ms, vanilla and plain blocks (what snn-export lowers), not "
                         f"{sorted(kinds - {'ms', 'vanilla', 'plain'})}")
    out = []

    def add(layer, norm, target, factor=1.0, hooked=True):
        out.append(Synapse(names[id(layer)], layer, norm, target, factor, hooked))

    stem = model.stem
    if getattr(stem, "lif", None) is not None:
        add(stem.conv, stem.norm, names[id(stem.lif)])
    else:
        first = blocks[0].lif1 if blocks else model.head.lif
        add(stem.conv, stem.norm, names[id(first)], hooked=False)
    for i, block in enumerate(blocks):
        if block.kind == "ms":
            nxt = blocks[i + 1].lif1 if i + 1 < len(blocks) else model.head.lif
            add(block.conv1, block.norm1, names[id(block.lif2)])
            add(block.conv2, block.norm2, names[id(nxt)], hooked=False)   # a term of every later membrane sum
        else:
            add(block.conv1, block.norm1, names[id(block.lif1)])
            add(block.conv2, block.norm2, names[id(block.lif2)])
            if block.kind == "vanilla" and block.shortcut is not None:
                add(block.shortcut.conv, block.shortcut.norm, names[id(block.lif2)])
    add(model.head.fc, None, READOUT, 1.0 / _head_positions(model))
    return out


def _head_positions(model) -> int:
    """H * W of the map the head averages (the FC's weight is spread over them)."""
    seen = {}
    hook = model.head.register_forward_pre_hook(lambda m, i: seen.__setitem__("shape", i[0].shape))
    c = model.config
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(torch.zeros(1, c.in_channels, *c.input_size, 1, dtype=next(model.parameters()).dtype))
            model.train(was)
    finally:
        hook.remove()
    return int(seen["shape"][2] * seen["shape"][3])


def _mixed(mix: Optional[np.ndarray], w: np.ndarray) -> np.ndarray:
    """A conv weight `[C, I, kH, kW, 1]` seen through downsampling shortcuts' composed 1x1 weights `mix` [O, C]."""
    return w if mix is None else np.einsum("oc,c...->o...", mix, w)


def _membrane_sums(model, synapses: list[Synapse]) -> dict[str, tuple[list, np.ndarray]]:
    """For an MS-ResNet, {population fed by the membrane sum: (terms, bias [C])}, as `snnchip.export.lower`
    unrolls and composes the sum: every earlier term (the stem, each earlier block's conv2) with the product of
    the folded 1x1 weights of the downsampling shortcuts it passed (None: none), and the composed bias."""
    blocks = [b for stage in model.stages for b in stage]
    if not blocks or blocks[0].kind != "ms":
        return {}
    names = {id(m): n for n, m in model.named_modules()}
    of = {id(s.layer): s for s in synapses}
    terms, bias = [(of[id(model.stem.conv)], None)], of[id(model.stem.conv)].bias()
    sums = {}
    for block in blocks:
        sums[names[id(block.lif1)]] = (list(terms), bias)
        if block.shortcut is not None:
            if block.shortcut.pool is not None:
                raise InputError(f"--qat: the average-pool shortcut of '{names[id(block)]}' is not supported")
            sc = Synapse("", block.shortcut.conv, block.shortcut.norm, "")
            w = sc.folded().reshape(sc.layer.weight.shape[0], -1)
            terms = [(s, w if mix is None else w @ mix) for s, mix in terms]
            bias = w @ bias + sc.bias()
        conv2 = of[id(block.conv2)]
        terms, bias = terms + [(conv2, None)], bias + conv2.bias()
    if model.head.lif is not None:
        sums[names[id(model.head.lif)]] = (list(terms), bias)
    return sums
