"""Training throughput (samples/s, forward + backward + SGD step) with `--qat` relative to without, same model:
the digits-dvs recipe's MS-ResNet8 (widths 16/32/64, 2x16x16 input, T = 8, batch 32) on random spikes, CPU.

The QAT model does what `snn-train --qat` does per step: the chip's weights in every synapse layer's forward,
and every `STAT_EVERY` steps the running peaks and the scales (`Qat.observe`). Both models run interleaved in one
process (rounds of STAT_EVERY steps each), and the median round is reported, so background load hits them alike.

    .venv/bin/python benchmarks/qat_throughput.py [--rounds 5] [--batch 32] [--weight-bits 8]
"""
import argparse
import statistics
import time

import torch

from snnchip.train.models import build_model, model_config
from snnchip.train.qat import STAT_EVERY, attach_qat


def model():
    torch.manual_seed(0)
    return build_model(model_config("ms_resnet8", widths=(16, 32, 64), in_channels=2, input_size=(16, 16), T=8))


def round_time(net, qat, x, y) -> float:
    """Seconds for STAT_EVERY training steps (the QAT statistics and scales once, as the trainer does)."""
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    start = time.perf_counter()
    for i in range(STAT_EVERY):
        if qat is not None and i == 0:
            qat.observe(x)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--weight-bits", type=int, default=8)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, 2, 16, 16, 8, generator=g) > 0.8).float()
    y = torch.randint(0, 10, (args.batch,), generator=g)
    plain, quant = model().train(), model().train()
    qat = attach_qat(quant, args.weight_bits)
    round_time(plain, None, x, y), round_time(quant, qat, x, y)          # warm-up
    times = {"float": [], "qat": []}
    for _ in range(args.rounds):
        times["float"].append(round_time(plain, None, x, y))
        times["qat"].append(round_time(quant, qat, x, y))
    rate = {k: args.batch * STAT_EVERY / statistics.median(v) for k, v in times.items()}
    print(f"MS-ResNet8 digits-dvs shape, batch {args.batch}, T 8, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds of {STAT_EVERY} steps")
    print(f"float training {rate['float']:.1f} samples/s; --qat --weight-bits {args.weight_bits} "
          f"{rate['qat']:.1f} samples/s; qat/float throughput ratio {rate['qat'] / rate['float']:.2f}")


if __name__ == "__main__":
    main()
