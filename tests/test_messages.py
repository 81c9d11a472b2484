"""#15.8: what the console scripts say when a user gets something slightly wrong (one test per message)."""
import pytest
import torch

from snnchip.train.checkpoint import save_checkpoint
from snnchip.train.models import build_model, model_config


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as snn-train leaves it (best.pt of a tiny model)."""
    out = tmp_path / "run"
    save_checkpoint(out / "best.pt", build_model(model_config("ms_resnet8", widths=(2, 2, 2), input_size=(8, 8))))
    return out


def _one_line(capsys, code, expected_code=2):
    err = capsys.readouterr().err
    assert code == expected_code and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_snn_sim_help_lists_every_dataset(capsys):
    from snnchip.sim.cli import main
    from snnchip.train.data import NAMES
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--dataset NAME dataset: " + ", ".join(NAMES) + " " in text


def test_snn_sim_on_a_checkpoint_says_it_is_one(run_folder, capsys):
    from snnchip.sim.cli import main
    err = _one_line(capsys, main([str(run_folder / "best.pt"), "--dataset", "digits-dvs"]))
    assert "is a PyTorch checkpoint" in err and "snn-export" in err and "corrupt" not in err


def test_snn_export_on_a_run_folder_says_it_is_a_folder(run_folder, capsys):
    from snnchip.export.cli import main
    err = _one_line(capsys, main([str(run_folder), "--target", "loihi"]))
    assert f"{run_folder}: is a directory" in err and f"did you mean {run_folder / 'best.pt'}" in err
    assert "does not exist" not in err


def test_snn_energy_on_a_run_folder_says_it_is_a_folder(run_folder, capsys):
    from snnchip.energy.cli import main
    err = _one_line(capsys, main([str(run_folder), "--dataset", "digits-dvs"]))
    assert f"{run_folder}: is a directory" in err and "does not exist" not in err


@pytest.mark.parametrize("device", ["foo", "tpu"])
def test_snn_train_unknown_device_is_one_line(tmp_path, capsys, device):
    from snnchip.train.cli import main
    err = _one_line(capsys, main(["--device", device, "--out", str(tmp_path)]))
    assert f"--device {device}: not a torch device" in err


def test_snn_deploy_loihi2_says_lava_loihi_is_missing_before_reading_anything(tmp_path, capsys):
    from snnchip.deploy.cli import main
    from snnchip.deploy.hardware import loihi2_available
    if loihi2_available():
        pytest.skip("lava-loihi is installed here")
    # neither the network nor the data set exists: the first thing said is what --run loihi2 lacks
    err = _one_line(capsys, main([str(tmp_path / "missing.net"), "--dataset", "digits-dvs",
                                  "--data-root", str(tmp_path / "nothing"), "--run", "loihi2"]))
    assert "lava-loihi" in err and "missing.net" not in err


@pytest.mark.parametrize("value,text", [(999, "999"), (999.6, "1 k"), (999999, "1 M"), (1234567, "1.23 M"),
                                        (999999999, "1 G")])
def test_energy_markdown_numbers_never_read_1e_03_k(value, text):
    from snnchip.energy.report import energy, si
    assert si(value) == text
    assert energy(999999.99) == "1 µJ" and energy(999.99999) == "1 nJ"


def test_html_layer_labels_do_not_overlap_on_65_projections():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snnchip.energy.report import label_layers, layer_axis_width
    names = [f"stages.{s}.{b}.conv{c}" for s in range(3) for b in range(11) for c in (1, 2)][:64] + ["head.fc"]
    fig, ax = plt.subplots(figsize=(layer_axis_width(len(names)), 4))
    ax.bar(range(len(names)), [1] * len(names))
    label_layers(ax, names)
    fig.tight_layout()
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    plt.close(fig)
    assert len(boxes) == 65
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:])), "neighbouring x labels overlap"
