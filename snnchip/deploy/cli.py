"""snn-deploy: run an exported NetX network on Lava (CPU simulator fixed / float, or Loihi 2) over a dataset's
test samples; report accuracy, agreement with snnchip.sim.simulate on the same samples, speed and latency.

    snn-deploy model.net --dataset digits-dvs [--data-root DIR] [--samples N] [--run fixed|float|loihi2] [--json]
    snn-deploy model.net --plan [--chip loihi2|loihi|FILE] [--weight-bits N] [--conv-weights expanded|shared] [--json]

Exit status 0 if Lava and simulate agree at every step (bit for bit in fixed point), 1 if not, 2 for bad input.
With --plan nothing is run (no Lava, no data): the network is partitioned onto the chip's neurocores
(snnchip.plan, docs/plan.md); exit status 0 if every population can be mapped, 1 if not.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..cli_util import one_line_errors
from ..errors import InputError
from ..train.data import add_dataset_arguments

FLOAT_RTOL = 1e-9


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snn-deploy", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("net", help="a NetX HDF5 network (written by snn-export, or a stock lava-dl file)")
    add_dataset_arguments(p, samples=20, samples_help="test samples to run (--dataset is required unless --plan)")
    p.add_argument("--T", type=int, help="time steps per sample (default: the network's, else the dataset's)")
    p.add_argument("--input-shape", metavar="C,H,W", help="the input's shape for a stock file without an input "
                   "layer (netx's input_shape; C,H,W, or F)")
    p.add_argument("--run", choices=("fixed", "float", "loihi2"), default="fixed",
                   help="fixed: Lava CPU simulator, bit-accurate fixed point (default); float: CPU simulator in "
                        "float, the file's integers read in float (units of synaptic input); loihi2: Loihi 2 "
                        "hardware (needs lava-loihi)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    plan = p.add_argument_group("resource plan (no Lava, no data)")
    plan.add_argument("--plan", action="store_true",
                      help="partition the network onto the chip's neurocores and print cores, chips, utilisation "
                           "and the limiting resource per population (a table, or JSON with --json)")
    plan.add_argument("--chip", default="loihi2",
                      help="with --plan: a built-in chip (loihi2, loihi) or a chip description file (default loihi2)")
    plan.add_argument("--weight-bits", type=int, metavar="N",
                      help="with --plan: store every weight with at most N bits (default: the bits the file's "
                           "integer weights need)")
    plan.add_argument("--conv-weights", choices=("expanded", "shared"), default="expanded",
                      help="with --plan: conv synapses stored one per connection (expanded, default) or shared "
                           "through population axons (shared); see docs/plan.md")
    plan.add_argument("--core-list", action="store_true", help="with --plan --json: include every core's use")
    return p


def deploy(net: str, dataset: str, *, data_root=None, samples: int = 20, T: int | None = None,
           run: str = "fixed", input_shape: tuple[int, ...] | None = None) -> dict:
    """Run `net` on Lava and on `simulate` over the same samples; the report as a dict (see the CLI)."""
    import torch

    from ..formats.netx import read_netx
    from ..loihi import encode_input
    from ..sim import fit_samples, sample_stream, simulate
    from ..train.data import load_samples
    from .run import as_float, run_on_lava

    if samples < 1:
        raise InputError(f"--samples must be >= 1, got {samples}")
    run_cfg = None
    if run == "loihi2":          # before the network and the data are read: a missing lava-loihi is said at once
        from .hardware import loihi2_run_config
        run_cfg = loihi2_run_config()
    graph = read_netx(Path(net), input_shape=input_shape)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise InputError(f"{net}: snn-deploy runs networks with one input and one output population, this one has "
                        f"{len(graph.inputs)} and {len(graph.outputs)}")
    T = T or graph.steps
    x, y = load_samples(dataset, "test", root=data_root, T=T, count=samples, progress=True)
    x, y = fit_samples(graph, x, f"{net}: dataset '{dataset}'").numpy(), y.numpy()
    try:
        xin = encode_input(graph, torch.as_tensor(x)).numpy()
    except ValueError as exc:
        raise InputError(f"{net}: {exc}") from None
    if run == "float":
        graph, xin, tag = as_float(graph), xin.astype(np.float64), "floating_pt"
    else:
        tag = "fixed_pt"
    try:
        lava = run_on_lava(graph, xin, tag, run_cfg=run_cfg)
    except ValueError as exc:
        raise InputError(f"{net}: {exc}") from None
    steps = xin.shape[-1]
    stream = sample_stream(graph, xin, steps, extra_steps=lava.num_steps - len(xin) * steps)
    ref = simulate(graph, {k: v[None] for k, v in stream.items()}, reset_interval=steps,
                   record=tuple(name for name, _ in lava.stream_spikes.items()), count=False)
    out = graph.outputs[0]
    compare = {}
    if out.name in lava.stream_outputs:
        compare["readout"] = (lava.stream_outputs[out.name], ref.outputs[out.name][0].numpy())
    if out.name in lava.stream_spikes:
        compare["spikes"] = (lava.stream_spikes[out.name], ref.spikes[out.name][0].numpy())
    agreement = {}
    for what, (got, want) in compare.items():
        # Fixed point must match to the bit; float sums may differ in the last bits (summation order).
        same = got == want if graph.fixed else np.isclose(got, want, rtol=FLOAT_RTOL, atol=FLOAT_RTOL)
        same_steps = np.all(same.reshape(-1, got.shape[-1]), axis=0)
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        agreement[what] = {"identical_steps": int(same_steps.sum()), "steps": int(got.shape[-1]),
                           "max_abs_diff": float(diff.max())}
    ref_windows = {name: np.stack([v[0].numpy()[..., k * steps + lava.latency:(k + 1) * steps + lava.latency]
                                   for k in range(len(xin))]) for name, v in ref.outputs.items()}
    ref_spikes = {name: np.stack([v[0].numpy()[..., k * steps + lava.latency:(k + 1) * steps + lava.latency]
                                  for k in range(len(xin))]) for name, v in ref.spikes.items()}
    pred = _predict(graph, lava.outputs, lava.spikes)
    pred_sim = _predict(graph, ref_windows, ref_spikes)
    return {"net": str(net), "dataset": dataset, "run": run, "samples": int(len(y)), "T": int(steps),
            "accuracy": float((pred == y).mean()), "sim_accuracy": float((pred_sim == y).mean()),
            "prediction_agreement": float((pred == pred_sim).mean()),
            "identical": all(a["identical_steps"] == a["steps"] for a in agreement.values()),
            "agreement": agreement, "latency_steps": int(lava.latency), "lava_steps": int(lava.num_steps),
            "lava_seconds": round(lava.seconds, 3), "steps_per_second": round(lava.steps_per_second, 2),
            "processes": lava.processes, "built_by": lava.via}


def _predict(graph, volts: dict, spikes: dict) -> np.ndarray:
    """Predicted classes from the output population's sample windows (`sim.class_scores`)."""
    from ..sim import class_scores
    out = graph.readout or graph.outputs[0].name
    return np.asarray(class_scores(graph, voltage=volts.get(out), spikes=spikes.get(out))).argmax(1)


