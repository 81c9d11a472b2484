"""snn-train: train a spiking ResNet with surrogate-gradient BPTT.

Examples:
  snn-train --dataset digits-dvs --out runs/digits                  # the embedded data set, default recipe
  snn-train --dataset digits-dvs --model spiking_resnet20 --out runs/vanilla
  snn-train --dataset digits-dvs --init-from runs/digits/best.pt --qat --weight-bits 4 --epochs 3 --lr 0.05 \\
      --qat-freeze 1 --out runs/qat4                                   # quantisation-aware fine-tuning
  snn-train --dataset cifar10 --data-root data/cifar10 --T 1 --out runs/t1 && \\
  snn-train --dataset cifar10 --data-root data/cifar10 --T 6 --init-from runs/t1/best.pt --out runs/t6
  torchrun --nproc_per_node 2 -m snnchip.train.cli --dataset digits-dvs --device cpu --out runs/ddp
"""
import argparse
import dataclasses
import json
import os
import sys

from ..cli_util import one_line_errors
from .surrogate import SURROGATES
from .trainer import RECIPES, SCHEDULES, TrainConfig


def _milestones(text: str) -> tuple:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs such as 40,60,80, got {text!r}")
    if list(values) != sorted(values) or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"milestones must be increasing epochs >= 1, got {text!r}")
    return values


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, except for flags (their default is just 'not given'), unset options (the
    recipe's, said in the epilog) and options whose help already names their default."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="snn-train", description=__doc__.split("\n")[0].split(": ", 1)[1],
        epilog="Unset options take the dataset's recipe (e.g. digits-dvs: " +
               ", ".join(f"{k}={v}" for k, v in RECIPES["digits-dvs"].items()) +
               "); the recipe's depth goes with its model: an explicit --model brings its own depth, and "
               "--depth overrides both. Outputs in --out: metrics.json, last.pt, best.pt.",
        formatter_class=_HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="digits-dvs", choices=sorted(RECIPES))
    d.add_argument("--data-root", help="folder holding the dataset's files (not needed for digits-dvs)")
    d.add_argument("--no-augment", dest="augment", action="store_false", help="no training augmentation")
    d.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    d.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of each class's training samples held out (seeded) to select best.pt on")
    m = p.add_argument_group("model")
    m.add_argument("--model", help="ms_resnet20, spiking_resnet20, plain20, ms_resnet104, ...")
    m.add_argument("--depth", type=int,
                   help="override the model's depth (6n + 2: 8, 14, 20, ... for CIFAR/DVS; 18, 34, 104 ImageNet)")
    m.add_argument("--width", type=int, help="channels of the first stage (later stages scale with it)")
    m.add_argument("--T", type=int, help="time steps (default: the dataset's)")
    m.add_argument("--neuron", choices=("lif", "if", "srif"), help="neuron preset (default: the model's)")
    m.add_argument("--norm", choices=("tdbn", "bn"), help="normalisation (default: the model's)")
    m.add_argument("--dropout", type=float, help="dropout before the FC")
    m.add_argument("--mpr", action="store_true",
                   help="membrane potential rectifier (seed 001) in the surrogate gradient; spikes are unchanged")
    m.add_argument("--surrogate", choices=sorted(SURROGATES), help="surrogate gradient of the spike (default: rect)")
    m.add_argument("--surrogate-width", type=float, help="the surrogate's width a (default: 1)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int)
    o.add_argument("--batch-size", type=int, help="global batch, split across torchrun processes")
    o.add_argument("--lr", type=float)
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--weight-decay", type=float)
    o.add_argument("--schedule", choices=SCHEDULES)
    o.add_argument("--milestones", type=_milestones, default=(), help="multistep epochs, e.g. 40,60,80 (default: none)")
    o.add_argument("--lr-gamma", type=float, default=0.1, help="multistep factor")
    o.add_argument("--label-smoothing", type=float, default=0.0)
    o.add_argument("--amp", action="store_true", help="mixed precision autocast (float16 CUDA, bfloat16 CPU)")
    o.add_argument("--shortcut-bp", choices=("none", "block", "stage"), default="none",
                   help="shortcut back-propagation: training-only side branches from every block or stage")
    o.add_argument("--evolutionary", action="store_true",
                   help="evolutionary schedule lambda(i) = lambda0 (1 - i/I) for the side branches")
    o.add_argument("--shortcut-lambda", type=float,
                   help="lambda0 (default 0.25 with --evolutionary, else 1: the plain sum of eq. 6)")
    q = p.add_argument_group("quantisation-aware training")
    q.add_argument("--qat", action="store_true",
                   help="train what the chip computes: B-bit weight mantissas at snn-export's scales, 12-bit "
                        "decays, integer thresholds (straight-through gradients); snn-export uses the same scales. "
                        "An MS-ResNet's membrane sums then fold their norms with running statistics: fine-tune "
                        "a float run (--init-from)")
    q.add_argument("--weight-bits", type=int, metavar="B", help="--qat weight mantissa bits 2..8 (default 8)")
    q.add_argument("--qat-freeze", type=int, default=0, metavar="N",
                   help="--qat: keep the scales fixed for the last N epochs")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="runs/train", help="output folder")
    r.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                   help="continue an interrupted run, or extend a finished one with a larger --epochs "
                        "(default CKPT: OUT/last.pt)")
    r.add_argument("--init-from", metavar="CKPT",
                   help="start from these weights (same model; T may differ, e.g. T=1 pre-training)")
    r.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def config_from_args(args) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    if args.resume == "":
        values["resume"] = os.path.join(args.out, "last.pt")
    return TrainConfig(**values)


@one_line_errors
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .trainer import train
    summary = train(config_from_args(args), progress=args.progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        json.dump({k: v for k, v in summary.items() if k != "epochs"}, sys.stdout, indent=1)
        print()
    else:
        print(f"best.pt: epoch {summary['selected_epoch']} (validation accuracy {summary['selected_val_acc']:.4f}), "
              f"test accuracy {summary['test_acc']:.4f}; {summary['total_time_s']:.0f} s; "
              f"metrics and checkpoints in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
