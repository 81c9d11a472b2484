"""The main job end to end on the embedded default: digits-dvs -> snn-train -> snn-export -> snn-sim -> snn-deploy
-> snn-energy, then one summary table. `python -m snnchip.demo [--out runs/demo] [--force]`.

Each step is an ordinary console-script command (printed before it runs, so it can be re-run alone); a step
whose output already exists is skipped unless `--force`. The summary is also written as summary.json / .md.
"""
import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .cli_util import one_line_errors
from .errors import InputError
from .fileio import write_json, write_text


def run_step(title: str, cmd: list, output: Path, force: bool, stdout_to: Path = None) -> float:
    """Run `cmd` unless `output` exists; returns seconds spent."""
    print(f"\n== {title}\n$ {shlex.join(map(str, cmd))}" + (f" > {stdout_to}" if stdout_to else ""), flush=True)
    if output.exists() and not force:
        print(f"   (skipped: {output} exists; --force to redo)")
        return 0.0
    start = time.time()
    if stdout_to:
        result = subprocess.run(list(map(str, cmd)), stdout=subprocess.PIPE, text=True)
        if result.returncode == 0:
            write_text(stdout_to, result.stdout)
    else:
        result = subprocess.run(list(map(str, cmd)))
    if result.returncode != 0:
        raise InputError(f"step '{title}' failed with exit code {result.returncode}: {shlex.join(map(str, cmd))}")
    return time.time() - start


def summary(out: Path) -> dict:
    train = json.loads((out / "train" / "metrics.json").read_text())
    export = json.loads((out / "export.json").read_text())
    sim = json.loads((out / "sim.json").read_text())
    lava = json.loads((out / "deploy.json").read_text())
    energy = json.loads((out / "energy.json").read_text())
    per_sample = energy["totals"]["per_sample"]
    return {
        # the exported checkpoint (best.pt: the epoch of highest validation accuracy), on the test split: once by
        # snn-train (the PyTorch model), once by snn-export (the lowered float graph)
        "test_accuracy": train["test_acc"], "test_samples": train["samples"]["test"],
        "best_epoch": train["selected_epoch"], "validation_accuracy": train["selected_val_acc"],
        "float_test_accuracy": export["float_accuracy"], "float_samples": export["evaluation_samples"],
        "fixed_point_test_accuracy": sim["accuracy"], "fixed_point_samples": sim["samples"],
        "lava_accuracy": lava["accuracy"], "lava_samples": lava["samples"],
        "lava_sim_prediction_agreement": lava["prediction_agreement"],
        "lava_identical_every_step": lava["identical"],
        "latency_steps": lava["latency_steps"],
        "firing_rate": per_sample["firing_rate"],
        "synaptic_ops_per_sample": per_sample["synops"], "macs_per_sample": per_sample["macs"],
        "energy_pj_per_sample": energy["totals"]["energy_pj_per_sample"],
        "export_latency": export.get("latency"),
        "files": {"checkpoint": str(out / "train" / "best.pt"), "network": str(out / "net.net"),
                  "energy_html": str(out / "energy.html"), "metrics": str(out / "train" / "metrics.json")},
    }


def markdown(s: dict) -> str:
    rows = [("test accuracy of the exported checkpoint (best.pt)",
             f"{100 * s['test_accuracy']:.2f} % ({s['test_samples']} samples; epoch {s['best_epoch']}, selected on "
             f"validation accuracy {100 * s['validation_accuracy']:.2f} %)"),
            ("float graph accuracy (snn-export, test set)",
             f"{100 * s['float_test_accuracy']:.2f} % ({s['float_samples']} samples)"),
            ("fixed-point accuracy (snn-sim, whole test set)",
             f"{100 * s['fixed_point_test_accuracy']:.2f} % ({s['fixed_point_samples']} samples)"),
            ("Lava accuracy (snn-deploy)", f"{100 * s['lava_accuracy']:.2f} % ({s['lava_samples']} samples)"),
            ("Lava vs snn-sim", f"class agreement {100 * s['lava_sim_prediction_agreement']:.0f} %, identical "
                                f"outputs at every step: {'yes' if s['lava_identical_every_step'] else 'NO'}"),
            ("latency on chip", f"{s['latency_steps']} steps"),
            ("firing rate", f"{s['firing_rate']:.4f}"),
            ("synaptic ops / sample", f"{s['synaptic_ops_per_sample']:,.0f} (+ {s['macs_per_sample']:,.0f} MACs)")]
    for model, e in s["energy_pj_per_sample"].items():
        snn = "not priced" if e["snn"] is None else f"{e['snn'] / 1e6:.3f} uJ"
        ann = "not priced" if e["ann"] is None else f"{e['ann'] / 1e6:.3f} uJ"
        ratio = "" if e["ratio"] is None else f" (ANN/SNN {e['ratio']:.1f}x)"
        rows.append((f"energy / sample, {model}", f"SNN {snn} vs ANN {ann}{ratio}"))
    rows += [(f"file: {k}", v) for k, v in s["files"].items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(["| quantity | value |", "|---|---|"] + [f"| {k.ljust(width)} | {v} |" for k, v in rows])


@one_line_errors
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snnchip.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--lava-samples", type=int, default=20)
    parser.add_argument("--force", action="store_true", help="redo steps whose outputs exist")
    args = parser.parse_args(argv)
    out, bin_dir = args.out, Path(sys.executable).parent
    out.mkdir(parents=True, exist_ok=True)
    ckpt, net = out / "train" / "best.pt", out / "net.net"
    start = time.time()
    run_step("1/5 train a small MS-ResNet on digits-dvs",
             [bin_dir / "snn-train", "--dataset", "digits-dvs", "--out", out / "train"], ckpt, args.force)
    run_step("2/5 export to Loihi fixed point (NetX HDF5), calibrated on digits-dvs",
             [bin_dir / "snn-export", ckpt, "--target", "loihi", "-o", net, "--calibrate", "digits-dvs", "--json"],
             out / "export.json", args.force, stdout_to=out / "export.json")
    run_step("3/5 bit-exact fixed-point simulation of the whole test set",
             [bin_dir / "snn-sim", net, "--dataset", "digits-dvs", "--json"], out / "sim.json", args.force,
             stdout_to=out / "sim.json")
    run_step(f"4/5 run {args.lava_samples} test samples on Lava's fixed-point CPU simulator",
             [bin_dir / "snn-deploy", net, "--dataset", "digits-dvs", "--samples", args.lava_samples, "--json"],
             out / "deploy.json", args.force, stdout_to=out / "deploy.json")
    run_step("5/5 energy report (float model counts, compared with the exported fixed-point network)",
             [bin_dir / "snn-energy", ckpt, "--dataset", "digits-dvs", "--compare-fixed", net, "-o", out / "energy.json",
              "--markdown", out / "energy.md", "--html", out / "energy.html"], out / "energy.json", args.force)
    s = summary(out)
    table = markdown(s)
    write_json(out / "summary.json", s)
    write_text(out / "summary.md", table + "\n")
    print(f"\n== summary ({time.time() - start:.0f} s)\n{table}")
    return 0 if s["lava_identical_every_step"] else 1


if __name__ == "__main__":
    sys.exit(main())
