"""Surrogate-gradient BPTT training of the seed models: SGD with momentum, cosine / multistep schedules,
label smoothing, shortcut back-propagation, AMP, DDP, atomic checkpoints and exact resumption.

Model selection never sees the test split: `val_fraction` of the training files (per class, seeded:
`data.split`) is held out as a validation split, evaluated after every epoch; `best.pt` is the epoch of highest
validation accuracy, and the test split is evaluated once, at the end, for that checkpoint (`test_acc`).

Outputs in `out/`: `metrics.json` (rewritten atomically after every epoch), `last.pt` (every epoch: inference
weights + the training state needed by `--resume`), `best.pt` (highest validation accuracy). Both checkpoints are
`snnchip.train.checkpoint` files: `load_model(path)` rebuilds the network without side branches.
"""
import contextlib
import dataclasses
import fcntl
import glob
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from .. import loihi
from ..errors import InputError
from . import distributed as dist_util
from . import side_branches as sb
from ..fileio import TEMP_SUFFIX, write_json
from .data.augment import EpochSeeded
from .data.split import dataset_labels, validation_split
from .metrics import Average, FiringRates, correct_count
from .qat import STAT_EVERY

# Per-dataset defaults for every field left as None. digits-dvs: a narrow MS-ResNet8 that reaches >= 95 % test
# accuracy within minutes on two CPU cores (lr 0.5: at 0.1 the loss barely moves in 20 epochs); the others
# follow seed 000 (Tables VIII, X) and seed 001.
RECIPES = {
    "digits-dvs": dict(model="ms_resnet20", depth=8, width=16, epochs=20, batch_size=32, lr=0.5,
                       weight_decay=1e-4, schedule="cosine"),
    "cifar10": dict(model="ms_resnet20", epochs=200, batch_size=100, lr=0.1, weight_decay=1e-4,
                    schedule="cosine"),
    "cifar10-dvs": dict(model="ms_resnet20_dvs", epochs=200, batch_size=32, lr=0.1, weight_decay=1e-4,
                        schedule="cosine"),
    "nmnist": dict(model="ms_resnet20", epochs=100, batch_size=32, lr=0.1, weight_decay=1e-4,
                   schedule="cosine"),
    "dvs-gesture": dict(model="ms_resnet20", epochs=200, batch_size=16, lr=0.1, weight_decay=1e-4,
                        schedule="cosine"),
}
SCHEDULES = ("cosine", "multistep")
# Beyond these a run diverges at once (the recipes use lr <= 0.5 and lambda0 <= 1): refused as typing errors.
MAX_LR = 100.0
MAX_SHORTCUT_LAMBDA = 100.0
# Fields that may differ between an interrupted run and its `--resume` (they do not change the result).
# `epochs` may grow: `--resume` with a larger --epochs extends a run (see `learning_rate`).
_TRAIN_STATE = ("optimizer", "scaler", "rng", "side_branches", "best_acc", "best_state", "history")
_RESUME_FREE = ("out", "resume", "device", "workers", "data_root", "epochs")


