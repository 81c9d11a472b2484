"""snn-export: a trained checkpoint -> Loihi fixed-point NetX HDF5 (or a float ONNX step graph), with a per-layer
table of what the lowering and the quantisation did.

    snn-export model.pt --target loihi [-o model.net] [--timing pipelined] [--calibrate digits-dvs] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli_util import UserError, one_line_errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snn-export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint written by snn-train (.pt)")
    p.add_argument("--target", choices=("loihi", "onnx"), required=True,
                   help="loihi: quantised NetX HDF5; onnx: the float network as an ONNX step graph")
    p.add_argument("-o", "--output", help="output file (default: the checkpoint's name with .net / .onnx)")
    p.add_argument("--timing", choices=("ideal", "pipelined"),
                   help="ideal: every layer in the same step (as torch); pipelined: one step per synaptic hop "
                        "(default for loihi: pipelined, for onnx: ideal)")
    p.add_argument("--input", choices=("auto", "binary", "graded"), default="auto",
                   help="input encoding: binary spikes or graded payloads (auto: binary if the calibration data "
                        "is 0/1, else graded)")
    p.add_argument("--shortcut", choices=("composed", "relay"), default="composed",
                   help="MS-ResNet shortcut: composed spike-driven projections (exact, quadratic in blocks) or "
                        "a graded relay per block (linear)")
    p.add_argument("--calibrate", metavar="DATASET",
                   help="calibrate voltage bounds on this dataset's training split and report spike agreement "
                        "and test accuracy float vs fixed (loihi only)")
    p.add_argument("--data-root", help="dataset root folder (default: the dataset's own default)")
    p.add_argument("--samples", type=int, default=256, help="calibration samples (default 256)")
    p.add_argument("--eval-samples", type=int, default=512,
                   help="test samples for the float vs fixed accuracy with --calibrate (default 512, 0 = skip)")
    p.add_argument("--dry-run", action="store_true", help="lower, quantise and report; write no file")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    return p


def _load_split(name: str, split: str, root, T: int, count: int):
    """The first `count` samples of a dataset split as (x [N, C, H, W, T] float64, y [N])."""
    import torch
    from tqdm import tqdm
    from ..train.data import load_dataset
    try:
        data = load_dataset(name, split, root=root, T=T)
    except (KeyError, ValueError, FileNotFoundError, OSError) as exc:
        raise UserError(f"cannot load dataset '{name}' ({split}): {exc}") from None
    count = min(count, len(data))
    xs, ys = [], []
    for i in tqdm(range(count), desc=f"{name} {split}", unit="sample", file=sys.stderr, leave=False):
        x, y = data[i]
        xs.append(torch.as_tensor(x, dtype=torch.float64))
        ys.append(int(y))
    if not xs:
        raise UserError(f"dataset '{name}' ({split}) is empty")
    return torch.stack(xs), torch.tensor(ys)


@one_line_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..train.checkpoint import load_model
    from .lower import lower
    from .report import layer_report
    from .timing import pipeline

    path = Path(args.checkpoint)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    model = load_model(str(path)).double().eval()
    timing = args.timing or ("pipelined" if args.target == "loihi" else "ideal")
    T = int(model.config.T)

    calib = test = None
    if args.calibrate:
        if args.target != "loihi":
            raise UserError("--calibrate applies to --target loihi only")
        calib = _load_split(args.calibrate, "train", args.data_root, T, args.samples)
        if args.eval_samples > 0:
            test = _load_split(args.calibrate, "test", args.data_root, T, args.eval_samples)
    input_kind = args.input
    if input_kind == "auto":
        binary = calib is not None and bool(((calib[0] == 0) | (calib[0] == 1)).all())
        input_kind = "binary" if binary else "graded"
    elif input_kind == "binary" and calib is not None and not bool(((calib[0] == 0) | (calib[0] == 1)).all()):
        raise UserError(f"--input binary, but '{args.calibrate}' has values other than 0 and 1")

    graph = lower(model, input_kind=input_kind, shortcut=args.shortcut)
    if timing == "pipelined":
        graph = pipeline(graph)
    graph.meta["checkpoint"] = str(path)

    if args.target == "loihi":
        from .quantize import evaluate, quantize
        fixed, report = quantize(graph, calibration=calib, progress=True)
        if test is not None:
            evaluate(graph, fixed, test[0], test[1], report, progress=True)
            report.notes.append(f"spike agreement and accuracy on {len(test[1])} '{args.calibrate}' test samples")
        out = Path(args.output or path.with_suffix(".net"))
        if not args.dry_run:
            from .netx_hdf5 import write_netx
            write_netx(fixed, str(out))
    else:
        report = layer_report(graph)
        out = Path(args.output or path.with_suffix(".onnx"))
        if not args.dry_run:
            from .onnx_export import export_onnx
            export_onnx(graph, str(out))

    if args.json:
        summary = {"output": None if args.dry_run else str(out), "target": args.target, "timing": timing,
                   "input": input_kind, "latency": graph.latency()}
        print(json.dumps({**summary, **report.to_dict()}, indent=1, default=_json_default))
    else:
        print(report.table())
        what = "dry run, nothing written" if args.dry_run else f"wrote {out}"
        print(f"{what} ({args.target}, {timing} timing, latency {graph.latency()} steps, {input_kind} input)")
    return 0


def _json_default(value):
    import numpy as np
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
