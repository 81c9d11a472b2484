"""Training throughput (samples/s, forward + backward) and peak memory of MS-ResNet20 at 32x32, T=6, batch 32,
on the CPU: snnchip's blocks vs the same network from stock lava-dl slayer components, from SpikingJelly 2.0's
multi-step LIF layers, SpikingJelly 2.0's own `model.ms_resnet.MSResNet` (CIFAR stages 16/32/64, 3x3 stem at
stride 1, first stage at stride 1 as in MS-ResNet20) and snnTorch 1.0 (`snn.Leaky`, stepped over T as snnTorch
runs); and, for `snnchip.train.layers.Conv`, slayer's conv3d (time kernel 1) vs conv2d with T folded into the
batch.

All networks run interleaved in one process (rounds of A, B, C, ...) and the median of the rounds is reported,
so background load hits them alike; the 1-minute load average is printed. Peak memory: each network's one
forward + backward in a fresh subprocess, the rise of the process's peak resident set (ru_maxrss) over its
resident set before the step (weights and input already allocated).
SpikingJelly 2.0.0 and snnTorch 1.0.0 are the versions pinned in constraints.txt and installed in .venv by
`make setup` (test packages; spikingjelly with --no-deps); the benchmark prints the versions it imported.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 5] [--batch 32] [--T 6]
"""
import argparse
import copy
import importlib.metadata
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from snnchip.train.layers import Conv
from snnchip.train.models import build_model, model_config
from snnchip.train.neurons import SpikingNeuron


def ours(T: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(model_config("ms_resnet20", T=T))


def slayer_version(model: nn.Module) -> nn.Module:
    """The same network with every conv a `slayer.synapse.Conv` and every LIF a slayer CUBA neuron
    (current_decay 1, voltage_decay 0.75 = MS-ResNet's LIF)."""
    from lava.lib.dl import slayer
    net = copy.deepcopy(model)
    for name, module in list(net.named_modules()):
        parent = net.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, Conv):
            conv = slayer.synapse.Conv(module.in_channels, module.out_channels, module.kernel_size,
                                       stride=module.stride, padding=module.padding, dilation=module.dilation,
                                       groups=module.groups)
            with torch.no_grad():
                conv.weight.copy_(module.weight)
            setattr(parent, leaf, conv)
        elif isinstance(module, SpikingNeuron):
            setattr(parent, leaf, slayer.neuron.cuba.Neuron(threshold=0.5, current_decay=1.0, voltage_decay=0.75))
    return net


def ms_resnet20_parts(lif, conv_bn) -> tuple[nn.Module, nn.Module]:
    """(body, fc) of MS-ResNet20 at CIFAR size from a framework's `lif()` and `conv_bn(cin, cout, k, stride)`
    (a list of modules): stem, 3 x 3 blocks of widths 16/32/64, last LIF; the head pools and applies fc."""

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.res = nn.Sequential(lif(), *conv_bn(cin, cout, 3, s), lif(), *conv_bn(cout, cout, 3, 1))
            self.sc = nn.Sequential(*conv_bn(cin, cout, 1, s)) if s != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return self.res(x) + self.sc(x)

    blocks, cin = [], 16
    for cout, s in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            blocks.append(Block(cin, cout, s if b == 0 else 1))
            cin = cout
    return nn.Sequential(*conv_bn(3, 16, 3, 1), *blocks, lif()), nn.Linear(64, 10)


