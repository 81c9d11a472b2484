"""The one export recipe: a trained model (or its checkpoint) -> float graph -> deployable graph, and the report.

`export_model(...)` is what `snn-export` runs, what `snn-energy --compare-fixed` runs to price the same network,
and what the benchmarks run: lower (BN folding, shortcut composition or relays), retime (pipelined for a chip,
ideal for ONNX), and for Loihi quantise, calibrated on the *training* split of a dataset (never on the samples
that are then evaluated or counted) and optionally evaluated float vs fixed on its test split. The same options
give the same network, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import torch

from ..errors import InputError
from ..graph import Graph
from .lower import lower
from .quantize import evaluate, quantize
from .report import QuantReport, layer_report
from .timing import pipeline

Target = Literal["loihi", "onnx"]
DEFAULT_CALIBRATION_SAMPLES = 256
DEFAULT_EVAL_SAMPLES = 512


@dataclass
class ExportResult:
    """What `export_model` made. `graph` is the deployable graph (fixed point for Loihi, the float graph for
    ONNX); `float_graph` the float graph it came from (same timing); `report` the per-layer table (with float vs
    fixed agreement and accuracies when calibrated and evaluated)."""
    model: torch.nn.Module
    float_graph: Graph
    graph: Graph
    report: QuantReport
    target: str
    timing: str
    input_kind: str

    def summary(self) -> dict:
        """Target, timing, input encoding and latency, as snn-export reports them."""
        return {"target": self.target, "timing": self.timing, "input": self.input_kind,
                "latency": self.graph.latency()}


def _binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def export_model(source: Union[str, Path, torch.nn.Module], *, target: Target = "loihi",
                 timing: Optional[str] = None, input_kind: str = "auto", shortcut: str = "composed",
                 calibrate: Optional[str] = None, data_root=None,
                 calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
                 eval_samples: int = DEFAULT_EVAL_SAMPLES, calibration=None, progress: bool = False
                 ) -> ExportResult:
    """Export a spiking ResNet (a checkpoint path from snn-train, or the model itself).

    target: 'loihi' (quantised, default pipelined timing) or 'onnx' (float, default ideal timing).
    input_kind: 'binary', 'graded' or 'auto' (binary if the calibration data is 0/1, else graded).
    shortcut: MS-ResNet shortcut lowering, 'composed' or 'relay' (see `lower.lower`).
    calibrate: a dataset name: quantise on the first `calibration_samples` of its training split and, with
    `eval_samples` > 0, evaluate float vs fixed on the first `eval_samples` of its test split.
    calibration: instead of a dataset, calibration inputs `[N, *input_shape, T]` (e.g. a benchmark's random
    spikes), no evaluation. Raises InputError for options that do not fit together.
    """
    from ..train.checkpoint import load_model
    from ..train.data import load_samples

    if target not in ("loihi", "onnx"):
        raise InputError(f"target must be 'loihi' or 'onnx', got {target!r}")
    if input_kind not in ("auto", "binary", "graded"):
        raise InputError(f"input must be 'auto', 'binary' or 'graded', got {input_kind!r}")
    if calibrate is not None and calibration is not None:
        raise InputError("give a calibration dataset or calibration inputs, not both")
    if target != "loihi" and (calibrate is not None or calibration is not None):
        raise InputError("calibration applies to the loihi target only")
    source_name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    model = load_model(str(source)) if isinstance(source, (str, Path)) else source
    model = model.double().eval()
    timing = timing or ("pipelined" if target == "loihi" else "ideal")
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

    float_graph = lower(model, input_kind=input_kind, shortcut=shortcut)
    if timing == "pipelined":
        float_graph = pipeline(float_graph)
    elif timing != "ideal":
        raise InputError(f"timing must be 'ideal' or 'pipelined', got {timing!r}")
    float_graph.meta["checkpoint"] = source_name

    if target == "onnx":
        return ExportResult(model, float_graph, float_graph, layer_report(float_graph), target, timing, input_kind)
    fixed, report = quantize(float_graph, calibration=calib, progress=progress)
    if test is not None:
        evaluate(float_graph, fixed, test[0], test[1], report, progress=progress)
        report.notes.append(f"spike agreement and accuracy on {len(test[1])} '{calibrate}' test samples")
    return ExportResult(model, float_graph, fixed, report, target, timing, input_kind)
