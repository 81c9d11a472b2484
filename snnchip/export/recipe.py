"""The one export recipe: a trained model (or its checkpoint) -> float graph -> deployable graph, and the report.

`export_model(...)` is what `snn-export` runs, what `snn-energy --compare-fixed` runs to price the same network,
and what the benchmarks run: lower (BN folding, shortcut composition or relays) a trained model, or read a NIR
file of any framework's network (`formats.nir.read_nir`), retime (pipelined for a chip,
ideal for ONNX), and for Loihi quantise, calibrated on the *training* split of a dataset (never on the samples
that are then evaluated or counted) and optionally evaluated float vs fixed on its test split. The same options
give the same network, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import torch

from .. import loihi
from ..errors import ChipRangeError, InputError, UnsupportedError
from ..formats.netx import stock_incompatibilities
from ..formats.netx_read import EXTENSION_KIND, STOCK_KIND
from ..formats.nir import DEFAULT_DT, read_nir
from ..graph import Graph
from .lower import lower
from .quantize import evaluate, quantize
from .report import QuantReport, layer_report
from .timing import pipeline

Target = Literal["loihi", "onnx", "nir"]
DEFAULT_CALIBRATION_SAMPLES = 256
DEFAULT_EVAL_SAMPLES = 512


@dataclass
class ExportResult:
    """What `export_model` made. `graph` is the deployable graph (fixed point for Loihi, the float graph for
    ONNX and NIR); `float_graph` the float graph it came from (same timing); `report` the per-layer table (with
    float vs fixed agreement and accuracies when calibrated and evaluated); `model` is None for a NIR source."""
    model: Optional[torch.nn.Module]
    float_graph: Graph
    graph: Graph
    report: QuantReport
    target: str
    timing: str
    input_kind: str
    stock: bool = False

    @property
    def stock_reasons(self) -> list[str]:
        """Why stock netx would not compute this graph exactly ([] for a stock-exact Loihi export)."""
        return stock_incompatibilities(self.graph, graded_input=self.stock)

    @property
    def file_kind(self) -> Optional[str]:
        """The NetX file `write_netx(graph, path, graded_input=stock)` writes: 'stock-exact' or
        'snnchip-extension' (None for the onnx and nir targets)."""
        if self.target != "loihi":
            return None
        return EXTENSION_KIND if self.stock_reasons else STOCK_KIND

    def summary(self) -> dict:
        """Target, timing, input encoding, latency and (Loihi) the NetX file kind, as snn-export reports them."""
        out = {"target": self.target, "timing": self.timing, "input": self.input_kind,
               "latency": self.graph.latency()}
        if self.target == "loihi":
            reasons = self.stock_reasons
            out["netx_file"] = self.file_kind
            out["stock_netx"] = (f"refuses the file: {reasons[0]}" if reasons else
                                 "computes exactly what snn-sim computes"
                                 + (f" when given input_message_bits={self.graph.message_bits}"
                                    if self.graph.inputs[0].neuron.graded else ""))
        return out


def _chain(graph: Graph) -> bool:
    """One input first, then every population fed by exactly one projection from the previous one."""
    pops = graph.populations
    return (bool(pops) and pops[0].is_input and sum(p.is_input for p in pops) == 1
            and all([q.source for q in graph.into(pop.name)] == [prev.name] for prev, pop in zip(pops, pops[1:])))


def _binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def export_model(source: Union[str, Path, torch.nn.Module], *, target: Target = "loihi",
                 timing: Optional[str] = None, input_kind: str = "auto", shortcut: Optional[str] = None,
                 calibrate: Optional[str] = None, data_root=None,
                 calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
                 eval_samples: int = DEFAULT_EVAL_SAMPLES, calibration=None, progress: bool = False,
                 dt: float = DEFAULT_DT, steps: Optional[int] = None, type_check: bool = True,
                 weight_bits: Optional[int] = None, stock: Optional[bool] = None) -> ExportResult:
    """Export a spiking network: a checkpoint path from snn-train, the model itself, or a NIR file (`*.nir`).

    target: 'loihi' (quantised, default pipelined timing), 'onnx' (float, default ideal timing) or 'nir' (the
    float ideal-timing graph, for `formats.nir.write_nir`).
    input_kind: 'binary', 'graded' or 'auto' (binary if the calibration data is 0/1, else graded).
    shortcut: MS-ResNet shortcut lowering, 'composed' or 'relay' (see `lower.lower`); default 'relay' for the nir
    target (its file then has one Conv2d node per convolution), else 'composed'.
    calibrate: a dataset name: quantise on the first `calibration_samples` of its training split and, with
    `eval_samples` > 0, evaluate float vs fixed on the first `eval_samples` of its test split.
    calibration: instead of a dataset, calibration inputs `[N, *input_shape, T]` (e.g. a benchmark's random
    spikes), no evaluation. NIR sources only: `dt` (seconds per step, the exporter's), `steps` (time steps per
    sample for the dataset; default the file's metadata 'T'), `type_check` (nir's check on read).
    weight_bits: weight mantissa bits 2..8 (default: the checkpoint's quantisation-aware training width, else 8).
    A model trained with `snn-train --qat` is quantised with exactly the scales its training recorded.
    stock (loihi): True quantises for stock lava-dl netx (every weight exponent 0, bias exponent 6: what netx
    computes from the stored integers) and raises UnsupportedError unless stock netx then computes exactly the
    fixed graph (a graded input counts: netx must be given input_message_bits); False quantises freely (per-
    projection exponents; the file is an snnchip extension that stock netx refuses); None (default) is True for
    a chain with binary input, else False.
    Raises InputError for options that do not fit together.
    """
    from ..train.checkpoint import load_model
    from ..train.data import load_samples

    if target not in ("loihi", "onnx", "nir"):
        raise InputError(f"target must be 'loihi', 'onnx' or 'nir', got {target!r}")
    if input_kind not in ("auto", "binary", "graded"):
        raise InputError(f"input must be 'auto', 'binary' or 'graded', got {input_kind!r}")
    if calibrate is not None and calibration is not None:
        raise InputError("give a calibration dataset or calibration inputs, not both")
    if weight_bits is not None:
        loihi.check_weight_bits(weight_bits)
    if target != "loihi" and (calibrate is not None or calibration is not None):
        raise InputError("calibration applies to the loihi target only")
    timing = timing or ("pipelined" if target == "loihi" else "ideal")
    if timing not in ("ideal", "pipelined"):
        raise InputError(f"timing must be 'ideal' or 'pipelined', got {timing!r}")
    if target == "nir" and timing != "ideal":
        raise InputError("NIR graphs have ideal timing: pipelined timing applies to the loihi and onnx targets")
    shortcut = shortcut or ("relay" if target == "nir" else "composed")
    source_name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    from_nir = isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".nir"
    if from_nir:
        model, nir_graph = None, read_nir(source, dt=dt, type_check=type_check)
        T = steps or nir_graph.steps
        if calibrate is not None and T is None:
            raise InputError(f"{source}: the NIR file does not say how many time steps a sample has; give steps "
                             f"(snn-export --steps)")
    else:
        model = load_model(str(source)) if isinstance(source, (str, Path)) else source
        model = model.double().eval()
        T = int(model.config.T)

    calib = test = None
    if calibrate is not None:
        calib = load_samples(calibrate, "train", root=data_root, T=T, count=calibration_samples, progress=progress)
        if eval_samples > 0:
            test = load_samples(calibrate, "test", root=data_root, T=T, count=eval_samples, progress=progress)
    elif calibration is not None:
        calib = (torch.as_tensor(calibration, dtype=torch.float64), None)
    if input_kind == "auto":
        input_kind = "binary" if calib is not None and _binary(calib[0]) else "graded"
    elif input_kind == "binary" and calib is not None and not _binary(calib[0]):
        raise InputError(f"input 'binary', but the calibration data{f' of {calibrate!r}' if calibrate else ''} "
                         f"has values other than 0 and 1")

    if from_nir:
        float_graph = nir_graph if input_kind == "graded" else read_nir(source, dt=dt, input_kind=input_kind,
                                                                         type_check=type_check)
        if steps:
            float_graph.meta["T"] = int(steps)
    else:
        float_graph = lower(model, input_kind=input_kind, shortcut=shortcut)
    if timing == "pipelined":
        float_graph = pipeline(float_graph)
    float_graph.meta["checkpoint"] = source_name

    if target in ("onnx", "nir"):
        return ExportResult(model, float_graph, float_graph, layer_report(float_graph), target, timing, input_kind)
    qat = getattr(model, "qat", None)
    if qat is not None and weight_bits is not None and weight_bits != qat.bits:
        raise InputError(f"{source_name}: trained with --qat --weight-bits {qat.bits}; exporting it with "
                         f"--weight-bits {weight_bits} would use other weights than it was trained with")
    bits = qat.bits if qat is not None else (weight_bits or loihi.MANT_BITS)
    options = dict(calibration=calib, progress=progress, weight_bits=bits,
                   scales=None if qat is None else qat.export_scales(float_graph))
    if stock is None:
        stock_quant = _chain(float_graph) and not float_graph.inputs[0].neuron.graded
    else:
        stock_quant = bool(stock)
    fixed = None
    if stock_quant:
        try:
            fixed, report = quantize(float_graph, weight_exp=loihi.NETX_WEIGHT_EXP, bias_exp=loihi.NETX_BIAS_EXP,
                                     **options)
            reasons = stock_incompatibilities(fixed, graded_input=bool(stock))
        except ChipRangeError as exc:     # e.g. a QAT scale that exponent 0 cannot hold
            reasons = [str(exc)]
        if stock and reasons:
            raise UnsupportedError(f"{source_name}: cannot export for stock netx: {reasons[0]}"
                                   + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""))
        if reasons:
            fixed = None
    if fixed is None:
        fixed, report = quantize(float_graph, **options)
    else:
        report.notes.append("quantised for stock netx: every weight exponent 0, bias exponent 6")
    if test is not None:
        evaluate(float_graph, fixed, test[0], test[1], report, progress=progress)
        report.notes.append(f"spike agreement and accuracy on {len(test[1])} '{calibrate}' test samples")
    return ExportResult(model, float_graph, fixed, report, target, timing, input_kind, stock=bool(stock))
