"""snn-sim: run a NetX HDF5 network (stock lava-dl or exported by snn-export) bit-exactly, fast, in batches.

Sample mode (default for `--input`): `snn-sim NET --input X.npy [--sample-steps S] [--record DIR]` runs each
sample of X as if alone (snnchip.sim.samples: the input padded with zeros for the network's latency, each layer
reset when the sample reaches it at its depth) and prints the predicted class of each sample. X is one sample
`(x, y, f, t)`, a batch `(N, x, y, f, t)`, or, with `--sample-steps S`, a stream of samples of S steps each laid
end to end. `--raw` instead runs X as one stream exactly as given (no padding, no reset unless
`--reset-interval`), as a Lava run of the same input does; `--input-bias` (netx's image input) is always raw.

Recording (`--record DIR`, with --input, --input-bias or --dataset): for every layer i (the population order,
i.e. netx's `net.layers[i]`), `layer-<i>.npy` (spikes), `layer-<i>-u.npy` and `layer-<i>-v.npy` in Lava's layout:
`(x, y, f, t)` = (W, H, C, T) for conv-shaped layers, `(F, t)` for dense ones, with a leading batch axis if the
input had one (or several samples); `index.json` maps indices to layer names, shapes and depths. In sample mode
the recording covers the whole padded run (T + latency steps): layer i's sample is steps [depth_i, depth_i + T).
The input uses the same layout: `(x, y, f, t)` or `(N, x, y, f, t)` (our exported files too: the graph's
(C, H, W) reversed), integers (spikes, or graded payloads).

Dataset mode: `snn-sim NET --dataset NAME --json` classifies a data set: readout = argmax of the readout
population's final voltage for our exported networks (graph.meta['readout']), of output spike counts otherwise.
Counts per sample are taken over each sample's window (`per_sample`: T steps of every layer, as snn-energy counts);
`per_sample_stream` counts all T + latency steps of the padded runs.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..cli_util import one_line_errors, parse_shape, torch_device
from ..errors import InputError
from ..fileio import load_npy, save_npy, write_json
from ..formats.netx import read_netx
from ..loihi import NETX_BIAS_EXP, encode_input, integers
from ..resources import check_disk, check_memory
from ..train.data import add_dataset_arguments, iter_batches
from .executor import Simulator, simulate
from .samples import fit_samples, run_samples

FILE_PREFIX = "layer"


def xyf(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Lava's (x, y, f) order of a graph shape (C, H, W); 1-d shapes are unchanged."""
    return tuple(shape[::-1])


