"""snn-energy: per-layer operation counts and energy of a spiking network, and of the same network as an ANN.

    snn-energy model.pt --dataset digits-dvs [--compare-fixed] [--html r.html] [--markdown r.md] [--json]
    snn-energy model.net --dataset digits-dvs          (NetX HDF5: counts from the simulator's counters)
    snn-energy --arch ms_resnet34 --input-shape 3,224,224 [--T 6] --json      (no data: parameters, ANN FLOPs)

Energy models: built-in `cmos45nm` (Horowitz, ISSCC 2014) and `loihi` (Davies et al., IEEE Micro 2018), or a
JSON file of your own (`--energy-model FILE`, see docs/energy.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..cli_util import check_input_file, one_line_errors, parse_shape
from ..errors import InputError
from ..fileio import write_text
from ..train.data import add_dataset_arguments
from ..export.recipe import DEFAULT_CALIBRATION_SAMPLES
from .energy_models import builtin_model_names, load_energy_model

NETX_SUFFIXES = (".net", ".h5", ".hdf5")
DEFAULT_MODELS = ("cmos45nm", "loihi")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snn-energy", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", nargs="?", help="a checkpoint from snn-train (.pt) or a NetX HDF5 (.net/.h5)")
    add_dataset_arguments(p, split=True, samples=64, samples_help="samples to count on")
    p.add_argument("--input", metavar="NPY", help="NetX networks, instead of --dataset: one raw input as snn-sim "
                   "takes it, (x, y, f, t) or (N, x, y, f, t) integers; with --T longer than its t, it is cycled (as "
                   "Lava's RingBuffer feeds lava-dl's test inputs)")
    p.add_argument("--batch-size", type=int, default=16, help="samples per forward pass (default 16)")
    p.add_argument("--T", type=int, help="time steps per sample (default: the model's / dataset's)")
    p.add_argument("--arch", help="without data: an architecture name (e.g. ms_resnet34, ms_resnet20)")
    p.add_argument("--input-shape", help="with --arch: C,H,W of one input frame, e.g. 3,224,224; with a NetX file "
                   "that has no input layer: the shape of its input (C,H,W, or F)")
    p.add_argument("--family", help="with --arch: model family override (cifar, imagenet, dvs)")
    p.add_argument("--energy-model", action="append", metavar="NAME|FILE",
                   help=f"energy model(s) to price with, repeatable (default: {', '.join(DEFAULT_MODELS)}; "
                        f"built-in: {', '.join(builtin_model_names())})")
    p.add_argument("--ann-frames", type=int,
                   help="frames an ANN processes per sample (default: 1 for static images, T for event data)")
    p.add_argument("--compare-fixed", nargs="?", const="", metavar="NET",
                   help="checkpoint only: also count the Loihi fixed-point network with the simulator and report "
                        "per layer how its synaptic ops differ from the float model's and what the spike "
                        "differences predict; NET is the .net snn-export wrote for this checkpoint (without it, "
                        "the network is exported here exactly as `snn-export CHECKPOINT --target loihi "
                        "--calibrate DATASET` does: calibrated on the dataset's training split)")
    p.add_argument("--calibration-samples", type=int, default=DEFAULT_CALIBRATION_SAMPLES, metavar="N",
                   help="with --compare-fixed and no NET: training samples to calibrate on, as snn-export's "
                        f"--samples (default {DEFAULT_CALIBRATION_SAMPLES})")
    p.add_argument("--chip", default="loihi", metavar="NAME|FILE",
                   help="NetX only: the chip whose resource plan gives the static cost (cores active x time "
                        "steps), built-in loihi or loihi2, or a chip file (docs/plan.md; default loihi)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--output", "-o", metavar="FILE", help="write the JSON report to FILE")
    p.add_argument("--markdown", metavar="FILE", help="write a Markdown report to FILE")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with plots to FILE")
    return p


def arch_summary(args) -> dict:
    from ..train.models import build_model, model_config
    from .flops import flops_summary

    if not args.input_shape:
        raise InputError("--arch needs --input-shape C,H,W")
    shape = parse_shape(args.input_shape)
    overrides = {"in_channels": shape[0]}
    if len(shape) == 3:
        overrides["input_size"] = (shape[1], shape[2])
    if args.T:
        overrides["T"] = args.T
    if args.family:
        overrides["family"] = args.family
    try:
        config = model_config(args.arch, **overrides)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"--arch '{args.arch}': {exc}") from None
    model = build_model(config)
    summary = flops_summary(model, shape, int(config.T))
    summary.update(tool="snn-energy", arch=args.arch, input_shape=list(shape))
    return summary


def _load_inputs(args, T):
    """Every requested sample as one list of batches (the same inputs feed the model and the simulator)."""
    from ..train.data import iter_batches
    return [x for x, _ in iter_batches(args.dataset, args.split, root=args.data_root, T=T, count=args.samples,
                                       batch_size=args.batch_size)]


def _ann_frames(dataset: str, steps: int) -> int:
    """An ANN runs once on a static image (no sensor) and once per frame on event data."""
    from ..train.data import dataset_info
    return 1 if dataset_info(dataset).sensor_size is None else steps


def _progress(total: int, what: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=what, unit="sample", file=sys.stderr, leave=False)


def checkpoint_report(args, pricings) -> dict:
    from ..train.checkpoint import load_model
    from .count import count_model, run_model
    from .report import build_report

    model = load_model(args.network).double().eval()
    # the fixed-point network first: a wrong file is refused before any counting
    fixed = _fixed_network(args, model) if args.compare_fixed is not None else None
    T = args.T or int(model.config.T)
    batches = _load_inputs(args, T)
    total = sum(int(b.shape[0]) for b in batches)
    input_shape = tuple(batches[0].shape[1:-1])
    with _progress(total, "float model") as bar:
        counts = count_model(model, batches, input_shape, progress=bar)
    frames = args.ann_frames or _ann_frames(args.dataset, counts.steps)
    report = build_report(counts, pricings, ann_frames=frames,
                          meta={"network": args.network, "network_kind": "checkpoint", "dataset": args.dataset,
                                "split": args.split})
    if fixed is not None:
        from ..loihi import encode_input
        from .compare import compare
        from .count import count_graph

        with _progress(total, "float model (graph ops)") as bar:
            activity, samples, _ = run_model(model, batches, progress=bar)
        with _progress(total, "fixed-point sim") as bar:
            sim = count_graph(fixed, [encode_input(fixed, b) for b in batches], progress=bar)
        report["comparison"] = compare(fixed, activity, sim, samples)
        report["comparison"]["network"] = args.compare_fixed or "exported as snn-export --calibrate does"
    return report


def _fixed_network(args, model):
    """The fixed-point network of this checkpoint: the .net given to --compare-fixed, or the one snn-export
    writes for `--target loihi --calibrate DATASET` (the shared export recipe, same defaults)."""
    if args.compare_fixed:
        from ..formats.netx import read_netx
        fixed = read_netx(args.compare_fixed)
        if not fixed.module_names:
            raise InputError(f"{args.compare_fixed}: not a network snn-export wrote from a checkpoint (no "
                             f"population -> model module map)")
        return fixed
    from ..export.recipe import export_model
    return export_model(model, calibrate=args.dataset, data_root=args.data_root,
                        calibration_samples=args.calibration_samples, eval_samples=0).graph


def netx_report(args, pricings) -> dict:
    import torch

    from ..formats.netx import read_netx
    from ..loihi import encode_input
    from ..sim import fit_samples
    from .count import count_graph
    from .report import build_report

    graph = read_netx(args.network, input_shape=parse_shape(args.input_shape) if args.input_shape else None)
    # our exported graphs carry the T they were trained with; stock files take the data set's own (as snn-sim)
    T = args.T or graph.steps
    if args.input:
        batches = [_raw_input(args.input, graph, T)]
    else:
        batches = [fit_samples(graph, b, args.dataset) for b in _load_inputs(args, T)]
        if graph.fixed:
            batches = [encode_input(graph, b) for b in batches]
    total = sum(int(b.shape[0]) for b in batches)
    with _progress(total, "simulator") as bar:
        counts = count_graph(graph, [torch.as_tensor(b) for b in batches], progress=bar)
    frames = args.ann_frames or (_ann_frames(args.dataset, counts.steps) if args.dataset else 1)
    report = build_report(counts, pricings, ann_frames=frames,
                          ann_baseline=_architecture_baseline(args.network, graph),
                          meta={"network": args.network, "network_kind": "netx",
                                "dataset": args.dataset or f"input {args.input}", "split": args.split})
    if graph.fixed:
        report["static"] = static_cost(graph, args.chip, counts.steps)
    return report


def static_cost(graph, chip_spec: str, steps: int) -> dict:
    """The plan's static cost beside the per-operation cost: the cores the resource plan (`snnchip.plan`) maps the
    fixed-point `graph` onto, active for the `steps` time steps of each sample (a streaming deployment holds them
    all while samples pass), priced by the chip's `static_energy_per_core_step_pj` where its file gives one."""
    from ..plan import load_chip, plan_graph

    chip = load_chip(chip_spec)
    plan = plan_graph(graph, chip)
    core_steps = plan.cores * steps
    figure = chip.figures.get("static_energy_per_core_step_pj")
    out = {"chip": chip.name, "cores": plan.cores, "chips": plan.chips, "mappable": plan.mappable,
           "steps_per_sample": steps, "core_steps_per_sample": core_steps,
           "energy_pj_per_sample": None if figure is None else core_steps * float(figure.value)}
    if figure is None:
        out["not_priced"] = (f"the chip file '{chip.name}' gives no static_energy_per_core_step_pj (its sources "
                             f"publish no static power per core); core-steps are reported unpriced")
    else:
        out["figure"] = {"pJ": float(figure.value), "source": chip.sources[figure.source], "label": figure.label,
                         "published": figure.published}
    return out