def plan_network(net: str, chip: str = "loihi2", *, weight_bits: int | None = None,
                 conv_weights: str = "expanded"):
    """The resource plan (`snnchip.plan.Plan`) of a NetX file on a chip; InputError (one line) for bad input."""
    from ..formats.netx import read_netx
    from ..plan import load_chip, plan_graph
    graph = read_netx(Path(net))
    try:
        return plan_graph(graph, load_chip(chip), weight_bits=weight_bits, conv_weights=conv_weights)
    except InputError as exc:
        raise InputError(f"{net}: {exc}") from None


def _plan_main(args) -> int:
    from ..plan import plan_table, plan_to_dict
    plan = plan_network(args.net, args.chip, weight_bits=args.weight_bits, conv_weights=args.conv_weights)
    if args.json:
        print(json.dumps({"net": str(args.net), **plan_to_dict(plan, cores=args.core_list)}, indent=1))
    else:
        print(plan_table(plan, title=str(args.net)), end="")
    return 0 if plan.mappable else 1


@one_line_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.plan:
        return _plan_main(args)
    if args.T is not None and args.T < 1:
        raise InputError(f"--T must be >= 1, got {args.T}")
    if not args.dataset:
        raise InputError("--dataset is required to run the network (or use --plan for a resource plan)")
    from ..cli_util import parse_shape
    report = deploy(args.net, args.dataset, data_root=args.data_root, samples=args.samples, T=args.T, run=args.run,
                    input_shape=parse_shape(args.input_shape) if args.input_shape else None)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['net']} on Lava ({report['run']}), {report['samples']} '{report['dataset']}' test samples "
              f"of {report['T']} steps, {report['processes']} Lava processes built by {report['built_by']}")
        print(f"  accuracy {report['accuracy']:.3f} (simulate: {report['sim_accuracy']:.3f}), "
              f"predicted class agrees on {report['prediction_agreement']:.3f} of samples")
        for what, a in report["agreement"].items():
            print(f"  {what}: identical to simulate at {a['identical_steps']}/{a['steps']} steps "
                  f"(max |diff| {a['max_abs_diff']:g})")
        print(f"  {report['lava_steps']} steps in {report['lava_seconds']:.2f} s = {report['steps_per_second']:.1f} "
              f"steps/s; latency {report['latency_steps']} steps")
    return 0 if report["identical"] else 1