def to_graph_layout(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(x, y, f, T) or (N, x, y, f, T) in Lava's order -> [N, *shape, T]. Singleton axes may be left out
    (e.g. ntidigits' (64, T) input for a (1, 1, 64) layer)."""
    lava = xyf(shape)
    body = x.shape[:-1]
    if body == lava:
        x = x[None]
    elif len(body) == len(lava) + 1 and body[1:] == lava:
        pass
    else:
        squeeze = tuple(d for d in lava if d != 1)
        if tuple(d for d in body if d != 1) == squeeze:
            x = x.reshape(1, *lava, x.shape[-1])
        elif len(body) >= 1 and tuple(d for d in body[1:] if d != 1) == squeeze:
            x = x.reshape(body[0], *lava, x.shape[-1])
        else:
            raise InputError(f"input of shape {x.shape} does not fit the input layer: expected (x, y, f, t) = "
                            f"({', '.join(map(str, lava))}, T), optionally with a leading batch axis")
    if len(shape) == 3:
        x = x.transpose(0, 3, 2, 1, 4)
    return np.ascontiguousarray(x)


def to_lava_layout(a: np.ndarray, batched: bool) -> np.ndarray:
    """[N, *shape, T] -> (N, x, y, f, T), or without N for a single unbatched sample."""
    if a.ndim == 5:
        a = a.transpose(0, 3, 2, 1, 4)
    return a if batched else a[0]


def load_integers(path: str, what: str) -> np.ndarray:
    """A .npy file of integers as int64 (`fileio.load_npy`, then `loihi.integers`); InputError (one line) else."""
    return integers(load_npy(path, what), f"{path}: {what}", InputError)


def _split_stream(x: np.ndarray, steps: int, path: str) -> np.ndarray:
    """[N, *shape, K * steps] samples laid end to end -> [N * K, *shape, steps]."""
    total = x.shape[-1]
    if steps < 1 or total % steps:
        raise InputError(f"{path}: {total} steps are not a whole number of samples of --sample-steps {steps}")
    k = total // steps
    x = x.reshape(*x.shape[:-1], k, steps)
    return np.ascontiguousarray(np.moveaxis(x, -2, 1).reshape(x.shape[0] * k, *x.shape[1:-2], steps))


def record_mode(graph, args) -> dict:
    pop = graph.inputs[0]
    if len(graph.inputs) != 1:
        raise InputError(f"{args.net}: the network has {len(graph.inputs)} inputs; recording supports one")
    raw_run = args.raw or args.input_bias is not None
    if not raw_run and (args.reset_interval is not None or args.reset_offset):
        raise InputError("--reset-interval / --reset-offset apply to a raw run (--raw or --input-bias); sample "
                         "mode resets each layer at its depth itself")
    if args.sample_steps is not None and raw_run:
        raise InputError("--sample-steps splits the input into samples; it does not apply to a raw run")
    if args.input_bias:
        bias = load_integers(args.input_bias, "the input bias")
        if tuple(bias.shape) != xyf(pop.shape):
            raise InputError(f"{args.input_bias}: input bias of shape {bias.shape}, expected (x, y, f) = "
                            f"{xyf(pop.shape)}")
        # netx's image input: the input neuron's bias mantissa, with netx's bias exponent 6
        pop.bias, pop.bias_exp = bias.transpose(*range(bias.ndim)[::-1]), NETX_BIAS_EXP
    if args.input:
        raw = load_integers(args.input, "the input (spikes or graded payloads)")
        if raw.ndim < 2:
            raise InputError(f"{args.input}: input of shape {raw.shape} has no time axis")
        batched = raw.ndim == len(pop.shape) + 2
        try:
            x = to_graph_layout(raw, pop.shape)
        except InputError as exc:
            raise InputError(f"{args.input}: {exc}") from None
        if args.steps:        # cycled along time, as Lava's RingBuffer feeds lava-dl's test inputs
            if args.steps < 1:
                raise InputError(f"--steps must be >= 1, got {args.steps}")
            check_memory(8 * x[..., 0].size * args.steps, f"--steps {args.steps} of the {pop.shape} input")
            x = np.take(x, np.arange(args.steps) % x.shape[-1], axis=-1)
    else:
        if not args.steps:
            raise InputError("give --input SPIKES.npy, or --input-bias with --steps")
        if args.steps < 1:
            raise InputError(f"--steps must be >= 1, got {args.steps}")
        check_memory(8 * pop.size * args.steps, f"--steps {args.steps} of the {pop.shape} input")
        batched = False
        x = np.zeros((1, *pop.shape, args.steps), dtype=np.int64)
    record = ("spikes", "u", "v") if args.record else ()
    report = {"network": str(args.net)}
    if raw_run:
        res = simulate(graph, torch.from_numpy(x), record=record, device=args.device,
                       reset_interval=args.reset_interval, reset_offset=args.reset_offset, compile=args.compile)
        report.update(mode="raw", steps=int(x.shape[-1]), batch=int(x.shape[0]))
        counters = res.counters.summary()
    else:
        if args.sample_steps is not None:
            x = _split_stream(x, args.sample_steps, args.input)
            batched = batched or x.shape[0] > 1
        run = run_samples(Simulator(graph, args.device, args.compile), torch.from_numpy(x), record=record)
        res = run.result
        report.update(mode="samples", steps=run.steps, latency=graph.latency(), samples=int(x.shape[0]),
                      predictions=[int(c) for c in run.predict().cpu()], scores=run.scores().cpu().tolist())
        sizes = {p.name: p.size for p in graph.populations}
        counters = _per_sample(run.window_counts(), int(x.shape[0]), run.steps, sizes)
        counters["per_sample_stream"] = res.counters.summary()["per_sample"]
    if args.record:
        write_record(Path(args.record), graph, {"spikes": res.spikes, "u": res.u, "v": res.v}, batched, args.net,
                     mode=report["mode"], steps=int(res.counters.steps))
    report.update(record=args.record, counters=counters)
    return report


def write_record(out: Path, graph, recorded: dict, batched: bool, net, **extra) -> None:
    """Every layer's spikes, u and v (`recorded`: quantity -> population -> [N, *shape, T] tensor) as .npy files
    in `out`, then `index.json` (module docstring; `extra` goes into it, each layer's depth too). All or nothing:
    the free space is checked first, and on any failure the files this call wrote are removed again."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--record {out}: exists and is not a folder")
    arrays, files, depth = {}, [], graph.depths()
    for i, p in enumerate(graph.populations):
        entry = {"index": i, "layer": p.name, "shape_xyf": list(xyf(p.shape)), "graded": p.neuron.sends_payloads,
                 "depth": depth[p.name]}
        if p.neuron.sigma_delta:       # u is sigma, v the activation (docs/sdnn.md)
            entry["model"] = p.neuron.model
        for q, suffix in (("spikes", ""), ("u", "-u"), ("v", "-v")):
            a = recorded[q][p.name].cpu().numpy()
            a = a.astype(bool) if q == "spikes" and not p.neuron.sends_payloads else a.astype(
                np.int32 if graph.fixed else a.dtype)
            name = f"{FILE_PREFIX}-{i}{suffix}.npy"
            arrays[name] = to_lava_layout(a, batched)
            entry[q] = name
        files.append(entry)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--record {out}: cannot create the folder ({exc.strerror or exc})") from None
    check_disk(out / "index.json", sum(a.nbytes for a in arrays.values()))
    written = []
    try:
        (out / "index.json").unlink(missing_ok=True)      # an older run's index must not describe these files
        for name, a in arrays.items():
            save_npy(out / name, a)
            written.append(out / name)
        write_json(out / "index.json", {"network": str(net), "layout": "(x, y, f, t) per layer, (N, ...) "
                                        "if batched", **extra, "layers": files})
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def dataset_mode(graph, args) -> dict:
    """Classify the split's samples, each run as if alone (`sim.run_samples`); counts per sample over each sample's
    window (`per_sample`) and over the whole padded runs (`per_sample_stream`)."""
    from tqdm import tqdm

    pop = graph.inputs[0]
    correct, seen, window, stream, steps = 0, 0, None, None, None
    recorded: dict = {"spikes": {}, "u": {}, "v": {}}
    labels, predictions = [], []
    sim = Simulator(graph, args.device, args.compile)
    # our exported graphs carry the T they were trained with; stock files take the data set's own
    batches = iter_batches(args.dataset, args.split, root=args.data_root, T=graph.steps, count=args.samples,
                           batch_size=args.batch_size)
    bar = tqdm(batches, desc="snn-sim", unit="batch", disable=args.json)
    for x, y in bar:
        x = fit_samples(graph, x, f"data set '{args.dataset}'")
        if graph.fixed:
            x = encode_input(graph, x)
        run = run_samples(sim, x, record=("spikes", "u", "v") if args.record else ())
        predicted = run.predict().cpu()
        correct += int((predicted == y).sum())
        seen += len(y)
        labels += [int(c) for c in y]
        predictions += [int(c) for c in predicted]
        window = _add_totals(window, run.window_counts())
        stream = _accumulate(stream, run.result.counters)
        steps = run.steps
        if args.record:
            for q in recorded:
                for name, a in getattr(run.result, q).items():
                    recorded[q].setdefault(name, []).append(a.cpu())
        bar.set_postfix(acc=f"{correct / seen:.3f}")
    sizes = {pop.name: pop.size for pop in graph.populations}
    report = {"network": str(args.net), "dataset": args.dataset, "split": args.split, "samples": seen,
              "steps": steps, "latency": graph.latency(), "accuracy": correct / seen,
              **_per_sample(window, seen, steps, sizes),
              "per_sample_stream": _per_sample(stream, seen, steps + graph.latency(), sizes)["per_sample"]}
    if args.record:
        write_record(Path(args.record), graph, {q: {n: torch.cat(v) for n, v in d.items()}
                                                for q, d in recorded.items()},
                     True, args.net, mode="samples", steps=steps + graph.latency(), dataset=args.dataset,
                     split=args.split, labels=labels, predictions=predictions)
        report["record"] = args.record
    return report


def _add_totals(totals, part):
    """Sum two {'populations'|'projections': name -> {key: int}} dicts."""
    if totals is None:
        return part
    return {group: {n: {k: totals[group][n][k] + c[k] for k in c} for n, c in part[group].items()}
            for group in part}


def _accumulate(totals, counters):
    """Integer totals over all steps and samples, per population and projection (exact across batches)."""
    part = {"populations": {n: {k: int(v.sum()) for k, v in c.items()} for n, c in counters.populations.items()},
            "projections": {n: {k: int(v.sum()) for k, v in c.items()} for n, c in counters.projections.items()}}
    return _add_totals(totals, part)


def _per_sample(totals, seen: int, steps: int, sizes: dict) -> dict:
    """Totals -> per-sample figures and firing rates, shaped like `Counters.summary()`."""
    layers = {}
    for name, c in totals["populations"].items():
        layers[name] = {k: v / seen for k, v in c.items()}
        layers[name]["firing_rate"] = c["output_spikes"] / (seen * sizes[name] * steps)
    projections = {name: {k: v / seen for k, v in c.items()} for name, c in totals["projections"].items()}
    per_sample = {"synops": sum(c["synops"] for c in totals["projections"].values()) / seen,
                  "macs": sum(c["macs"] for c in totals["projections"].values()) / seen,
                  "neuron_updates": sum(c["neuron_updates"] for c in totals["populations"].values()) / seen,
                  "output_spikes": sum(c["output_spikes"] for c in totals["populations"].values()) / seen}
    return {"per_sample": per_sample, "layers": layers, "projections": projections}


def _print_table(report: dict) -> None:
    layers = report.get("layers") or report["counters"].get("layers") or report["counters"]["populations"]
    print(f"{'layer':<28}{'spikes/sample':>15}{'firing rate':>13}")
    for name, c in layers.items():
        print(f"{name:<28}{c['output_spikes']:>15.1f}{c['firing_rate']:>13.4f}")
    per = report.get("per_sample") or report["counters"]["per_sample"]
    print(f"per sample: {per['synops']:.0f} synaptic ops, {per['macs']:.0f} MACs, "
          f"{per['neuron_updates']:.0f} neuron updates")
    if "predictions" in report:
        print("predicted class per sample: " + " ".join(str(c) for c in report["predictions"]))
    if "accuracy" in report:
        print(f"accuracy on {report['samples']} samples of {report['dataset']} ({report['split']}): "
              f"{100 * report['accuracy']:.2f}%")


@one_line_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="snn-sim", description=__doc__.split("\n\n")[0],
        epilog="Recording files: layer-<i>.npy (spikes), layer-<i>-u.npy, layer-<i>-v.npy in Lava's (x, y, f, t) "
               "layout, plus index.json.")
    parser.add_argument("net", help="NetX HDF5 file (stock lava-dl, or written by snn-export)")
    parser.add_argument("--input", help="input .npy, (x, y, f, t) or (N, x, y, f, t), integers: each sample run "
                        "as if alone (padded for the latency, each layer reset at its depth) and its class printed")
    parser.add_argument("--sample-steps", type=int, metavar="S",
                        help="with --input: the input is a stream of samples of S steps each, end to end")
    parser.add_argument("--raw", action="store_true",
                        help="with --input: run it as one stream exactly as given (no padding, no reset unless "
                             "--reset-interval), as Lava runs the same input")
    parser.add_argument("--input-bias", help="image .npy (x, y, f) given as the input neuron's bias (netx style)")
    parser.add_argument("--steps", type=int, help="number of steps: of an --input-bias run, or of an --input "
                        "cycled along time (as Lava's RingBuffer feeds lava-dl's test inputs)")
    parser.add_argument("--record", metavar="DIR", help="write every layer's spikes, u and v per step here "
                        "(with --input, --input-bias or --dataset)")
    parser.add_argument("--input-shape", metavar="C,H,W", help="the input's shape for a stock file without an "
                        "input layer (netx's input_shape; C,H,W, or F)")
    parser.add_argument("--reset-interval", type=int, help="raw run: netx periodic state reset every R steps")
    parser.add_argument("--reset-offset", type=int, default=0, help="phase of the reset (added to each depth)")
    add_dataset_arguments(parser, split=True)
    parser.add_argument("--samples", type=int, metavar="N", help="only the first N samples (default: all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core; use 1 on a "
                        "machine shared with other work, where waiting threads slow every operation)")
    parser.add_argument("--compile", action="store_true",
                        help="on a GPU, or for networks with recurrent projections: fuse the step-by-step "
                             "fixed-point neuron updates with torch.compile (same integers; a one-off compilation)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if bool(args.dataset) == bool(args.input or args.input_bias):
        raise InputError("give either --dataset NAME, or --input / --input-bias (with --record DIR)")
    if args.batch_size < 1 or (args.samples is not None and args.samples < 1):
        raise InputError("--batch-size and --samples must be positive")
    torch_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise InputError("--threads must be positive")
        torch.set_num_threads(args.threads)
    graph = read_netx(args.net, input_shape=parse_shape(args.input_shape) if args.input_shape else None)
    try:
        report = dataset_mode(graph, args) if args.dataset else record_mode(graph, args)
    except ValueError as exc:
        raise InputError(" ".join(str(exc).split())) from None
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0
