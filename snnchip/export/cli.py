"""snn-export: a trained checkpoint or a NIR file -> Loihi fixed-point NetX HDF5 (or a float ONNX step graph, or
NIR), with a per-layer table of what the lowering and the quantisation did.

    snn-export model.pt --target loihi [-o model.net] [--timing pipelined] [--calibrate digits-dvs] [--json]
                        [--stock | --extension]
    snn-export model.pt --target loihi --weight-bits 4 --calibrate digits-dvs   # 4-bit weight mantissas
    snn-export model.pt --target nir -o model.nir              # the float network, for other frameworks
    snn-export model.nir --target loihi --dt 1e-4 --steps 8 --calibrate digits-dvs -o model.net
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli_util import check_input_file, one_line_errors
from ..errors import InputError
from ..formats.nir import DEFAULT_DT
from .recipe import DEFAULT_CALIBRATION_SAMPLES, DEFAULT_EVAL_SAMPLES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snn-export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="SOURCE",
                   help="a checkpoint written by snn-train (.pt), or a NIR file (.nir) from any framework")
    p.add_argument("--target", choices=("loihi", "onnx", "nir"), required=True,
                   help="loihi: quantised NetX HDF5; onnx: the float network as an ONNX step graph; nir: the float "
                        "network as NIR")
    p.add_argument("-o", "--output", help="output file (default: the source's name with .net / .onnx / .nir)")
    p.add_argument("--timing", choices=("ideal", "pipelined"),
                   help="ideal: every layer in the same step (as torch); pipelined: one step per synaptic hop "
                        "(default for loihi: pipelined, for onnx: ideal)")
    p.add_argument("--input", choices=("auto", "binary", "graded"), default="auto",
                   help="input encoding: binary spikes or graded payloads (auto: binary if the calibration data "
                        "is 0/1, else graded)")
    p.add_argument("--shortcut", choices=("composed", "relay"),
                   help="MS-ResNet shortcut: composed spike-driven projections (exact, quadratic in blocks) or "
                        "a graded relay per block (linear; default for --target nir, else composed)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--stock", action="store_true",
                      help="loihi: quantise for stock lava-dl netx (weight exponents 0, bias exponent 6) and write "
                           "a file it computes exactly as snn-sim does, or refuse in one line; a graded input is "
                           "then netx's input_message_bits (default: stock-exact whenever the network is a chain "
                           "with binary input)")
    kind.add_argument("--extension", action="store_true",
                      help="loihi: quantise freely (a weight exponent per projection) and write an "
                           "snnchip-extension file, which stock netx refuses")
    p.add_argument("--dt", type=float, default=DEFAULT_DT, metavar="SECONDS",
                   help=f"NIR: seconds per time step, as the file's exporter used (default {DEFAULT_DT:g}, the "
                        f"default of snnTorch and SpikingJelly)")
    p.add_argument("--steps", type=int, metavar="T",
                   help="NIR source: time steps per sample for --calibrate (default: the file's metadata 'T')")
    p.add_argument("--no-type-check", action="store_true",
                   help="NIR source: read without nir's type check (snnchip infers the shapes)")
    p.add_argument("--calibrate", metavar="DATASET",
                   help="calibrate voltage bounds on this dataset's training split and report spike agreement "
                        "and test accuracy float vs fixed (loihi only)")
    p.add_argument("--data-root", metavar="DIR", help="folder holding the dataset's files (default: the dataset's own)")
    p.add_argument("--samples", type=int, default=DEFAULT_CALIBRATION_SAMPLES, metavar="N",
                   help=f"calibration samples from the training split (default {DEFAULT_CALIBRATION_SAMPLES})")
    p.add_argument("--eval-samples", type=int, default=DEFAULT_EVAL_SAMPLES, metavar="N",
                   help=f"test samples for the float vs fixed accuracy with --calibrate (default "
                        f"{DEFAULT_EVAL_SAMPLES}, 0 = skip)")
    p.add_argument("--weight-bits", type=int, metavar="B",
                   help="weight mantissa bits 2..8 (post-training quantisation at low precision; default: the "
                        "checkpoint's --qat width, else 8, Loihi's full width)")
    p.add_argument("--dry-run", action="store_true", help="lower, quantise and report; write no file")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    return p


@one_line_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..formats.netx import write_netx
    from ..formats.nir import write_nir
    from ..formats.onnx_step import export_onnx
    from .recipe import export_model

    path = Path(args.checkpoint)
    check_input_file(path, "checkpoint or .nir file")
    if (args.stock or args.extension) and args.target != "loihi":
        raise InputError("--stock and --extension apply to --target loihi only")
    if args.calibrate and args.target != "loihi":
        raise InputError("--calibrate applies to --target loihi only")
    is_nir = path.suffix.lower() == ".nir"
    if not is_nir and (args.steps is not None or args.no_type_check):
        raise InputError("--steps and --no-type-check apply to a NIR source (.nir) only")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be >= 1, got {args.steps}")
    if args.samples < 1 or args.eval_samples < 0:
        raise InputError(f"--samples must be >= 1 and --eval-samples >= 0, got {args.samples}, {args.eval_samples}")
    suffix = {"loihi": ".net", "onnx": ".onnx", "nir": ".nir"}[args.target]
    out = Path(args.output or path.with_suffix(suffix))
    try:
        result = export_model(path, target=args.target, timing=args.timing, input_kind=args.input,
                              shortcut=args.shortcut, calibrate=args.calibrate, data_root=args.data_root,
                              calibration_samples=args.samples, eval_samples=args.eval_samples, progress=True,
                              dt=args.dt, steps=args.steps, type_check=not args.no_type_check,
                              weight_bits=args.weight_bits,
                              stock=True if args.stock else False if args.extension else None)
    except InputError as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from None
    if not args.dry_run and out.resolve() == path.resolve():
        raise InputError(f"-o {out} would overwrite the source; give another output name")
    if not args.dry_run:
        if args.target == "nir":
            write_nir(result.graph, out, dt=args.dt, metadata={"source": str(path)})
        elif args.target == "loihi":
            write_netx(result.graph, out, graded_input=result.stock)
        else:
            export_onnx(result.graph, out)
    summary = result.summary()
    if args.json:
        report = {"output": None if args.dry_run else str(out), **summary, **result.report.to_dict()}
        print(json.dumps(report, indent=1, default=_json_default))
    else:
        print(result.report.table())
        what = "dry run, nothing written" if args.dry_run else f"wrote {out}"
        print(f"{what} ({args.target}, {summary['timing']} timing, latency {summary['latency']} steps, "
              f"{summary['input']} input)")
        if args.target == "loihi":
            print(f"NetX file kind: {summary['netx_file']} (stock lava-dl netx {summary['stock_netx']})")
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
