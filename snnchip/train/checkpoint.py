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


def check_tensors(value: Any, where: str) -> None:
    """Every floating-point tensor in `value` (nested dicts / lists) is finite; InputError naming the first
    bad entry as `where.key.key` otherwise."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise InputError(f"{where}: {bad} of {value.numel()} values are not finite (NaN or inf)")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_tensors(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_tensors(v, f"{where}[{i}]")


def check_state_dict(state: Any, where: str) -> None:
    """`state` is a {name: tensor} dict of finite values (InputError naming `where` and the entry)."""
    if not isinstance(state, dict):
        raise InputError(f"{where} must be a dict of tensors, got {type(state).__name__}")
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise InputError(f"{where}: entry {k!r} is a {type(v).__name__}, not a tensor")
    check_tensors(state, where)


def check_epoch(value: Any, where: str) -> int:
    """A checkpoint's epoch count: an integer >= 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"{where} must be an integer >= 0, got {value!r}")
    return value


def load_weights(model: SpikingResNet, state: dict, where: str) -> None:
    """Load a checked `state` into `model` (strict: same names and shapes), InputError naming `where`."""
    check_state_dict(state, where)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{where}: does not match the stored configuration "
                        f"({' '.join(str(exc).split())[:200]})") from None


def config_from_dict(data: dict, where: str = "checkpoint: config") -> ModelConfig:
    """The ModelConfig of a checkpoint's `config` field; InputError naming `where` and the field."""
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a dict of the model configuration, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {unknown}")
    try:
        return ModelConfig(**data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: invalid model configuration ({exc})") from None


def load_model(path) -> SpikingResNet:
    """Rebuild the model from a checkpoint (eval mode, CPU, without side branches). A model trained with `--qat`
    computes with the chip's weights and decays again, at the recorded bit width and scales (`model.qat`)."""
    payload = load_checkpoint(path)
    config = config_from_dict(payload.get("config"), f"{path}: config")
    try:
        model = build_model(config)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: the stored configuration does not build a model "
                         f"({str(exc).strip().splitlines()[0][:120]})") from None
    load_weights(model, payload.get("state_dict"), f"{path}: state_dict")
    if "epoch" in payload:
        check_epoch(payload["epoch"], f"{path}: epoch")
    if payload.get("qat"):
        from .qat import attach_qat
        qat = payload["qat"]
        try:
            attach_qat(model, qat["weight_bits"], qat["scales"]).frozen = True
        except (KeyError, TypeError) as exc:
            raise InputError(f"{path}: unreadable quantisation-aware training record ({exc})") from None
    return model.eval()
