"""snn-deploy: run an exported NetX network on Lava (CPU simulator fixed / float, or Loihi 2) over a dataset's
test samples; report accuracy, agreement with snnchip.sim.simulate on the same samples, speed and latency.

    snn-deploy model.net --dataset digits-dvs [--data-root DIR] [--samples N] [--run fixed|float|loihi2] [--json]
    snn-deploy model.net --plan [--chip loihi2|loihi|FILE] [--weight-bits N] [--conv-weights expanded|shared] [--json]

A stock file (slayer's export, lava-dl's networks) or a stock-exact snn-export file runs as it is, the original
file through stock lava-dl netx; snnchip-extension files run through snnchip's Lava builder.
Exit status 0 if Lava and simulate agree at every step (bit for bit in fixed point), 1 if not, 2 for bad input
or a Lava run stopped by the watchdog (--timeout).
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
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop the Lava run (all its processes) and fail in one line if it has not finished after "
                        "this many seconds, compile included (default 600)")
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
           run: str = "fixed", input_shape: tuple[int, ...] | None = None, timeout_s: float | None = None) -> dict:
    """Run `net` on Lava and on `simulate` over the same samples; the report as a dict (see the CLI).

    A stock file (no snnchip extension, e.g. slayer's export) and a stock-exact file of ours run in fixed point as
    they are, the original file through stock lava-dl netx, so that a misreading by snnchip's reader shows as a
    difference from `simulate`; snnchip-extension files, float runs, sigma-delta networks and files with layers
    netx refuses (pool, convT, unpool, average) go through snnchip's builder (the report's `lava_ran`). Every
    layer's spikes that Lava records are compared at every step. input_shape: for a stock file without an input
    layer (`read_netx`). timeout_s: the watchdog's limit on the Lava run
    (default `watchdog.DEFAULT_TIMEOUT_S`)."""
    import torch

    from ..formats.netx import read_netx
    from ..formats.netx_read import FOREIGN_KIND, STOCK_KIND, netx_builds_layers, netx_file_kind
    from ..loihi import encode_input
    from ..sim import fit_samples, sample_stream, simulate
    from ..train.data import load_samples
    from .run import as_float, run_on_lava
    from .watchdog import DEFAULT_TIMEOUT_S

    if samples < 1:
        raise InputError(f"--samples must be >= 1, got {samples}")
    timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    if not timeout_s > 0:
        raise InputError(f"--timeout must be > 0 seconds, got {timeout_s}")
    run_cfg = None
    if run == "loihi2":          # before the network and the data are read: a missing lava-loihi is said at once
        from .hardware import loihi2_run_config
        run_cfg = loihi2_run_config()
    graph = read_netx(Path(net), input_shape=input_shape)
    kind = netx_file_kind(net)
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
    # sigma-delta chains and layers netx refuses (pool, convT, ...) still go through snnchip's builder
    original = (run != "float" and kind in (FOREIGN_KIND, STOCK_KIND) and netx_builds_layers(net)
                and not any(pop.neuron.sigma_delta for pop in graph.populations))
    route = dict(via="netx", netx_file=net) if original else dict(via="builder")
    try:
        lava = run_on_lava(graph, xin, tag, run_cfg=run_cfg, timeout_s=timeout_s, **route)
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
    for name, got in lava.stream_spikes.items():
        compare["spikes" if name == out.name else f"spikes of {name}"] = (got, ref.spikes[name][0].numpy())
    agreement = {}
    for what, (got, want) in compare.items():
        # Fixed point must match to the bit; float sums may differ in the last bits (summation order).
        same = got == want if graph.fixed else np.isclose(got, want, rtol=FLOAT_RTOL, atol=FLOAT_RTOL)
        same_steps = np.all(same.reshape(-1, got.shape[-1]), axis=0)
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        agreement[what] = {"identical_steps": int(same_steps.sum()), "steps": int(got.shape[-1]),
                           "max_abs_diff": float(diff.max()), "nonzero": int(np.count_nonzero(got))}
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
            "processes": lava.processes, "built_by": lava.via, "netx_file": kind,
            "lava_ran": "the original file in stock netx" if original else "snnchip's builder on the graph read"}


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
                    input_shape=parse_shape(args.input_shape) if args.input_shape else None, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['net']} ({report['netx_file']} NetX file) on Lava ({report['run']}), {report['samples']} "
              f"'{report['dataset']}' test samples of {report['T']} steps, {report['processes']} Lava processes: "
              f"{report['lava_ran']}")
        print(f"  accuracy {report['accuracy']:.3f} (simulate: {report['sim_accuracy']:.3f}), "
              f"predicted class agrees on {report['prediction_agreement']:.3f} of samples")
        for what, a in report["agreement"].items():
            if what.startswith("spikes of ") and a["identical_steps"] == a["steps"]:
                continue                 # one line for all layers that agree, below
            print(f"  {what}: identical to simulate at {a['identical_steps']}/{a['steps']} steps "
                  f"(max |diff| {a['max_abs_diff']:g})")
        layers = [w for w in report["agreement"] if w.startswith("spikes of ")]
        same = [w for w in layers if report["agreement"][w]["identical_steps"] == report["agreement"][w]["steps"]]
        if layers:
            print(f"  spikes of the other {len(layers)} layers: {len(same)} identical to simulate at every step")
        if not report["identical"]:
            print(f"  Lava ({report['lava_ran']}) and snnchip's simulate DIFFER: snnchip does not compute what "
                  f"Lava computes for this file")
        print(f"  {report['lava_steps']} steps in {report['lava_seconds']:.2f} s = {report['steps_per_second']:.1f} "
              f"steps/s; latency {report['latency_steps']} steps")
    return 0 if report["identical"] else 1
