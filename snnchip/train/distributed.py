"""Scale-out through torch.distributed (launched by `torchrun`): process group, sharding, synchronised norms.

Normalisation statistics must be those of the global batch (tdBN: per channel over N, T, H, W of every
process's samples). `torch.nn.SyncBatchNorm` runs on CUDA only, so `sync_norms` makes the model's TdBN / BN
modules compute their batch moments with differentiable all-reduces instead; that works with gloo on the CPU
and with NCCL on GPUs alike.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..cli_util import torch_device


@dataclass
class DistInfo:
    """Where this process sits: `rank` of `world_size`, and the device it trains on."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA (this process's local GPU) when present, else CPU; 'cpu', 'cuda', 'cuda:N'. Anything
    else, or CUDA without a GPU, is a one-line InputError (`cli_util.torch_device`, the check every tool uses)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); a single process otherwise.

    Backend: NCCL for CUDA, gloo for the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over all processes (in place and returned); a no-op without a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


class _AllReduceSum(torch.autograd.Function):
    """y = sum over processes of x, on every process; the gradient of x is the sum of every process's dy."""

    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        dx = dy.clone()
        dist.all_reduce(dx)
        return dx


def _summed(t: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(t) if dist.is_available() and dist.is_initialized() else t


def global_moments(x: torch.Tensor, dims: tuple) -> tuple:
    """Mean and biased variance of `x` over `dims` and over every process's `x`, differentiably.

    Returns (mean, var, count) with mean/var shaped like `x.sum(dims)` and count the global number of
    elements reduced per channel. Two passes (mean, then squared deviations) keep the variance as exact
    as a single process's.
    """
    count = torch.tensor([float(x.numel() // x.sum(dims).numel())], dtype=torch.float64, device=x.device)
    count = all_reduce_sum(count)
    n = float(count.item())
    mean = _summed(x.sum(dims)) / n
    shape = [1] * x.dim()
    kept = [d for d in range(x.dim()) if d not in dims]
    for d in kept:
        shape[d] = x.shape[d]
    return mean, _summed((x - mean.reshape(shape)).square().sum(dims)) / n, n


def _synced_forward(norm):
    """A training forward for `norm` that normalises with the global batch's moments (eval: unchanged)."""
    local_forward = norm.forward

    def forward(x):
        if not (norm.training and dist.is_initialized()):
            return local_forward(x)
        dims = tuple(d for d in range(x.dim()) if d != 1)
        mean, var, n = global_moments(x, dims)
        shape = [1, -1] + [1] * (x.dim() - 2)
        y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + norm.eps)
        with torch.no_grad():
            norm.num_batches_tracked += 1
            momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
            norm.running_mean.lerp_(mean.detach(), momentum)
            norm.running_var.lerp_(var.detach() * n / max(n - 1.0, 1.0), momentum)
        weight, bias = _affine(norm)
        return y * weight.reshape(shape) + bias.reshape(shape)

    return forward


def _affine(norm):
    """(gain, bias) applied after standardisation in training mode (tdBN's gain includes alpha * V_th)."""
    return getattr(norm, "gain", norm.weight), norm.bias


def sync_norms(model) -> int:
    """Make every normalisation module of `model` use global-batch statistics in training; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.forward = _synced_forward(module)
            count += 1
    return count
