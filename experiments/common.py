"""What the experiment scripts share: their command line (full CIFAR-10 run or `--reduced` digits-dvs run)."""
import argparse
import os

from snnchip.errors import InputError


def parse_experiment_args(argv, doc: str, out: str, depths_example: str, what: str) -> argparse.Namespace:
    """Parse an experiment's arguments, check the full version has its data, and create `--out`."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--reduced", action="store_true", help="digits-dvs on the CPU in minutes")
    p.add_argument("--data-root", help="CIFAR-10 folder (full version)")
    p.add_argument("--depths", type=lambda s: tuple(int(v) for v in s.split(",")), help=f"e.g. {depths_example}")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=out)
    args = p.parse_args(argv)
    if not args.reduced and not args.data_root:
        raise InputError(f"the full {what} needs --data-root (CIFAR-10); use --reduced for digits-dvs")
    os.makedirs(args.out, exist_ok=True)
    return args