@dataclass
class TrainConfig:
    """Everything that defines a training run; `None` fields take the dataset's recipe (`RECIPES`)."""
    dataset: str = "digits-dvs"
    data_root: Optional[str] = None
    model: Optional[str] = None
    depth: Optional[int] = None
    width: Optional[int] = None        # channels of the first stage; later stages scale with it
    T: Optional[int] = None            # time steps (None: the dataset's default)
    neuron: Optional[str] = None       # 'lif' | 'if' | 'srif' (None: the model's own, LIF for MS-ResNet)
    mpr: bool = False                  # seed 001's membrane potential rectifier in the surrogate gradient
    surrogate: Optional[str] = None    # surrogate.SURROGATES name (None: the neuron's, 'rect')
    surrogate_width: Optional[float] = None  # its width a (None: the neuron's, 1.0)
    norm: Optional[str] = None         # 'tdbn' | 'bn'
    epochs: Optional[int] = None
    batch_size: Optional[int] = None   # global batch, split evenly across processes
    lr: Optional[float] = None
    momentum: float = 0.9
    weight_decay: Optional[float] = None
    schedule: Optional[str] = None     # 'cosine' | 'multistep' (set once per epoch: `learning_rate`)
    milestones: tuple = ()             # epochs at which multistep multiplies the lr by lr_gamma
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    dropout: Optional[float] = None    # before the FC
    augment: bool = True               # the dataset's training augmentation (flip, roll)
    val_fraction: float = 0.1          # of each class's training samples, held out for model selection
    amp: bool = False
    device: str = "auto"
    seed: int = 0
    out: str = "runs/train"
    resume: Optional[str] = None       # checkpoint to continue from (normally out/last.pt)
    init_from: Optional[str] = None    # checkpoint whose weights start this run (e.g. T=1 pre-training)
    shortcut_bp: str = "none"          # 'none' | 'block' | 'stage'
    evolutionary: bool = False
    shortcut_lambda: Optional[float] = None  # lambda0; None: 0.25 evolutionary (eq. 10), 1 otherwise (eq. 6)
    workers: int = 0
    qat: bool = False                  # quantisation-aware training: the forward uses the chip's weights (qat.py)
    weight_bits: Optional[int] = None  # --qat weight mantissa bits (None: 8)
    qat_freeze: int = 0                # --qat: the last epochs that keep the scales fixed


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill the `None` fields from the dataset's recipe and check the values; raises InputError."""
    if cfg.dataset not in RECIPES:
        raise InputError(f"--dataset {cfg.dataset!r}: unknown, choose one of {', '.join(RECIPES)}")
    filled = {k: v for k, v in RECIPES[cfg.dataset].items() if getattr(cfg, k) is None}
    if cfg.model is not None:     # an explicit --model brings its own depth (ms_resnet56: 56), not the recipe's
        filled.pop("depth", None)
    cfg = dataclasses.replace(cfg, **filled)
    if cfg.shortcut_lambda is None:
        cfg = dataclasses.replace(cfg, shortcut_lambda=sb.EVOLUTIONARY_LAMBDA0 if cfg.evolutionary else 1.0)
    cfg = dataclasses.replace(cfg, milestones=tuple(int(m) for m in cfg.milestones))
    for name in ("lr", "momentum", "weight_decay", "lr_gamma", "label_smoothing", "dropout", "shortcut_lambda",
                 "surrogate_width", "val_fraction"):
        value = getattr(cfg, name)
        if value is not None and not math.isfinite(value):
            raise InputError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    checks = [
        (cfg.epochs >= 1, f"--epochs must be >= 1, got {cfg.epochs}"),
        (cfg.batch_size >= 1, f"--batch-size must be >= 1, got {cfg.batch_size}"),
        (0 < cfg.lr <= MAX_LR, f"--lr must be in (0, {MAX_LR:g}], got {cfg.lr:g}"),
        (cfg.surrogate_width is None or cfg.surrogate_width > 0,
         f"--surrogate-width must be > 0, got {cfg.surrogate_width}"),
        (0 <= cfg.momentum < 1, f"--momentum must be in [0, 1), got {cfg.momentum}"),
        (0 <= cfg.weight_decay < 1, f"--weight-decay must be in [0, 1), got {cfg.weight_decay:g}"),
        (cfg.lr_gamma > 0, f"--lr-gamma must be > 0, got {cfg.lr_gamma:g}"),
        (0 <= cfg.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}"),
        (cfg.dropout is None or 0 <= cfg.dropout < 1, f"--dropout must be in [0, 1), got {cfg.dropout}"),
        (cfg.T is None or cfg.T >= 1, f"--T must be >= 1, got {cfg.T}"),
        (cfg.width is None or cfg.width >= 1, f"--width must be >= 1, got {cfg.width}"),
        (cfg.schedule in SCHEDULES, f"--schedule must be one of {SCHEDULES}, got {cfg.schedule!r}"),
        (cfg.schedule != "multistep" or cfg.milestones, "--schedule multistep needs --milestones"),
        (cfg.shortcut_bp in sb.MODES, f"--shortcut-bp must be one of {sb.MODES}, got {cfg.shortcut_bp!r}"),
        (not cfg.evolutionary or cfg.shortcut_bp != "none", "--evolutionary needs --shortcut-bp block|stage"),
        (0 <= cfg.shortcut_lambda <= MAX_SHORTCUT_LAMBDA,
         f"--shortcut-lambda must be in [0, {MAX_SHORTCUT_LAMBDA:g}], got {cfg.shortcut_lambda:g}"),
        (cfg.workers >= 0, f"--workers must be >= 0, got {cfg.workers}"),
        (0 < cfg.val_fraction < 1, f"--val-fraction must be in (0, 1), got {cfg.val_fraction}"),
        (cfg.qat or (cfg.weight_bits is None and not cfg.qat_freeze), "--weight-bits and --qat-freeze need --qat "
                                                                       "(snn-export --weight-bits quantises after "
                                                                       "training)"),
        (0 <= cfg.qat_freeze <= cfg.epochs, f"--qat-freeze must be in 0..{cfg.epochs} epochs, got {cfg.qat_freeze}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    if cfg.weight_bits is not None:
        loihi.check_weight_bits(cfg.weight_bits)
    return cfg


LOCK_NAME = ".snn-train.lock"


@contextlib.contextmanager
def run_lock(out: str, is_main: bool = True):
    """Hold `out/.snn-train.lock` while a run uses `out`: another run on the same folder is refused in one line.
    The lock is an flock, which the kernel releases when its process ends, so a killed run leaves no stale
    lock (the file stays, naming the last holder's pid). Temporary files that a killed write left in `out` are
    removed once the lock is held. Non-main processes of a torchrun job take no lock."""
    if not is_main:
        yield
        return
    path = os.path.join(out, LOCK_NAME)
    try:
        os.makedirs(out, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot use it ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise InputError(f"--out {out}: in use by another snn-train (pid {holder}, lock {path}); wait for it "
                         f"to end or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for stale in glob.glob(os.path.join(glob.escape(out), f".*{TEMP_SUFFIX}")):
            os.unlink(stale)
        yield
    finally:
        os.close(fd)


def model_config_for(cfg: TrainConfig, info):
    """The ModelConfig of `cfg.model` with the dataset's shapes and the command line's overrides."""
    from .models import model_config
    from .neurons import neuron_config

    overrides = dict(in_channels=info.in_channels, num_classes=info.num_classes,
                     input_size=tuple(info.input_size), T=cfg.T if cfg.T is not None else info.T)
    if cfg.depth is not None:
        overrides["depth"] = cfg.depth
    if cfg.neuron is not None:
        try:
            overrides["neuron"] = dataclasses.asdict(neuron_config(cfg.neuron))
        except (KeyError, ValueError) as exc:
            raise InputError(f"--neuron {cfg.neuron!r}: {exc}") from None
    if cfg.norm is not None:
        overrides["norm"] = cfg.norm
    if cfg.dropout is not None:
        overrides["dropout"] = cfg.dropout
    try:
        config = model_config(cfg.model, **overrides)
        if cfg.width is not None:
            base = config.widths[0]
            config = dataclasses.replace(config, widths=tuple(max(1, round(w * cfg.width / base))
                                                              for w in config.widths))
    except (KeyError, ValueError, TypeError) as exc:
        depth = f" --depth {cfg.depth}" if cfg.depth is not None else ""
        raise InputError(f"--model {cfg.model!r}{depth}: {exc}") from None
    gradient = {k: v for k, v in (("mpr", cfg.mpr or None), ("surrogate", cfg.surrogate),
                                  ("surrogate_width", cfg.surrogate_width)) if v is not None}
    if gradient:
        from .neurons import NeuronConfig
        try:
            neuron = NeuronConfig(**{**config.neuron, **gradient})
        except InputError as exc:
            raise InputError(f"--{' --'.join(k.replace('_', '-') for k in gradient)}: {exc}") from None
        config = dataclasses.replace(config, neuron=dataclasses.asdict(neuron))
    return config


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of 0-based `epoch`: cosine lr (1 + cos(pi epoch / epochs)) / 2, or multistep
    lr * lr_gamma^(number of milestones <= epoch). A function of the epoch and the run's length only, so a run
    that `--resume` extends to more epochs follows the schedule of its new length from where it stopped (for
    multistep exactly the run planned with that length; for cosine the remaining epochs anneal over the new
    length)."""
    if cfg.schedule == "cosine":
        return cfg.lr * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
    return cfg.lr * cfg.lr_gamma ** sum(epoch >= m for m in cfg.milestones)


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state(loader_generator) -> dict:
    """Every random state that the next epoch consumes, as tensors and plain types (weights_only-loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
        "loader": loader_generator.get_state() if loader_generator is not None else None,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict, loader_generator) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if loader_generator is not None and state["loader"] is not None:
        loader_generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _forward_all(model, x):
    """(logits [N, classes], {layer name: spikes [N, ..., T]}) from `model.forward_all`."""
    out = model.forward_all(x)
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        return out
    raise TypeError("model.forward_all must return (logits, {name: spikes})")


class _TrainNet(nn.Module):
    """The model plus its side branches as one module, so DDP sees every trained parameter in one forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        branches = self.model.side_branches
        return logits, (branches.pop_logits() if branches is not None else [])


class Trainer:
    """One training run. `datasets` (train, test) and `info` may be given to bypass `load_dataset`; the
    validation split is held out of `datasets[0]` as of the dataset's own training files."""

    def __init__(self, cfg: TrainConfig, dist: Optional[dist_util.DistInfo] = None, progress: bool = True,
                 datasets=None, info=None):
        self.cfg = cfg = resolve(cfg)
        if dist is None:
            try:
                dist = dist_util.DistInfo(device=dist_util.resolve_device(cfg.device))
            except ValueError as exc:
                raise InputError(str(exc)) from None
        self.dist = dist
        self.device = self.dist.device
        self.progress = progress and self.dist.is_main
        if cfg.batch_size % self.dist.world_size:
            raise InputError(f"--batch-size {cfg.batch_size} does not split evenly over "
                            f"{self.dist.world_size} processes")
        if cfg.amp and self.device.type == "cpu" and progress and self.dist.is_main:
            print("note: --amp on the CPU uses bfloat16 autocast")
        _set_seed(cfg.seed)
        if info is None:
            from .data import dataset_info
            info = dataset_info(cfg.dataset)
        self.model_config = model_config_for(cfg, info)      # a bad --model / --depth before any data is read
        self.info, train_files, self.test_set = self._data(datasets, info)
        train_idx, val_idx = validation_split(dataset_labels(train_files), cfg.val_fraction)
        self.train_set, self.val_set = Subset(train_files, train_idx), Subset(train_files, val_idx)
        if cfg.augment and datasets is None:
            from .data import augmentation
            aug = augmentation(cfg.dataset)
            if aug is not None:
                self.train_set = EpochSeeded(self.train_set, aug, cfg.seed)
        from .models import build_model
        self.model = build_model(self.model_config).to(self.device)
        if cfg.init_from:
            self._init_from(cfg.init_from)
        from .qat import attach_qat
        self.qat = attach_qat(self.model, cfg.weight_bits or loihi.MANT_BITS) if cfg.qat else None
        sb.attach_side_branches(self.model, cfg.shortcut_bp, self.info.num_classes)
        if self.model.side_branches is not None:
            self.model.side_branches.to(self.device)
        self.net = _TrainNet(self.model)
        if self.dist.distributed:
            dist_util.sync_norms(self.model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids, forward_sync_buffers=False)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp and self.device.type == "cuda")
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.train_loader, self.loader_generator = self._train_loader()
        self.val_loader = self._eval_loader(self.val_set)
        self.test_loader = self._eval_loader(self.test_set)
        self.epoch = 0
        self.best_acc = -1.0
        self.best_state = None      # the weights of best.pt (CPU tensors), for the final test evaluation
        self.best_qat = None        # and, with --qat, its QAT record (Qat.state())
        self.history = []
        self.test = None            # the selected checkpoint's test metrics, once all epochs are done
        self.resumed = False
        if cfg.resume:
            self._resume(cfg.resume)

    # -- data ---------------------------------------------------------------------------------------------
    def _data(self, datasets, info):
        """(info, training files, test split), without augmentation (the trainer adds it: `EpochSeeded`)."""
        if datasets is not None:
            return info, datasets[0], datasets[1]
        from .data import load_dataset
        cfg = self.cfg
        try:
            train = load_dataset(cfg.dataset, "train", root=cfg.data_root, T=cfg.T, augment=False)
            test = load_dataset(cfg.dataset, "test", root=cfg.data_root, T=cfg.T, augment=False)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise InputError(f"--dataset {cfg.dataset}: {exc}") from None
        return info, train, test

    def _train_loader(self):
        per_process = self.cfg.batch_size // self.dist.world_size
        pin = self.device.type == "cuda"
        if self.dist.distributed:
            sampler = DistributedSampler(self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                         shuffle=True, seed=self.cfg.seed)
            generator = None
        else:
            generator = torch.Generator().manual_seed(self.cfg.seed)
            sampler = RandomSampler(self.train_set, generator=generator)
        loader = DataLoader(self.train_set, batch_size=per_process, sampler=sampler,
                            num_workers=self.cfg.workers, pin_memory=pin)
        return loader, generator

    def _eval_loader(self, dataset):
        # Each process evaluates every world_size-th sample; counts are summed, so nothing is seen twice.
        if self.dist.distributed:
            dataset = Subset(dataset, range(self.dist.rank, len(dataset), self.dist.world_size))
        return DataLoader(dataset, batch_size=max(1, self.cfg.batch_size // self.dist.world_size),
                          shuffle=False, num_workers=self.cfg.workers, pin_memory=self.device.type == "cuda")

    # -- checkpoints --------------------------------------------------------------------------------------
    def _init_from(self, path):
        """Start from another run's weights; only T (and dropout) may differ, e.g. T=1 pre-training."""
        from .checkpoint import load_model
        source = load_model(path)
        theirs = _checkpoint_config(path)
        ours = dataclasses.asdict(self.model_config)
        differing = [k for k in ours if k not in ("T", "dropout") and _plain(ours[k]) != _plain(theirs.get(k))]
        if differing:
            k = differing[0]
            raise InputError(f"--init-from {path}: its model differs in {k} ({theirs.get(k)!r} there, "
                            f"{ours[k]!r} here); only T and dropout may change")
        state = {k: v for k, v in source.state_dict().items() if not k.startswith("side_branches.")}
        self.model.load_state_dict(state)

    def _save(self, name: str, metrics: dict, train_state: Optional[dict] = None, model=None,
              epoch: Optional[int] = None, qat: Optional[dict] = None):
        from .checkpoint import save_checkpoint
        model = self.model if model is None else model
        extra = dict(epoch=self.epoch if epoch is None else epoch, metrics=metrics,
                     train_config=_plain(dataclasses.asdict(self.cfg)))
        if self.qat is not None:
            extra["qat"] = self.qat.state() if qat is None else qat
        if train_state is not None:
            extra["train_state"] = train_state
        with sb.detached(model):
            save_checkpoint(os.path.join(self.cfg.out, name), model, **extra)

    def _train_state(self) -> dict:
        branches = self.model.side_branches
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.loader_generator),
            "side_branches": branches.state_dict() if branches is not None else None,
            "best_acc": self.best_acc,
            "best_state": self.best_state,
            "best_qat": self.best_qat,
            "history": self.history,
        }

    def _resume(self, path):
        """Restore the state of `path` (a last.pt), each part checked: one-line InputError naming the file and
        the field for anything missing, of the wrong kind or shape, non-finite, or out of range."""
        from .checkpoint import (check_epoch, check_state_dict, check_tensors, config_from_dict, load_checkpoint,
                                 load_weights)
        ckpt = load_checkpoint(path)
        state, config = ckpt.get("train_state"), ckpt.get("train_config")
        if not isinstance(state, dict) or not isinstance(config, dict):
            raise InputError(f"--resume {path}: not a last.pt of snn-train (no training state)")
        ours = _plain(dataclasses.asdict(self.cfg))
        for k, theirs in config.items():
            if k not in _RESUME_FREE and ours.get(k) != theirs:
                raise InputError(f"--resume {path}: the run used {k}={theirs!r}, this command {k}={ours.get(k)!r}")
        stored = _plain(dataclasses.asdict(config_from_dict(ckpt.get("config"), f"--resume {path}: config")))
        differing = [k for k, v in _plain(dataclasses.asdict(self.model_config)).items() if stored[k] != v]
        if differing:
            raise InputError(f"--resume {path}: config.{differing[0]} is {stored[differing[0]]!r}, but this run's "
                             f"model has {getattr(self.model_config, differing[0])!r}")
        missing = [k for k in _TRAIN_STATE if k not in state]
        if missing:
            raise InputError(f"--resume {path}: train_state has no {', '.join(missing)}")
        epoch = check_epoch(ckpt.get("epoch"), f"--resume {path}: epoch")
        history = state["history"]
        if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
            raise InputError(f"--resume {path}: train_state.history must list one record per epoch done ({epoch})")
        if epoch > self.cfg.epochs:
            raise InputError(f"--resume {path}: the run has done {epoch} epochs; --epochs {self.cfg.epochs} "
                             f"cannot shorten it (a larger --epochs extends it)")
        best_acc = state["best_acc"]
        if not isinstance(best_acc, float) or not (best_acc == -1.0 or 0 <= best_acc <= 1):
            raise InputError(f"--resume {path}: train_state.best_acc must be an accuracy in [0, 1], got {best_acc!r}")
        with sb.detached(self.model):
            load_weights(self.model, ckpt.get("state_dict"), f"--resume {path}: state_dict")
        if self.qat is not None and not isinstance(state.get("best_qat"), dict):
            raise InputError(f"--resume {path}: train_state has no best_qat (the QAT scales of best.pt)")
        if epoch:
            self._rebuild(state["best_state"], f"--resume {path}: train_state.best_state", state.get("best_qat"))
        parts = [("side_branches", lambda v: self.model.side_branches.load_state_dict(v)
                  if self.model.side_branches is not None else None),
                 ("optimizer", self._load_optimizer), ("scaler", self.scaler.load_state_dict),
                 ("rng", lambda v: _restore_rng(v, self.loader_generator))]
        if self.qat is not None:
            parts += [("qat", self.qat.load_state)]
            state = {**state, "qat": ckpt.get("qat")}
        for name, restore in parts:
            if name == "side_branches" and self.model.side_branches is not None:
                check_state_dict(state[name], f"--resume {path}: train_state.{name}")
            check_tensors(state[name], f"--resume {path}: train_state.{name}")
            try:
                restore(state[name])
            except (TypeError, ValueError, RuntimeError, KeyError, IndexError, AttributeError) as exc:
                raise InputError(f"--resume {path}: train_state.{name} is invalid "
                                 f"({' '.join(str(exc).split())[:160] or type(exc).__name__})") from None
        self.best_acc = best_acc
        self.best_state, self.best_qat = state["best_state"], state.get("best_qat")
        self.history = list(history)
        self.epoch = epoch
        self.resumed = True

    def _load_optimizer(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                buf = self.optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None and buf.shape != p.shape:
                    raise ValueError(f"a momentum buffer of shape {tuple(buf.shape)} for a parameter of shape "
                                     f"{tuple(p.shape)}")

    def _recreate_best(self) -> None:
        """Rewrite best.pt from last.pt's copy of its weights: a kill while best.pt was written, or between
        best.pt and last.pt, leaves best.pt of another epoch than the one last.pt selected."""
        record = max(self.history, key=lambda r: r["val_acc"])
        self._save("best.pt", record, model=self._rebuild(self.best_state, qat=self.best_qat),
                   epoch=record["epoch"], qat=self.best_qat)

    def _rebuild(self, state: dict, where: Optional[str] = None, qat: Optional[dict] = None):
        """A new model of this run's configuration holding `state` (checked, naming `where`, if given), computing
        with the QAT scales of `qat` (a `Qat.state()`; frozen) in a QAT run; built without touching the random
        generators that the run's next epoch draws from."""
        from .checkpoint import load_weights
        from .models import build_model
        from .qat import attach_qat
        with torch.random.fork_rng(devices=[]):
            model = build_model(self.model_config)
        if where is None:
            model.load_state_dict(state)
        else:
            load_weights(model, state, where)
        if self.qat is not None and qat is not None:
            try:
                attach_qat(model, qat["weight_bits"], qat["scales"]).frozen = True
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{where or 'best.pt'}: unreadable QAT record ({exc})") from None
        return model

    # -- the loop -----------------------------------------------------------------------------------------
    def _autocast(self):
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.cfg.amp)

    def train_epoch(self) -> dict:
        from tqdm import tqdm
        cfg = self.cfg
        self.net.train()
        if isinstance(self.train_loader.sampler, DistributedSampler):
            self.train_loader.sampler.set_epoch(self.epoch)
        if isinstance(self.train_set, EpochSeeded):
            self.train_set.epoch = self.epoch
        steps = len(self.train_loader)
        total_steps = steps * cfg.epochs
        loss_avg, correct, seen = Average(), 0, 0
        lam = None
        if self.qat is not None:
            self.qat.frozen = self.epoch >= cfg.epochs - cfg.qat_freeze
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not self.progress, dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            x = x.to(self.device, non_blocking=True)
            y = torch.as_tensor(y).to(self.device, non_blocking=True)
            if self.qat is not None and i % STAT_EVERY == 0:
                self.qat.observe(x)
            lam = sb.balance_coefficient(self.epoch * steps + i, total_steps, cfg.shortcut_lambda,
                                         cfg.evolutionary)
            with self._autocast():
                logits, side = self.net(x)
                loss = self.criterion(sb.combine(logits, side, lam).float(), y)
            self._check_finite(loss, i)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_avg.update(loss.item(), len(y))
            correct += correct_count(logits.detach(), y)
            seen += len(y)
            bar.set_postfix(loss=f"{loss_avg.value:.3f}", acc=f"{correct / seen:.3f}")
        self._check_finite(None, steps - 1)
        totals = dist_util.all_reduce_sum(torch.tensor([loss_avg.total, correct, seen], dtype=torch.float64))
        out = {"train_loss": float(totals[0] / totals[2]), "train_acc": float(totals[1] / totals[2])}
        if cfg.shortcut_bp != "none":
            out["shortcut_lambda_last"] = lam
        if self.qat is not None:
            out["qat_rescaled"] = self.qat.settle()      # the saved scales must fit the saved weights
        return out

    def _check_finite(self, loss, step: int) -> None:
        """Stop at the first non-finite training loss (or, with `loss` None, non-finite weights after the
        epoch's last step), on every process at once; last.pt keeps the last good epoch."""
        if loss is not None:
            bad = not bool(torch.isfinite(loss.detach()))
        else:
            bad = not all(bool(torch.isfinite(p.detach()).all()) for p in self.net.parameters())
        if self.dist.distributed:
            bad = bool(dist_util.all_reduce_sum(torch.tensor([float(bad)], device=self.device)).item())
        if bad:
            what = (f"the training loss is {float(loss.detach()):g}" if loss is not None
                    else "the weights are not finite")
            kept = (f"{os.path.join(self.cfg.out, 'last.pt')} holds epoch {self.epoch}" if self.epoch
                    else "no epoch was completed")
            raise InputError(f"epoch {self.epoch + 1}, step {step + 1}: {what}; training stopped (try a smaller "
                             f"--lr); {kept}")

    @torch.no_grad()
    def evaluate(self, loader, split: str, model=None) -> dict:
        """`{split}_loss`, `{split}_acc` and per-layer firing rates of the inference model (no side branches;
        default: the one being trained) on `loader`."""
        model = self.model if model is None else model
        model.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        rates = FiringRates()
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            y = torch.as_tensor(y).to(self.device, non_blocking=True)
            with self._autocast():
                logits, spikes = _forward_all(model, x)
            loss_sum += float(nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
            correct += correct_count(logits, y)
            seen += len(y)
            rates.update(spikes)
        totals = dist_util.all_reduce_sum(torch.tensor([loss_sum, correct, seen], dtype=torch.float64))
        if rates.spikes:
            rates.load_tensor(dist_util.all_reduce_sum(rates.as_tensor()))
        return {f"{split}_loss": float(totals[0] / totals[2]), f"{split}_acc": float(totals[1] / totals[2]),
                "firing_rate": rates.mean_rate(), "firing_rates": rates.rates()}

    def test_selected(self) -> dict:
        """The test split's loss, accuracy and firing rates for best.pt's weights (evaluated once per run)."""
        model = self._rebuild(self.best_state, qat=self.best_qat).to(self.device)
        return self.evaluate(self.test_loader, "test", model)

    def run(self, stop_after: Optional[int] = None) -> dict:
        """Train the remaining epochs (or only up to epoch `stop_after`, as an interrupted run would);
        returns the summary that `metrics.json` also holds."""
        with run_lock(self.cfg.out, self.dist.is_main):
            return self._run(stop_after)

    def _run(self, stop_after: Optional[int]) -> dict:
        from tqdm import tqdm
        cfg = self.cfg
        if self.dist.is_main and self.resumed and self.history:
            self._recreate_best()
        elapsed = self.history[-1]["elapsed_s"] if self.history else 0.0
        last = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
        epochs = tqdm(range(self.epoch, last), desc="training", initial=self.epoch, total=cfg.epochs,
                      disable=not self.progress, dynamic_ncols=True)
        for _ in epochs:
            start = time.perf_counter()
            lr = learning_rate(cfg, self.epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            record = {"epoch": self.epoch + 1, "lr": lr}
            record.update(self.train_epoch())
            record.update(self.evaluate(self.val_loader, "val"))
            self.epoch += 1
            record["epoch_time_s"] = time.perf_counter() - start
            elapsed += record["epoch_time_s"]
            record["elapsed_s"] = elapsed
            self.history.append(record)
            improved = record["val_acc"] > self.best_acc
            if improved:
                self.best_acc = record["val_acc"]
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
                                   if not k.startswith("side_branches.")}
                self.best_qat = self.qat.state() if self.qat is not None else None
            epochs.set_postfix(val_acc=f"{record['val_acc']:.4f}", best=f"{self.best_acc:.4f}")
            if self.dist.is_main:
                if improved:      # before last.pt: a kill between the two redoes this epoch and rewrites best.pt
                    self._save("best.pt", record)
                self._save("last.pt", record, self._train_state())
                write_json(os.path.join(cfg.out, "metrics.json"), self.summary())
        if self.epoch == cfg.epochs and self.history:
            self.test = self.test_selected()
            if self.dist.is_main:
                write_json(os.path.join(cfg.out, "metrics.json"), self.summary())
        return self.summary()

    def summary(self) -> dict:
        best = max(self.history, key=lambda r: r["val_acc"]) if self.history else None  # the first maximum
        return {
            "dataset": self.cfg.dataset,
            "train_config": _plain(dataclasses.asdict(self.cfg)),
            "model_config": _plain(dataclasses.asdict(self.model_config)),
            "parameters": sum(p.numel() for p in self.model.parameters()
                              if not any(p is q for q in _side_params(self.model))),
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "epochs_done": self.epoch,
            "samples": {"train": len(self.train_set), "validation": len(self.val_set), "test": len(self.test_set)},
            "selected_epoch": best["epoch"] if best else None,
            "selected_val_acc": best["val_acc"] if best else None,
            "test_acc": self.test["test_acc"] if self.test else None,
            "test_loss": self.test["test_loss"] if self.test else None,
            "test_firing_rate": self.test["firing_rate"] if self.test else None,
            "total_time_s": self.history[-1]["elapsed_s"] if self.history else 0.0,
            "epochs": self.history,
        }


def _side_params(model):
    branches = getattr(model, "side_branches", None)
    return list(branches.parameters()) if branches is not None else []


def _plain(value):
    """Tuples to lists (as JSON and a checkpoint round trip give them back), recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _checkpoint_config(path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return _plain(ckpt["config"])


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Run `cfg` in this process, or as one rank of a torchrun job; returns the run's summary."""
    try:
        info = dist_util.setup(cfg.device)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        return Trainer(cfg, dist=info, progress=progress).run()
    finally:
        dist_util.teardown(info)
