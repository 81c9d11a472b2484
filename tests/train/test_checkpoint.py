"""Checkpoints round-trip the whole model from the file alone; bad files give one-line errors."""
import pickle

import pytest
import torch

from snnchip.errors import InputError
from snnchip.train.checkpoint import load_model, save_checkpoint
from snnchip.train.models import build_model, model_config


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(model_config("spiking_resnet20", depth=8, T=2, input_size=(8, 8), neuron={"decay": 0.5}))
    model(torch.rand(2, 3, 8, 8, 2))  # move the norms' running statistics away from their defaults
    path = tmp_path / "model.pt"
    save_checkpoint(path, model.eval(), epoch=3, metrics={"test_acc": 0.5})
    return model, path


def test_round_trip_rebuilds_identical_model(saved):
    model, path = saved
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.config.neuron["decay"] == 0.5
    x = (torch.rand(2, 3, 8, 8, 2) > 0.5).float()
    assert torch.equal(loaded(x), model(x))
    assert not list(path.parent.glob("*.tmp")), "atomic write leaves no temp file"


def test_truncated_file(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="trunc.pt: not a readable checkpoint") as err:
        load_model(bad)
    assert "\n" not in str(err.value)


def test_foreign_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(InputError, match="evil.pt"):
        load_model(path)


def test_foreign_torch_file_and_missing_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(InputError, match="not an snnchip checkpoint"):
        load_model(path)
    with pytest.raises(InputError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty.pt"):
        load_model(path)
