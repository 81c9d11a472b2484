"""Surrogate-gradient BPTT training of the seed models: SGD with momentum, cosine / multistep schedules,
label smoothing, shortcut back-propagation, AMP, DDP, atomic checkpoints and exact resumption.

Model selection never sees the test split: `val_fraction` of the training files (per class, seeded:
`data.split`) is held out as a validation split, evaluated after every epoch; `best.pt` is the epoch of highest
validation accuracy, and the test split is evaluated once, at the end, for that checkpoint (`test_acc`).

Outputs in `out/`: `metrics.json` (rewritten atomically after every epoch), `last.pt` (every epoch: inference
weights + the training state needed by `--resume`), `best.pt` (highest validation accuracy). Both checkpoints are
`snnchip.train.checkpoint` files: `load_model(path)` rebuilds the network without side branches.
"""
import dataclasses
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

from ..errors import InputError
from . import distributed as dist_util
from . import side_branches as sb
from ..fileio import write_json
from .data.split import dataset_labels, validation_split
from .metrics import Average, FiringRates, correct_count

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
# Fields that may differ between an interrupted run and its `--resume` (they do not change the result).
# `epochs` may grow: `--resume` with a larger --epochs extends a run (see `learning_rate`).
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
    checks = [
        (cfg.epochs >= 1, f"--epochs must be >= 1, got {cfg.epochs}"),
        (cfg.batch_size >= 1, f"--batch-size must be >= 1, got {cfg.batch_size}"),
        (cfg.lr > 0, f"--lr must be > 0, got {cfg.lr}"),
        (cfg.surrogate_width is None or cfg.surrogate_width > 0,
         f"--surrogate-width must be > 0, got {cfg.surrogate_width}"),
        (0 <= cfg.momentum < 1, f"--momentum must be in [0, 1), got {cfg.momentum}"),
        (cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}"),
        (0 <= cfg.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}"),
        (cfg.dropout is None or 0 <= cfg.dropout < 1, f"--dropout must be in [0, 1), got {cfg.dropout}"),
        (cfg.T is None or cfg.T >= 1, f"--T must be >= 1, got {cfg.T}"),
        (cfg.width is None or cfg.width >= 1, f"--width must be >= 1, got {cfg.width}"),
        (cfg.schedule in SCHEDULES, f"--schedule must be one of {SCHEDULES}, got {cfg.schedule!r}"),
        (cfg.schedule != "multistep" or cfg.milestones, "--schedule multistep needs --milestones"),
        (cfg.shortcut_bp in sb.MODES, f"--shortcut-bp must be one of {sb.MODES}, got {cfg.shortcut_bp!r}"),
        (not cfg.evolutionary or cfg.shortcut_bp != "none", "--evolutionary needs --shortcut-bp block|stage"),
        (cfg.shortcut_lambda >= 0, f"--shortcut-lambda must be >= 0, got {cfg.shortcut_lambda}"),
        (cfg.workers >= 0, f"--workers must be >= 0, got {cfg.workers}"),
        (0 < cfg.val_fraction < 1, f"--val-fraction must be in (0, 1), got {cfg.val_fraction}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    return cfg


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
        self.info, train_files, train_plain, self.test_set = self._data(datasets, info)
        train_idx, val_idx = validation_split(dataset_labels(train_plain), cfg.val_fraction)
        self.train_set, self.val_set = Subset(train_files, train_idx), Subset(train_plain, val_idx)
        from .models import build_model
        self.model = build_model(self.model_config).to(self.device)
        if cfg.init_from:
            self._init_from(cfg.init_from)
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
        self.history = []
        self.test = None            # the selected checkpoint's test metrics, once all epochs are done
        if cfg.resume:
            self._resume(cfg.resume)

    # -- data ---------------------------------------------------------------------------------------------
    def _data(self, datasets, info):
        """(info, training files with augmentation, the same without (for validation), test split)."""
        if datasets is not None:
            return info, datasets[0], datasets[0], datasets[1]
        from .data import load_dataset
        cfg = self.cfg
        try:
            train = load_dataset(cfg.dataset, "train", root=cfg.data_root, T=cfg.T, augment=cfg.augment)
            plain = load_dataset(cfg.dataset, "train", root=cfg.data_root, T=cfg.T, augment=False)
            test = load_dataset(cfg.dataset, "test", root=cfg.data_root, T=cfg.T, augment=False)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise InputError(f"--dataset {cfg.dataset}: {exc}") from None
        return info, train, plain, test

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

    def _save(self, name: str, metrics: dict, train_state: Optional[dict] = None):
        from .checkpoint import save_checkpoint
        extra = dict(epoch=self.epoch, metrics=metrics, train_config=_plain(dataclasses.asdict(self.cfg)))
        if train_state is not None:
            extra["train_state"] = train_state
        with sb.detached(self.model):
            save_checkpoint(os.path.join(self.cfg.out, name), self.model, **extra)

    def _train_state(self) -> dict:
        branches = self.model.side_branches
        return {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.loader_generator),
            "side_branches": branches.state_dict() if branches is not None else None,
            "best_acc": self.best_acc,
            "best_state": self.best_state,
            "history": self.history,
        }

    def _resume(self, path):
        if not os.path.isfile(path):
            raise InputError(f"--resume {path}: no such checkpoint")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt or foreign files
            raise InputError(f"--resume {path}: not a readable checkpoint ({type(exc).__name__})") from None
        if not isinstance(ckpt, dict) or "train_state" not in ckpt or "train_config" not in ckpt:
            raise InputError(f"--resume {path}: not a last.pt of snn-train (no training state)")
        ours = _plain(dataclasses.asdict(self.cfg))
        for k, theirs in ckpt["train_config"].items():
            if k not in _RESUME_FREE and ours.get(k) != theirs:
                raise InputError(f"--resume {path}: the run used {k}={theirs!r}, this command {k}={ours.get(k)!r}")
        with sb.detached(self.model):
            self.model.load_state_dict(ckpt["state_dict"])
        state = ckpt["train_state"]
        if self.model.side_branches is not None:
            self.model.side_branches.load_state_dict(state["side_branches"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        _restore_rng(state["rng"], self.loader_generator)
        self.best_acc = state["best_acc"]
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        self.epoch = int(ckpt["epoch"])
        if self.epoch > self.cfg.epochs:
            raise InputError(f"--resume {path}: the run has done {self.epoch} epochs; --epochs {self.cfg.epochs} "
                             f"cannot shorten it (a larger --epochs extends it)")

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
        steps = len(self.train_loader)
        total_steps = steps * cfg.epochs
        loss_avg, correct, seen = Average(), 0, 0
        lam = None
        bar = tqdm(self.train_loader, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not self.progress, dynamic_ncols=True)
        for i, (x, y) in enumerate(bar):
            x = x.to(self.device, non_blocking=True)
            y = torch.as_tensor(y).to(self.device, non_blocking=True)
            lam = sb.balance_coefficient(self.epoch * steps + i, total_steps, cfg.shortcut_lambda,
                                         cfg.evolutionary)
            with self._autocast():
                logits, side = self.net(x)
                loss = self.criterion(sb.combine(logits, side, lam).float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            loss_avg.update(loss.item(), len(y))
            correct += correct_count(logits.detach(), y)
            seen += len(y)
            bar.set_postfix(loss=f"{loss_avg.value:.3f}", acc=f"{correct / seen:.3f}")
        totals = dist_util.all_reduce_sum(torch.tensor([loss_avg.total, correct, seen], dtype=torch.float64))
        out = {"train_loss": float(totals[0] / totals[2]), "train_acc": float(totals[1] / totals[2])}
        if cfg.shortcut_bp != "none":
            out["shortcut_lambda_last"] = lam
        return out

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
        from .models import build_model
        model = build_model(self.model_config).to(self.device)
        model.load_state_dict(self.best_state)
        return self.evaluate(self.test_loader, "test", model)

    def run(self, stop_after: Optional[int] = None) -> dict:
        """Train the remaining epochs (or only up to epoch `stop_after`, as an interrupted run would);
        returns the summary that `metrics.json` also holds."""
        from tqdm import tqdm
        cfg = self.cfg
        if self.dist.is_main:
            os.makedirs(cfg.out, exist_ok=True)
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
