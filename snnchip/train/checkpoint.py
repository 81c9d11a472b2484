"""Checkpoints: the model's configuration and weights (plus training state), written atomically and read with
`torch.load(weights_only=True)`, so nothing but tensors and plain types is ever unpickled."""
from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..fileio import atomic_path
from .models import ModelConfig, SpikingResNet, build_model

FORMAT = "snnchip-checkpoint"
VERSION = 1


def _plain(value: Any) -> Any:
    """Tuples -> lists so the checkpoint holds only types weights_only loading accepts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def plain_config(config: ModelConfig) -> dict:
    """The model configuration as plain JSON-ready values (the inverse of `config_from_dict`)."""
    return _plain(dataclasses.asdict(config))


def save_checkpoint(path, model: SpikingResNet, **extra) -> None:
    """Write `{'format', 'version', 'config', 'state_dict', **extra}` atomically (temp file + rename).
    Side branches (training only) are left out of `state_dict`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("side_branches.")}
    payload = {"format": FORMAT, "version": VERSION, "config": plain_config(model.config),
               "state_dict": state, **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path) -> dict:
    """The checkpoint dict; one-line InputError for a missing, truncated, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable checkpoint (corrupt or truncated: {first[:120]})") from None
    except Exception as exc:  # weights_only refuses foreign pickles with UnpicklingError
        raise InputError(f"{path}: refused to load ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an snnchip checkpoint (no '{FORMAT}' format tag)")
    if payload.get("version") != VERSION:
        raise InputError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    return payload


def config_from_dict(data: dict, where: str = "checkpoint") -> ModelConfig:
    if not isinstance(data, dict):
        raise InputError(f"{where}: the model configuration is a {type(data).__name__}, not a dict")
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown model configuration field(s) {unknown}")
    try:
        return ModelConfig(**data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: invalid model configuration ({exc})") from None


def load_model(path) -> SpikingResNet:
    """Rebuild the model from a checkpoint (eval mode, CPU, without side branches). A model trained with `--qat`
    computes with the chip's weights and decays again, at the recorded bit width and scales (`model.qat`)."""
    payload = load_checkpoint(path)
    config = config_from_dict(payload.get("config"), str(path))
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: 'state_dict' is not a dict of tensors")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InputError(f"{path}: state_dict '{key}' holds non-finite values (NaN or inf)")
    try:
        model = build_model(config)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: the stored configuration does not build a model "
                         f"({str(exc).strip().splitlines()[0][:120]})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not match the stored configuration "
                        f"({str(exc).strip().splitlines()[0][:120]})") from None
    if payload.get("qat"):
        from .qat import attach_qat
        qat = payload["qat"]
        try:
            attach_qat(model, qat["weight_bits"], qat["scales"]).frozen = True
        except (KeyError, TypeError) as exc:
            raise InputError(f"{path}: unreadable quantisation-aware training record ({exc})") from None
    return model.eval()
