"""Training throughput (samples/s, forward + backward) of MS-ResNet20 at 32x32, T=6, batch 32, on the CPU:
snnchip's blocks vs the same network from stock lava-dl slayer components vs SpikingJelly's multi-step layers;
and, for `snnchip.train.layers.Conv`, slayer's conv3d (time kernel 1) vs conv2d with T folded into the batch.

All three run interleaved in one process (rounds of A, B, C) and the median of the rounds is reported, so
background load hits them alike. SpikingJelly is optional: install it outside the project's venv, e.g.
`.venv/bin/pip install --no-deps --target /tmp/sj spikingjelly loguru` and pass `--spikingjelly /tmp/sj`.

    .venv/bin/python benchmarks/train_throughput.py [--rounds 5] [--batch 32] [--T 6] [--spikingjelly DIR]
"""
import argparse
import copy
import statistics
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


def spikingjelly_version(T: int) -> nn.Module:
    """MS-ResNet20 from SpikingJelly multi-step layers, input [N, C, H, W, T] moved to its [T, N, C, H, W]."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif():  # keep 0.25 of v per step: v = (1 - 1/tau) v + x with tau = 4/3
        return neuron.LIFNode(tau=4 / 3, decay_input=False, v_threshold=0.5, detach_reset=True, step_mode="m",
                              surrogate_function=surrogate.Sigmoid())

    def conv_bn(cin, cout, k, s):
        return [layer.Conv2d(cin, cout, k, s, k // 2, bias=False, step_mode="m"),
                layer.BatchNorm2d(cout, step_mode="m")]

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.res = nn.Sequential(lif(), *conv_bn(cin, cout, 3, s), lif(), *conv_bn(cout, cout, 3, 1))
            self.sc = nn.Sequential(*conv_bn(cin, cout, 1, s)) if s != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return self.res(x) + self.sc(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, cin = [], 16
            for cout, s in ((16, 1), (32, 2), (64, 2)):
                for b in range(3):
                    blocks.append(Block(cin, cout, s if b == 0 else 1))
                    cin = cout
            self.body = nn.Sequential(*conv_bn(3, 16, 3, 1), *blocks, lif())
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            from spikingjelly.activation_based import functional
            functional.reset_net(self)
            s = self.body(x.permute(4, 0, 1, 2, 3).contiguous())
            return self.fc(s.mean(dim=(3, 4))).mean(0)

    torch.manual_seed(0)
    return Net()


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
    parser.add_argument("--spikingjelly", metavar="DIR", help="folder where spikingjelly (and loguru) are installed")
    args = parser.parse_args()

    model = ours(args.T)
    nets = {"snnchip": model, "slayer": slayer_version(model)}
    if args.spikingjelly:
        sys.path.insert(0, args.spikingjelly)
        try:
            nets["spikingjelly"] = spikingjelly_version(args.T)
        except ImportError as exc:
            print(f"spikingjelly not available ({exc}); skipped")
    torch.manual_seed(1)
    x = (torch.rand(args.batch, 3, 32, 32, args.T) > 0.5).float()
    y = torch.randint(0, 10, (args.batch,))
    for net in nets.values():
        net.train()
        step_time(net, x, y)  # warm-up
    times = {name: [] for name in nets}
    for _ in range(args.rounds):
        for name, net in nets.items():
            times[name].append(step_time(net, x, y))
    rate = {name: args.batch / statistics.median(t) for name, t in times.items()}
    print(f"MS-ResNet20, 32x32, T={args.T}, batch {args.batch}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds (forward + backward):")
    for name, r in rate.items():
        print(f"  {name:13s} {r:8.1f} samples/s   snnchip / {name} = {rate['snnchip'] / r:.2f}x")
    print(f"Per-step 2D convolution, batch {args.batch}, T={args.T}, median of {args.rounds} rounds "
          f"(forward + backward):")
    print("\n".join(conv_ratio(args.batch, args.T, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
