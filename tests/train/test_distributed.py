"""Multi-process training on the CPU (gloo, 2 processes started by torchrun): the ranks stay identical and
the normalisation statistics are those of the global batch, so one DDP step equals one single-process step
on the whole batch."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from snnchip.train import distributed as dist_util

WORLD = 2
TINY = dict(depth=8, widths=(4, 8, 8), in_channels=2, num_classes=3, input_size=(8, 8), T=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _global_batch():
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(8, TINY["in_channels"], *TINY["input_size"], TINY["T"], generator=g) > 0.6).float()
    y = torch.randint(0, TINY["num_classes"], (8,), generator=g)
    return x, y


def _tiny_model():
    from snnchip.train.models import build_model, model_config
    torch.manual_seed(3)
    return build_model(model_config("ms_resnet20", **TINY))


def _one_step(model, x, y):
    """One SGD step (lr 0.5, so that any gradient mismatch shows) of `model` on (x, y)."""
    net = model
    if torch.distributed.is_initialized():
        net = torch.nn.parallel.DistributedDataParallel(model, forward_sync_buffers=False)
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _worker(out):
    """Run under torchrun: each rank steps on its half of the global batch and saves its state."""
    info = dist_util.setup("cpu")
    model = _tiny_model()
    dist_util.sync_norms(model)
    x, y = _global_batch()
    half = len(x) // info.world_size
    part = slice(info.rank * half, (info.rank + 1) * half)
    model.train()
    _one_step(model, x[part], y[part])
    torch.save(model.state_dict(), os.path.join(out, f"rank{info.rank}.pt"))
    # The same through the Trainer: a short run with side branches, each rank keeping its weights.
    from test_trainer import DATA, INFO, tiny  # run as a script: this folder is on sys.path
    from snnchip.train.trainer import Trainer
    trainer = Trainer(tiny(Path(out), shortcut_bp="block", epochs=1), dist=info, progress=False, datasets=DATA,
                      info=INFO)
    trainer.run()
    torch.save(trainer.model.state_dict(), os.path.join(out, f"trainer{info.rank}.pt"))
    dist_util.teardown(info)


def test_global_moments_without_process_group_are_the_local_ones():
    x = torch.randn(3, 4, 5, 6, 2, dtype=torch.float64)
    mean, var, n = dist_util.global_moments(x, (0, 2, 3, 4))
    assert n == 3 * 5 * 6 * 2
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3, 4)))
    torch.testing.assert_close(var, x.var(dim=(0, 2, 3, 4), unbiased=False))


def test_ddp_step_on_two_processes_equals_one_step_on_the_global_batch(tmp_path):
    _torchrun(__file__, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), f"ranks differ in {k}"
    trained = [torch.load(tmp_path / f"trainer{r}.pt", weights_only=True) for r in range(WORLD)]
    for k in trained[0]:
        assert torch.equal(trained[0][k], trained[1][k]), f"ranks differ in {k} after Trainer.run"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD and metrics["epochs_done"] == 1
    model = _tiny_model()
    model.train()
    _one_step(model, *_global_batch())
    reference = model.state_dict()
    norm_buffers = [k for k in reference if k.endswith("running_mean") or k.endswith("running_var")]
    assert norm_buffers, "the model has no normalisation statistics to compare"
    for k, v in reference.items():
        torch.testing.assert_close(ranks[0][k], v, rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")


if __name__ == "__main__":
    _worker(sys.argv[1])
