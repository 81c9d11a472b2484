"""Samples per second of Lava's fixed-point CPU simulator and of `snnchip.sim.simulate`, side by side, in one run.

For each network the same fixed-point graph and the same samples go through:
- Lava: `snnchip.deploy.builder` processes (stock `netx.hdf5.Network` for the stock file), samples streamed back to
  back with the per-layer periodic reset; a run of S1 and a run of S2 samples give the steady per-sample time
  (t(S2) - t(S1)) / (S2 - S1), without compilation and process start-up; the S1 run's total is printed too;
- simulate at batch 1 on the identical stream (its outputs are checked equal to Lava's, integer for integer);
- simulate batched: B samples as B rows of T + latency steps.

Networks: an MS-ResNet sized for digits-dvs, an MS-ResNet20 sized for CIFAR10-DVS (2x48x48, T=10), random
weights (speed does not depend on training), and lava-dl's PilotNet LIF (a real sequential netx file).
Usage: `.venv/bin/python benchmarks/sim_vs_lava.py [--only NAME] [--batch B] [--s1 1 --s2 2]`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")   # Lava forks; see tests/conftest.py

import numpy as np  # noqa: E402
import torch  # noqa: E402

from snnchip.sim import simulate  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def timed_sim(graph, x, compile: bool, **kwargs):
    """simulate after a warm-up run on the same input (allocator, MKL-DNN and every compiled kernel variant)."""
    simulate(graph, x, count=False, compile=compile, **kwargs)
    return timed(lambda: simulate(graph, x, count=False, compile=compile, **kwargs))


# -- networks -----------------------------------------------------------------------------------
def ms_resnet_graph(name: str, overrides: dict, seed: int = 0):
    """(fixed pipelined graph, float input samples [S, *shape, T], T) for a random-weight MS-ResNet."""
    from snnchip.export.lower import lower
    from snnchip.export.quantize import quantize
    from snnchip.export.timing import pipeline
    from snnchip.train.models import build_model, model_config

    torch.manual_seed(seed)
    config = model_config(name, **overrides)
    model = build_model(config).eval()
    steps = int(config.T)
    shape = (int(config.in_channels), *map(int, config.input_size))
    calib = (torch.rand(8, *shape, steps) < 0.3).double()
    fixed, _ = quantize(pipeline(lower(model)), calib)
    return fixed, steps


def encode(graph, x):
    from snnchip.export.quantize import encode_input
    return encode_input(graph, x).to(torch.int64)


def lava_run_graph(graph, stream: np.ndarray, steps_per_sample: int):
    """Run the stream [size, num_steps] through the deploy builder; returns (output records, seconds)."""
    from snnchip.deploy.builder import build_lava
    from snnchip.deploy.runconfig import TagRunConfig
    net = build_lava(graph, steps_per_sample=steps_per_sample, num_steps=stream.shape[-1])
    return timed(lambda: net.run({graph.inputs[0].name: stream}, TagRunConfig("fixed_pt")))


def bench_graph(label: str, graph, steps: int, args) -> None:
    pop = graph.inputs[0]
    latency = graph.latency()
    total = args.s2 * steps + latency
    rng = torch.Generator().manual_seed(1)
    samples = encode(graph, (torch.rand(max(args.s2, args.batch), *pop.shape, steps, generator=rng) < 0.3).double())
    stream = torch.cat([samples[i] for i in range(args.s2)], dim=-1)
    stream = torch.cat([stream, torch.zeros(*pop.shape, latency, dtype=stream.dtype)], dim=-1)
    flat = stream.reshape(pop.size, -1).numpy().astype(np.int32)

    print(f"\n== {label}: {len(graph.populations)} populations, {len(graph.projections)} projections, "
          f"input {pop.shape} x T={steps}, latency {latency} steps", flush=True)
    lava_s1, t1 = lava_run_graph(graph, flat[:, :args.s1 * steps + latency], steps)
    lava_s2, t2 = lava_run_graph(graph, flat, steps)
    lava_per_sample = (t2 - t1) / (args.s2 - args.s1)
    ours, _ = timed(lambda: simulate(graph, stream[None], reset_interval=steps, count=False))
    same = all(np.array_equal(lava_s2[(name, "v")], ours.outputs[name][0].reshape(-1, total).numpy())
               for name in ours.outputs if (name, "v") in lava_s2)
    report(label, t1, args.s1, lava_per_sample, stream[None], same, graph, samples, steps, latency, args)


def report(label, t1, s1, lava_per_sample, stream, same, graph, samples, steps, latency, args):
    """Print Lava's rate and simulate's (the Lava stream at batch 1, eager and compiled; a batch, compiled)."""
    n_stream = (stream.shape[-1] - latency) // steps
    _, t_eager = timed_sim(graph, stream, False, reset_interval=steps)
    _, t_fused = timed_sim(graph, stream, True, reset_interval=steps)
    batch = samples[:args.batch]
    padded = torch.cat([batch, torch.zeros(*batch.shape[:-1], latency, dtype=batch.dtype)], dim=-1)
    _, t_batch = timed_sim(graph, padded, True)
    lava_rate = 1 / lava_per_sample
    print(f"Lava CPU (fixed_pt):          {lava_rate:10.4f} samples/s steady ({lava_per_sample:.2f} s/sample; "
          f"the {s1}-sample run took {t1:.1f} s with compilation and start-up)")
    for what, rate in ((f"simulate, batch 1:          ", n_stream / t_eager),
                       (f"simulate --compile, batch 1:", n_stream / t_fused),
                       (f"simulate --compile, batch {args.batch}:", args.batch / t_batch)):
        print(f"{what} {rate:10.2f} samples/s   ratio {rate / lava_rate:8.1f}x")
    print(f"outputs of simulate equal to Lava's on the same stream: {'yes' if same else 'NO'}")
    sys.stdout.flush()


def bench_pilotnet(args) -> None:
    """lava-dl's PilotNet LIF on stock netx; the image enters as the input neuron's bias (as lava-dl's tests)."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io

    from snnchip.deploy.runconfig import TagRunConfig
    from snnchip.deploy.stock import stock_netx_dir
    from snnchip.export.netx_read import read_netx

    root = stock_netx_dir() / "gts" / "pilotnet_lif"
    image = np.load(root / "image.npy")
    steps = 16
    graph = read_netx(root / "network.net")
    graph.inputs[0].bias, graph.inputs[0].bias_exp = image.transpose(2, 1, 0), 6
    latency = graph.latency()

    def lava(samples):
        net = netx.hdf5.Network(net_config=str(root / "network.net"), reset_interval=steps)
        net.in_layer.neuron.bias_mant.init = image
        num = samples * steps + latency
        sink = io.sink.RingBuffer(shape=net.out_layer.neuron.s_out.shape, buffer=num)
        net.out_layer.neuron.s_out.connect(sink.a_in)
        start = time.perf_counter()
        try:
            net.run(condition=RunSteps(num_steps=num), run_cfg=TagRunConfig("fixed_pt"))
            layer = net.layers[-2].neuron.v.get()
        finally:
            net.stop()
        return layer, time.perf_counter() - start

    print(f"\n== lava-dl PilotNet LIF (stock netx): {len(graph.populations)} layers, input {graph.inputs[0].shape}, "
          f"T={steps}, latency {latency} steps", flush=True)
    _, t1 = lava(args.s1)
    v_lava, t2 = lava(args.s2)
    lava_per_sample = (t2 - t1) / (args.s2 - args.s1)
    total = args.s2 * steps + latency
    x = torch.zeros(1, *graph.inputs[0].shape, total, dtype=torch.int64)
    ours = simulate(graph, x, reset_interval=steps, record=("v",), count=False)
    same = np.array_equal(v_lava, ours.v[graph.populations[-2].name][0, ..., -1].numpy())
    samples = torch.zeros(args.batch, *graph.inputs[0].shape, steps, dtype=torch.int64)
    report("pilotnet", t1, args.s1, lava_per_sample, x, same, graph, samples, steps, latency, args)


NETWORKS = {
    # digits-dvs: the embedded DVS digits set (its input size and T from the data module when present)
    "digits-dvs-msresnet": lambda: ms_resnet_graph("ms_resnet20", digits_overrides()),
    "cifar10dvs-msresnet20": lambda: ms_resnet_graph(
        "ms_resnet20", dict(family="dvs", in_channels=2, input_size=(48, 48), T=10, num_classes=10)),
}


def digits_overrides() -> dict:
    from snnchip.train.data import dataset_info
    info = dataset_info("digits-dvs")
    get = info.get if isinstance(info, dict) else lambda k: getattr(info, k)
    shape = tuple(get("shape"))
    return dict(family="dvs", in_channels=shape[0], input_size=shape[1:3], T=int(get("T")),
                num_classes=int(get("num_classes")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[*NETWORKS, "pilotnet"], help="run one network only")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the batched simulate run")
    parser.add_argument("--s1", type=int, default=1, help="samples in Lava's first run")
    parser.add_argument("--s2", type=int, default=2, help="samples in Lava's second run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for simulate (default 1: Lava forks processes after it runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPU cores, "
          f"no GPU used", flush=True)
    for name in [args.only] if args.only else [*NETWORKS, "pilotnet"]:
        if name == "pilotnet":
            bench_pilotnet(args)
            continue
        try:
            graph, steps = NETWORKS[name]()
        except ImportError as exc:
            print(f"\n== {name}: not run, a module it needs has not landed ({exc})", flush=True)
            continue
        bench_graph(name, graph, steps, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
