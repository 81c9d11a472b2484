"""Per-population spike agreement between a `snn-train --qat` model (torch: the training's own forward) and the
fixed-point network `snn-export` makes of it (the bit-exact simulator that `snn-sim` runs), with both accuracies,
on the first N samples of a dataset's test split.

The fixed network is rebuilt with `export_model` and the options `snn-export --calibrate DATASET` uses (same
options, same network bit for bit); each population's spikes are compared over its own sample window (pipelined
timing shifts a population by its depth).

    .venv/bin/python experiments/qat_agreement.py CKPT [--dataset digits-dvs] [--samples 355]
"""
import argparse

import torch

from snnchip.export.recipe import export_model
from snnchip.loihi import encode_input
from snnchip.sim import Simulator, run_samples
from snnchip.train.checkpoint import load_model
from snnchip.train.data import load_samples

BATCH = 32


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default="digits-dvs")
    p.add_argument("--samples", type=int, default=355)
    args = p.parse_args()
    result = export_model(args.checkpoint, target="loihi", calibrate=args.dataset, eval_samples=0)
    fixed, model = result.graph, load_model(args.checkpoint).double().eval()
    x, y = load_samples(args.dataset, "test", T=int(model.config.T), count=args.samples)
    sim = Simulator(fixed)
    names = [p.name for p in fixed.populations if not p.is_input and p.neuron.threshold is not None]
    agree = {n: 0.0 for n in names}
    right = {"qat model (torch)": 0, "fixed point (sim)": 0}
    same_class = 0
    with torch.no_grad():
        for start in range(0, len(y), BATCH):
            xb, yb = x[start:start + BATCH].double(), torch.as_tensor(y[start:start + BATCH])
            logits, spikes = model.forward_all(xb)
            run = run_samples(sim, encode_input(fixed, xb), record=("spikes",), count=False)
            for n in names:
                got = run.window("spikes", n).to(spikes[n].dtype)
                agree[n] += float((got == spikes[n]).double().mean()) * len(yb)
            pred = run.predict()
            right["qat model (torch)"] += int((logits.argmax(1) == yb).sum())
            right["fixed point (sim)"] += int((pred == yb).sum())
            same_class += int((pred == logits.argmax(1)).sum())
    count = len(y)
    print(f"{args.checkpoint}: {count} '{args.dataset}' test samples, {result.report.weight_bits}-bit weights, "
          f"{result.timing} timing")
    for n in names:
        print(f"  {n:<24} spike agreement qat model vs fixed point {100 * agree[n] / count:7.3f}%")
    for k, v in right.items():
        print(f"  accuracy {k}: {100 * v / count:.2f}%")
    print(f"  class agreement: {100 * same_class / count:.2f}%")


if __name__ == "__main__":
    main()
