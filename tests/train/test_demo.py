"""The demo's summary: the accuracy it shows for the exported checkpoint is that checkpoint's test accuracy."""
import json

from snnchip.demo import markdown, summary
from .test_trainer import DATA, INFO, tiny
from snnchip.train.trainer import Trainer


def test_summary_shows_the_exported_checkpoints_test_accuracy(tmp_path):
    # a real snn-train run folder; the other steps' reports only as the fields the summary reads
    Trainer(tiny(tmp_path, "train", epochs=3), progress=False, datasets=DATA, info=INFO).run()
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    reports = {"export.json": {"float_accuracy": 0.5, "evaluation_samples": 24, "latency": 9},
               "sim.json": {"accuracy": 0.5, "samples": 24},
               "deploy.json": {"accuracy": 0.5, "samples": 2, "prediction_agreement": 1.0, "identical": True,
                               "latency_steps": 9},
               "energy.json": {"totals": {"per_sample": {"firing_rate": 0.1, "synops": 10, "macs": 1},
                                          "energy_pj_per_sample": {}}}}
    for name, report in reports.items():
        (tmp_path / name).write_text(json.dumps(report))
    s = summary(tmp_path)
    assert s["test_accuracy"] == metrics["test_acc"] and s["best_epoch"] == metrics["selected_epoch"]
    assert f"{100 * metrics['test_acc']:.2f} % (24 samples; epoch {metrics['selected_epoch']}" in markdown(s)