def _architecture_baseline(path: str, graph):
    """The ANN baseline of a NetX file: the trained model's architecture where snn-export recorded it
    (`meta['model_config']`), else None (the report then prices the deployment graph's projections)."""
    config = graph.meta.get("model_config")
    if config is None:
        return None
    from ..train.checkpoint import config_from_dict
    from ..train.models import build_model
    from .flops import synaptic_layers
    from .report import baseline_of_layers

    model = build_model(config_from_dict(config, f"{path}: meta 'model_config'")).double()
    layers = synaptic_layers(model, tuple(graph.inputs[0].shape))
    return baseline_of_layers(layers, "the trained model's architecture (model_config recorded by snn-export)")


def _raw_input(path: str, graph, T):
    """A raw input file as snn-sim reads it, `[N, *shape, T]` int64, cycled along time up to T steps."""
    import torch

    from ..sim.cli import load_integers, to_graph_layout
    if len(graph.inputs) != 1:
        raise InputError(f"the network has {len(graph.inputs)} inputs; --input feeds one")
    raw = load_integers(path, "the input (spikes or graded payloads)")
    if raw.ndim < 2:
        raise InputError(f"{path}: input of shape {raw.shape} has no time axis")
    x = to_graph_layout(raw, graph.inputs[0].shape)
    if T is not None:
        x = np.take(x, np.arange(int(T)) % x.shape[-1], axis=-1)
    return torch.from_numpy(np.ascontiguousarray(x))


