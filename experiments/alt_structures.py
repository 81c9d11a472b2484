"""Alternative structures (seed 000, Table VI): SR-A (MS-ResNet), SR-B and SR-C (Fig. 6) by depth.

Full version: CIFAR-10, depths 32/44/56/110 (6n+2, 16/32/64 channels), Table VIII recipe (SGD lr 0.1,
batch 100, momentum 0.9, weight decay 1e-4, cosine over 100 epochs); needs the data and a GPU. (The paper's
CIFAR-100 half is not run: `snnchip.train.data` has no CIFAR-100 reader.)
`--reduced`: the embedded digits-dvs set on the CPU in minutes (width 16, T=4, 10 epochs, lr 0.5, depths 8 and 14).
Each cell is the test accuracy of the checkpoint selected on the validation split (snn-train's best.pt;
the paper reports the mean test accuracy of the last five epochs).

Writes OUT/alt_structures.json and OUT/alt_structures.md.
"""
import os
import sys

from tqdm import tqdm

from common import parse_experiment_args
from snnchip.cli_util import one_line_errors
from snnchip.fileio import write_json, write_text
from snnchip.train.metrics import markdown_table
from snnchip.train.trainer import TrainConfig, Trainer

COLUMNS = {"SR-A": "ms_resnet20", "SR-B": "sr_b20", "SR-C": "sr_c20"}  # label: model name (depth set per run)
PAPER = {  # Table VI, CIFAR-10 test accuracy in %
    32: {"SR-A": 90.59, "SR-B": 90.04, "SR-C": 89.48},
    44: {"SR-A": 90.96, "SR-B": 90.82, "SR-C": 90.67},
    56: {"SR-A": 91.33, "SR-B": 91.18, "SR-C": 90.78},
    110: {"SR-A": 91.72, "SR-B": 91.65, "SR-C": 92.12},
}
FULL = dict(dataset="cifar10", depths=(32, 44, 56, 110),
            train=dict(epochs=100, batch_size=100, lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="cosine"))
REDUCED = dict(dataset="digits-dvs", depths=(8, 14),
               train=dict(epochs=10, batch_size=32, lr=0.5, momentum=0.9, weight_decay=1e-4, schedule="cosine",
                          width=16, T=4))


def run(args) -> dict:
    setup = REDUCED if args.reduced else FULL
    depths = args.depths or setup["depths"]
    train = dict(setup["train"], **({"epochs": args.epochs} if args.epochs is not None else {}))
    results = {depth: {} for depth in depths}
    runs = [(d, col) for d in depths for col in COLUMNS]
    for depth, col in tqdm(runs, desc="alternative structures", dynamic_ncols=True):
        cfg = TrainConfig(dataset=setup["dataset"], data_root=args.data_root, model=COLUMNS[col], depth=depth,
                          device=args.device, seed=args.seed,
                          out=os.path.join(args.out, "runs", f"{col.lower().replace('-', '_')}_{depth}"), **train)
        summary = Trainer(cfg, progress=False).run()
        results[depth][col] = summary["test_acc"]
        tqdm.write(f"{col} depth {depth:3d}: {100 * results[depth][col]:.1f} %")
    return {"experiment": "alt_structures", "reduced": args.reduced, "dataset": setup["dataset"],
            "depths": list(depths), "train": {k: list(v) if isinstance(v, tuple) else v for k, v in train.items()},
            "accuracy": {str(d): cells for d, cells in results.items()},
            "paper_cifar10": {str(d): cells for d, cells in PAPER.items()},
            "_table": results}


@one_line_errors
def main(argv=None) -> int:
    args = parse_experiment_args(argv, __doc__, "runs/alt_structures", "8,14", "experiment")
    result = run(args)
    table = {f"depth {d}": cells for d, cells in result.pop("_table").items()}
    md = markdown_table(f"Alternative structures on {result['dataset']} (test accuracy %, checkpoint "
                        "selected on validation)", list(COLUMNS), table)
    md += "\n" + markdown_table("Seed 000, Table VI (CIFAR-10, for reference)", list(COLUMNS),
                                {f"depth {d}": c for d, c in PAPER.items()}, fmt=lambda v: f"{v:.2f}")
    write_json(os.path.join(args.out, "alt_structures.json"), result)
    write_text(os.path.join(args.out, "alt_structures.md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
