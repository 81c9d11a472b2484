"""Depth analysis (seed 000, Table II): PlainNet, vanilla spiking ResNet, "W/O LIF" and MS-ResNet by depth.

Full version: CIFAR-10, depths 8-56 (6n+2, 16/32/64 channels), Table VIII recipe (SGD lr 0.1, batch 100,
momentum 0.9, no weight decay, 100 epochs, multistep [40, 60, 80] x 0.2); needs the data and a GPU.
`--reduced`: the embedded digits-dvs set on the CPU in minutes (width 16, T=4, 10 epochs, lr 0.5, depths 8-20).
Each cell is the test accuracy of the checkpoint selected on the validation split (snn-train's best.pt;
the paper reports the mean test accuracy of the last five epochs).

"W/O LIF" (Section II-B): the vanilla ResNet with the LIF between blocks removed and the LIF inside each
residual path kept, i.e. I[l+1] = I[l] + BN(Conv(LIF(BN(Conv(I[l]))))). That is MS-ResNet without the LIF at
the top of each residual path (`lif1`), which is how it is built here.

Writes OUT/depth_analysis.json and OUT/depth_analysis.md.
"""
import os
import sys

from torch import nn
from tqdm import tqdm

from common import parse_experiment_args
from snnchip.cli_util import one_line_errors
from snnchip.fileio import write_json, write_text
from snnchip.train.metrics import markdown_table
from snnchip.train.trainer import TrainConfig, Trainer

ROWS = {  # label: (run folder, model name; the depth is set per run)
    "PlainNet": ("plain", "plain20"), "Vanilla ResNet": ("vanilla", "spiking_resnet20"),
    "W/O LIF": ("without_lif", "ms_resnet20"), "Our work (MS-ResNet)": ("ms_resnet", "ms_resnet20")}
PAPER = {  # Table II, CIFAR-10 test accuracy in %
    "PlainNet": {8: 81.1, 14: 85.2, 20: 83.7, 32: 76.4, 44: 59.5, 56: None},
    "Vanilla ResNet": {8: 81.5, 14: 85.9, 20: 86.7, 32: 85.4, 44: 84.6, 56: 72.4},
    "W/O LIF": {8: 80.0, 14: 86.9, 20: 88.2, 32: 88.8, 44: 89.4, 56: 90.0},
    "Our work (MS-ResNet)": {8: 82.0, 14: 87.4, 20: 88.4, 32: 89.7, 44: 90.0, 56: 90.4},
}
FULL = dict(dataset="cifar10", depths=(8, 14, 20, 32, 44, 56),
            train=dict(epochs=100, batch_size=100, lr=0.1, momentum=0.9, weight_decay=0.0, schedule="multistep",
                       milestones=(40, 60, 80), lr_gamma=0.2))
REDUCED = dict(dataset="digits-dvs", depths=(8, 14, 20),
               train=dict(epochs=10, batch_size=32, lr=0.5, momentum=0.9, weight_decay=0.0, schedule="multistep",
                          milestones=(6, 8), lr_gamma=0.2, width=16, T=4))


def remove_interblock_lif(trainer: Trainer) -> None:
    """Turn the MS-ResNet into the "W/O LIF" net: the convolution at the top of each residual path reads the
    membrane input directly (the LIF there is replaced by the identity)."""
    for stage in trainer.model.stages:
        for block in stage:
            block.lif1 = nn.Identity()


def run(args) -> dict:
    setup = REDUCED if args.reduced else FULL
    depths = args.depths or setup["depths"]
    train = dict(setup["train"], **{k: v for k, v in (("epochs", args.epochs),) if v is not None})
    results = {row: {} for row in ROWS}
    runs = [(row, d) for d in depths for row in ROWS]
    for row, depth in tqdm(runs, desc="depth analysis", dynamic_ncols=True):
        slug, model = ROWS[row]
        cfg = TrainConfig(dataset=setup["dataset"], data_root=args.data_root, model=model, depth=depth,
                          device=args.device, seed=args.seed, out=os.path.join(args.out, "runs", f"{slug}{depth}"),
                          **train)
        trainer = Trainer(cfg, progress=False)
        if row == "W/O LIF":
            remove_interblock_lif(trainer)
        summary = trainer.run()
        results[row][depth] = summary["test_acc"]
        tqdm.write(f"{row:>22} depth {depth:3d}: {100 * results[row][depth]:.1f} %")
    return {"experiment": "depth_analysis", "reduced": args.reduced, "dataset": setup["dataset"],
            "depths": list(depths), "train": {k: list(v) if isinstance(v, tuple) else v for k, v in train.items()},
            "accuracy": {row: {str(d): a for d, a in cells.items()} for row, cells in results.items()},
            "paper_cifar10": {row: {str(d): a for d, a in cells.items()} for row, cells in PAPER.items()},
            "_table": results}


@one_line_errors
def main(argv=None) -> int:
    args = parse_experiment_args(argv, __doc__, "runs/depth_analysis", "8,14,20", "depth analysis")
    result = run(args)
    table = result.pop("_table")
    write_json(os.path.join(args.out, "depth_analysis.json"), result)
    md = markdown_table(f"Depth analysis on {result['dataset']} (test accuracy %, selected on validation)",
                        list(result["depths"]), table)
    md += "\n" + markdown_table("Seed 000, Table II (CIFAR-10, for reference)", [8, 14, 20, 32, 44, 56], PAPER,
                                fmt=lambda v: f"{v:.1f}")
    write_text(os.path.join(args.out, "depth_analysis.md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