def _print_summary(report: dict) -> None:
    from .report import energy, si
    t = report["totals"]
    ps = t["per_sample"]
    print(f"{report['network']}: {report['samples']} samples of {report['dataset']}, T = {report['T']}, "
          f"firing rate {ps['firing_rate']:.4f}, synops {si(ps['synops'])}, MACs {si(ps['macs'])}, "
          f"ANN FLOPs {si(ps['ann_flops'])} per sample")
    print(f"  ANN baseline: {report['ann_baseline']['source']}")
    for name, e in t["energy_pj_per_sample"].items():
        ratio = "n/a" if e["ratio"] is None else f"{e['ratio']:.2f}"
        print(f"  {name:16s} E(SNN) {energy(e['snn']):>12s}  E(ANN) {energy(e['ann']):>12s}  ratio {ratio}")
    if "static" in report:
        st = report["static"]
        priced = "not priced" if st["energy_pj_per_sample"] is None else energy(st["energy_pj_per_sample"])
        print(f"  static ({st['chip']} plan): {st['cores']} cores x {st['steps_per_sample']} steps = "
              f"{st['core_steps_per_sample']} core-steps per sample, {priced}")
    if "comparison" in report:
        c = report["comparison"]
        print(f"  fixed vs float synops: {c['synops_diff_percent']:+.3f} % "
              f"({'explained by the spike differences' if c['explained'] else 'NOT explained by spikes'})")


@one_line_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.arch:
        if args.network or args.dataset:
            raise InputError("--arch counts without data; give either --arch or a network with --dataset")
        summary = arch_summary(args)
        text = json.dumps(summary, indent=2)
        if args.output:
            write_text(args.output, text + "\n")
        if args.json:
            print(text)
        else:
            f = summary["ann_flops_per_frame"]
            print(f"{args.arch} {args.input_shape}: {summary['params'] / 1e6:.4g} M parameters, ANN FLOPs per "
                  f"frame {f['full'] / 1e9:.4g} G (full), {f['paper'] / 1e9:.4g} G (seed 000 Table V convention)")
        return 0
    pricings = [p for spec in (args.energy_model or DEFAULT_MODELS) for p in load_energy_model(spec).pricings]
    if not args.network:
        raise InputError("give a network (checkpoint .pt or NetX .net/.h5) with --dataset, or --arch")
    if args.input and args.dataset:
        raise InputError("give either --dataset or --input, not both")
    if not args.dataset and not args.input:
        raise InputError("--dataset is needed to count operations on data (or use --arch for FLOPs only)")
    check_input_file(args.network, "network (checkpoint .pt or NetX .net/.h5)")
    if args.T is not None and args.T < 1:
        raise InputError(f"--T must be >= 1, got {args.T}")
    if args.samples <= 0 or args.batch_size <= 0:
        raise InputError("--samples and --batch-size must be positive")
    if args.ann_frames is not None and args.ann_frames <= 0:
        raise InputError("--ann-frames must be positive")
    is_netx = Path(args.network).suffix.lower() in NETX_SUFFIXES
    if args.input and not is_netx:
        raise InputError("--input feeds a NetX network (.net/.h5); a checkpoint counts on --dataset")
    if is_netx and args.compare_fixed is not None:
        raise InputError("--compare-fixed needs a checkpoint (it exports the float model itself)")
    try:
        report = netx_report(args, pricings) if is_netx else checkpoint_report(args, pricings)
    except ValueError as exc:  # the graph, simulator and counters report malformed input as one-line ValueErrors
        raise InputError(f"{args.network}: {exc}") from None

    from .report import to_html, to_markdown
    text = json.dumps(report, indent=2)
    if args.output:
        write_text(args.output, text + "\n")
    if args.markdown:
        write_text(args.markdown, to_markdown(report))
    if args.html:
        write_text(args.html, to_html(report))
    if args.json:
        print(text)
    else:
        _print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