def spikingjelly_version(T: int) -> nn.Module:
    """MS-ResNet20 from SpikingJelly multi-step layers, input [N, C, H, W, T] moved to its [T, N, C, H, W]."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif():  # keep 0.25 of v per step: v = (1 - 1/tau) v + x with tau = 4/3
        return neuron.LIFNode(tau=4 / 3, decay_input=False, v_threshold=0.5, detach_reset=True, step_mode="m",
                              surrogate_function=surrogate.Sigmoid())

    def conv_bn(cin, cout, k, s):
        return [layer.Conv2d(cin, cout, k, s, k // 2, bias=False, step_mode="m"),
                layer.BatchNorm2d(cout, step_mode="m")]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.fc = ms_resnet20_parts(lif, conv_bn)

        def forward(self, x):
            from spikingjelly.activation_based import functional
            functional.reset_net(self)
            s = self.body(x.permute(4, 0, 1, 2, 3).contiguous())
            return self.fc(s.mean(dim=(3, 4))).mean(0)

    torch.manual_seed(0)
    return Net()


def spikingjelly_ms_resnet(T: int) -> nn.Module:
    """SpikingJelly 2.0's own MSResNet at MS-ResNet20's CIFAR size ([T, N, C, H, W] in, [N, 10] out)."""
    from spikingjelly.activation_based.model.ms_resnet import MSResNet

    class CifarMSResNet(MSResNet):
        _first_stage_stride = 1         # MS-ResNet20's first stage keeps 32x32 (SpikingJelly's default: 2)

    torch.manual_seed(0)
    net = CifarMSResNet(T=T, in_channels=3, num_classes=10, layers=(3, 3, 3), base_channels=16,
                        stem_kernel_size=3, stem_stride=1, stage_channels=(16, 32, 64))

    class TimeFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            from spikingjelly.activation_based import functional
            functional.reset_net(self.net)
            return self.net(x.permute(4, 0, 1, 2, 3).contiguous())

    return TimeFirst()


def snntorch_version(T: int) -> nn.Module:
    """MS-ResNet20 from snnTorch 1.0 `snn.Leaky` neurons (beta 0.25 = MS-ResNet's decay, threshold 0.5, hard
    reset), the whole network stepped over T (snnTorch's way); input [N, C, H, W, T]."""
    import snntorch as snn
    from snntorch import surrogate as sg

    def lif():
        return snn.Leaky(beta=0.25, threshold=0.5, spike_grad=sg.sigmoid(), reset_mechanism="zero", init_hidden=True)

    def conv_bn(cin, cout, k, s):
        return [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.fc = ms_resnet20_parts(lif, conv_bn)

        def forward(self, x):
            for m in self.modules():    # fresh states, off the last step's graph
                if isinstance(m, snn.Leaky):
                    m.reset_mem()
            out = 0
            for t in range(x.shape[-1]):
                out = out + self.fc(self.body(x[..., t]).mean(dim=(2, 3)))
            return out / x.shape[-1]

    torch.manual_seed(0)
    return Net()


def build(name: str, T: int) -> nn.Module:
    """The network `name` of NETS."""
    if name == "snnchip":
        return ours(T)
    if name == "slayer":
        return slayer_version(ours(T))
    return {"spikingjelly-lif": spikingjelly_version, "spikingjelly-msresnet": spikingjelly_ms_resnet,
            "snntorch": snntorch_version}[name](T)


NETS = ("snnchip", "slayer", "spikingjelly-lif", "spikingjelly-msresnet", "snntorch")


def inputs(batch: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return (torch.rand(batch, 3, 32, 32, T) > 0.5).float(), torch.randint(0, 10, (batch,))


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(name: str, batch: int, T: int) -> float:
    """MiB: the rise of the peak resident set during one forward + backward of `name` (this process is fresh)."""
    net = build(name, T).train()
    x, y = inputs(batch, T)
    before = resident_bytes()
    step_time(net, x, y)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / 2 ** 20


def peak_memory_in_subprocess(name: str, batch: int, T: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--memory-of", name, "--batch", str(batch), "--T", str(T)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return time.perf_counter() - start


def conv_ratio(batch: int, T: int, rounds: int) -> list[str]:
    """Forward + backward of MS-ResNet20's 3x3 convs as conv3d (time kernel 1) and as T-folded conv2d."""
    import torch.nn.functional as F
    lines = []
    for c, size in ((16, 32), (32, 16), (64, 8)):
        x = torch.rand(batch, c, size, size, T, requires_grad=True)
        w = torch.randn(c, c, 3, 3, 1, requires_grad=True)

        def conv3d():
            return F.conv3d(x, w, None, 1, (1, 1, 0))

        def folded():
            flat = x.permute(0, 4, 1, 2, 3).reshape(batch * T, c, size, size)
            y = F.conv2d(flat, w[..., 0], None, 1, 1)
            return y.reshape(batch, T, c, size, size).permute(0, 2, 3, 4, 1)

        times = {conv3d: [], folded: []}
        for fn in times:  # warm-up
            fn().sum().backward()
        for _ in range(rounds):
            for fn, t in times.items():
                start = time.perf_counter()
                fn().sum().backward()
                t.append(time.perf_counter() - start)
        m3, m2 = statistics.median(times[conv3d]), statistics.median(times[folded])
        lines.append(f"  {c:2d}x{c:2d} 3x3 conv at {size}x{size}: conv3d {m3 * 1e3:7.1f} ms, "
                     f"folded conv2d {m2 * 1e3:7.1f} ms   folded / conv3d time = {m2 / m3:.2f}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--T", type=int, default=6)
    parser.add_argument("--memory-of", choices=NETS, help=argparse.SUPPRESS)     # the peak-memory subprocess
    args = parser.parse_args()
    if args.memory_of:
        print(peak_memory(args.memory_of, args.batch, args.T))
        return 0

    print("versions: " + ", ".join(f"{p} {importlib.metadata.version(p)}" for p in
                                   ("torch", "lava-dl", "spikingjelly", "snntorch")))
    nets = {name: build(name, args.T) for name in NETS}
    x, y = inputs(args.batch, args.T)
    for net in nets.values():
        net.train()
        step_time(net, x, y)  # warm-up
    times = {name: [] for name in nets}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, net in nets.items():
            times[name].append(step_time(net, x, y))
    rate = {name: args.batch / statistics.median(t) for name, t in times.items()}
    memory = {name: peak_memory_in_subprocess(name, args.batch, args.T) for name in nets}
    print(f"MS-ResNet20, 32x32, T={args.T}, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds (forward + backward); load average (1 min) {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after:")
    for name, r in rate.items():
        print(f"  {name:22s} {r:8.1f} samples/s   snnchip / {name} = {rate['snnchip'] / r:5.2f}x   "
              f"peak memory {memory[name]:7.0f} MiB   {name} / snnchip = {memory[name] / memory['snnchip']:5.2f}x")
    print(f"Per-step 2D convolution, batch {args.batch}, T={args.T}, median of {args.rounds} rounds "
          f"(forward + backward):")
    print("\n".join(conv_ratio(args.batch, args.T, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
