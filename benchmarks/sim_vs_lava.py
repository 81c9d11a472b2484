"""Samples per second of Lava's fixed-point CPU simulator and of snn-sim (`snnchip.sim.Simulator`), side by side.

For each network the same fixed-point graph and the same samples go through:
- Lava: `snnchip.deploy.builder` processes (stock `netx.hdf5.Network` for the stock file), S samples streamed
  back to back with the per-layer periodic reset, run in two chunks of one network: the first sample's steps
  (compilation and process start-up included, printed) and then the rest, timed: Lava's steady time per step;
- snn-sim's `Simulator` (built once, as Lava's network is compiled once) on the identical stream at batch 1, its
  outputs checked equal to Lava's, integer for integer: the default 'layers' engine and, for reference, the
  step-by-step engine, timed per step;
- the layers engine batched: B rows, each streaming K samples (the pipeline latency is paid once per row, as on
  Lava).
Lava runs first for every network (its processes fork; torch stays single-threaded meanwhile), then snn-sim
runs with `--threads` torch threads (default 1; Lava's processes use every core).

Roofline: the same graph's synaptic work as plain float32 torch, timed in the same run with the same threads:
every projection once, as one `conv2d` (or matmul) over all steps and samples of its source's recorded outputs
(the spike tensors snn-sim produced on the same input; a graded source's payloads), no neuron logic, no integer
care, no skipping of silent steps. snn-sim's throughput is printed as a fraction of it, at batch 1 and batched.
The depth scan (MS-ResNet-20 and -56 at CIFAR size, 3x32x32) prints snn-sim and the roofline only (no Lava: its
run of the 56-layer net would take tens of minutes), for the exported (composed) lowering and, at depth 20, the
relay one.

Networks: an MS-ResNet sized for digits-dvs, an MS-ResNet20 sized for CIFAR10-DVS (2x48x48, T=10), random
weights (speed does not depend on training), and lava-dl's PilotNet LIF (a real sequential netx file).
Samples per second = 1 / (time per step x T) for the streamed runs; rows x K / time for the batched one.
snn-sim and roofline times: the median of REPEATS runs after a warm-up (Lava: one long run).
Usage: `.venv/bin/python benchmarks/sim_vs_lava.py [--only NAME] [--samples S] [--rows B] [--per-row K]
[--no-depth-scan]`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")   # Lava forks; see tests/conftest.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from snnchip.sim import Simulator  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


REPEATS = 3     # timed runs of each snn-sim and roofline measurement: the median is reported (a shared machine)


def timed_run(sim, x, **kwargs):
    """Simulator.run after a warm-up run on the same input (allocator, MKL-DNN, the numba kernel's cache): the
    result and the median seconds of REPEATS runs."""
    sim.run(x, count=False, **kwargs)
    runs = [timed(lambda: sim.run(x, count=False, **kwargs)) for _ in range(REPEATS)]
    return runs[0][0], sorted(t for _, t in runs)[REPEATS // 2]


@dataclass
class Case:
    """One network after its Lava run: what simulate must reproduce and how fast Lava was."""
    label: str
    graph: object
    steps: int                              # T, steps per sample
    stream: torch.Tensor                    # [1, *input_shape, S * T + latency], the Lava input
    make_input: Callable[[int], torch.Tensor]   # n -> n samples [n, *input_shape, T]
    lava_start: float                       # seconds of the first chunk (one sample), compilation included
    lava_per_step: float                    # steady seconds per step (the second chunk)
    same_as_lava: Callable[[object], bool]  # SimResult of the stream -> equal to Lava's record?


# -- our graphs on the deploy builder --------------------------------------------------------------
def ms_resnet_graph(name: str, overrides: dict, seed: int = 0, shortcut: str = "composed"):
    """(fixed pipelined graph, T) for a random-weight MS-ResNet, quantised on random calibration spikes;
    shortcut: the MS shortcut's lowering ('composed' or 'relay', `export.lower.lower`)."""
    from snnchip.export.recipe import export_model
    from snnchip.train.models import build_model, model_config

    torch.manual_seed(seed)
    config = model_config(name, **overrides)
    model = build_model(config).eval()
    steps = int(config.T)
    shape = (int(config.in_channels), *map(int, config.input_size))
    calib = (torch.rand(8, *shape, steps) < 0.3).double()
    fixed = export_model(model, input_kind="graded", calibration=calib, shortcut=shortcut).graph
    return fixed, steps


def lava_graph_case(label: str, graph, steps: int, args) -> Case:
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io

    from snnchip.deploy.builder import build_lava
    from snnchip.deploy.runconfig import TagRunConfig
    from snnchip.loihi import encode_input

    pop = graph.inputs[0]
    latency = graph.latency()

    def make_input(n, seed=1):
        rng = torch.Generator().manual_seed(seed)
        return encode_input(graph, (torch.rand(n, *pop.shape, steps, generator=rng) < 0.3).double()).long()

    samples = make_input(args.samples)
    stream = torch.cat([*samples.unbind(0), torch.zeros(*pop.shape, latency, dtype=torch.int64)], dim=-1)[None]
    total = stream.shape[-1]
    print(f"== {label}: {len(graph.populations)} populations, {len(graph.projections)} projections, "
          f"input {pop.shape} x T={steps}, latency {latency} steps: Lava ... ({load()})", flush=True)
    net = build_lava(graph, steps_per_sample=steps, num_steps=total)
    source = io.source.RingBuffer(data=stream[0].reshape(pop.size, total).numpy().astype(np.int32))
    source.s_out.connect(net.neurons[pop.name].a_in)
    anchor, cfg = next(iter(net.neurons.values())), TagRunConfig("fixed_pt")
    try:
        _, t_start = timed(lambda: anchor.run(condition=RunSteps(num_steps=steps), run_cfg=cfg))
        _, t_rest = timed(lambda: anchor.run(condition=RunSteps(num_steps=total - steps), run_cfg=cfg))
        record = {key: np.asarray(sink.data.get()) for key, sink in net.sinks.items()}
    finally:
        anchor.stop()

    def same(result) -> bool:
        checked = [(name, v) for name, v in result.outputs.items() if (name, "v") in record]
        return bool(checked) and all(np.array_equal(record[(name, "v")], v[0].reshape(-1, v.shape[-1]).numpy())
                                     for name, v in checked)

    return Case(label, graph, steps, stream, make_input, t_start, t_rest / (total - steps), same)


# -- lava-dl's own PilotNet on stock netx -------------------------------------------------------------
def pilotnet_case(args) -> Case:
    """The image enters as the input neuron's bias (as lava-dl's tests); every sample is that image."""
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps

    from snnchip.deploy.runconfig import TagRunConfig
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from lava_dl_files import stock_netx_dir
    from snnchip.formats.netx import read_netx

    root = stock_netx_dir() / "gts" / "pilotnet_lif"
    image = np.load(root / "image.npy")
    steps = 16
    graph = read_netx(root / "network.net")
    graph.inputs[0].bias, graph.inputs[0].bias_exp = image.transpose(2, 1, 0), 6
    latency = graph.latency()
    probe = graph.populations[-2].name

    total = args.samples * steps + latency
    net = netx.hdf5.Network(net_config=str(root / "network.net"), reset_interval=steps)
    net.in_layer.neuron.bias_mant.init = image
    cfg = TagRunConfig("fixed_pt")
    print(f"== pilotnet: lava-dl PilotNet LIF (stock netx), {len(graph.populations)} layers, input "
          f"{graph.inputs[0].shape}, T={steps}, latency {latency} steps: Lava ... ({load()})", flush=True)
    try:
        _, t_start = timed(lambda: net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg))
        _, t_rest = timed(lambda: net.run(condition=RunSteps(num_steps=total - steps), run_cfg=cfg))
        v_lava = net.layers[-2].neuron.v.get()
    finally:
        net.stop()
    stream = torch.zeros(1, *graph.inputs[0].shape, total, dtype=torch.int64)
    return Case("pilotnet", graph, steps, stream,
                lambda n: torch.zeros(n, *graph.inputs[0].shape, steps, dtype=torch.int64),
                t_start, t_rest / (total - steps),
                lambda result: np.array_equal(v_lava, result.v[probe][0, ..., -1].numpy()))


# -- the roofline ------------------------------------------------------------------------------------
def roofline_seconds(graph, outputs: dict[str, torch.Tensor]) -> float:
    """Seconds (median of REPEATS rounds after a warm-up) of the graph's synaptic work as plain float32 torch:
    each projection as one conv2d / matmul over every step and sample of its source's outputs (`outputs`:
    population -> `[N, *shape, T]`, consumed), weights as stored (integers for a fixed graph), no neuron logic,
    no delays, no skipping."""
    work, flat = [], {}     # flat: each source's outputs, float32 [T * N, *shape], made once
    for q in graph.projections:
        src = graph.population(q.source)
        if q.source not in flat:
            x = outputs.pop(q.source)
            flat[q.source] = x.permute(x.ndim - 1, 0, *range(1, x.ndim - 1)).reshape(-1, *src.shape).to(
                torch.float32).contiguous()
        x = flat[q.source]
        w = torch.as_tensor(np.asarray(q.weight), dtype=torch.float32)
        if q.kind == "conv":
            work.append(lambda x=x, w=w, q=q: F.conv2d(x, w, stride=tuple(q.stride), padding=tuple(q.padding),
                                                       dilation=tuple(q.dilation), groups=int(q.groups)))
        else:
            work.append(lambda x=x.reshape(x.shape[0], -1), w=w: x @ w.T)
    def round_():
        start = time.perf_counter()
        for op in work:
            op()
        return time.perf_counter() - start

    round_()
    return sorted(round_() for _ in range(REPEATS))[REPEATS // 2]


def all_outputs(sim, x, steps: int) -> dict[str, torch.Tensor]:
    """Every population's outputs `[N, *shape, T]` (spikes, or a relay's payloads) on input x."""
    return dict(sim.run(x, reset_interval=steps, record=("spikes",), count=False).spikes)


def load() -> str:
    """The load averages (1, 5, 15 min) of the machine, as `uptime` prints them."""
    return "load average %.2f, %.2f, %.2f" % os.getloadavg()


# -- snn-sim -----------------------------------------------------------------------------------------
def batched_input(case_stream_shape, make_input, steps: int, latency: int, rows: int, per_row: int):
    """rows batch rows, each streaming per_row samples then the latency's zeros: `[rows, *shape, K T + latency]`."""
    shape = case_stream_shape[1:-1]
    samples = make_input(rows * per_row).reshape(per_row, rows, *shape, steps)
    return torch.cat([*samples.unbind(0), torch.zeros(rows, *shape, latency, dtype=samples.dtype)], dim=-1)


def sim_rates(graph, steps: int, stream: torch.Tensor, batch: torch.Tensor, per_row: int, engines=True) -> dict:
    """Samples/s of snn-sim (layers engine at batch 1 and batched, steps engine at batch 1 if `engines`) and of
    the roofline on the same inputs, the Simulator's build time, and its result on the stream."""
    total, rows = stream.shape[-1], batch.shape[0]
    sim, built = timed(lambda: Simulator(graph))
    ours = sim.run(stream, reset_interval=steps, record=("v",), count=False)
    _, t_layers = timed_run(sim, stream, reset_interval=steps)
    rates = {"built": built, "ours": ours, "layers": total / (t_layers * steps)}
    if engines:
        _, t_steps = timed_run(sim, stream, reset_interval=steps, engine="steps")
        rates["steps"] = total / (t_steps * steps)
    _, t_batch = timed_run(sim, batch, reset_interval=steps)
    rates["batched"] = rows * per_row / t_batch
    rates["roof"] = total / (roofline_seconds(graph, all_outputs(sim, stream, steps)) * steps)
    rates["roof_batched"] = rows * per_row / roofline_seconds(graph, all_outputs(sim, batch, steps))
    return rates


def print_roofline(rates: dict, rows: int, per_row: int) -> None:
    print(f"  roofline (float32 torch, synaptic work only), batch 1: {rates['roof']:9.2f} samples/s   "
          f"snn-sim at {rates['layers'] / rates['roof']:.2f} of it")
    print(f"  roofline, {rows} rows x {per_row}:                  {rates['roof_batched']:9.2f} samples/s   "
          f"snn-sim at {rates['batched'] / rates['roof_batched']:.2f} of it")


def report(case: Case, args) -> None:
    graph, steps = case.graph, case.steps
    latency = graph.latency()
    total = case.stream.shape[-1]
    batch = batched_input(case.stream.shape, case.make_input, steps, latency, args.rows, args.per_row)
    rates = sim_rates(graph, steps, case.stream, batch, args.per_row)
    lava_rate = 1 / (case.lava_per_step * steps)
    print(f"\n{case.label}: T={steps}, latency {latency}, streams of {total} steps ({load()})")
    print(f"  Lava CPU (fixed_pt):                 {lava_rate:9.3f} samples/s ({1000 * case.lava_per_step:.1f} ms/step "
          f"steady; its first sample took {case.lava_start:.1f} s with compilation and start-up)")
    print(f"  snn-sim Simulator built in {1000 * rates['built']:.0f} ms")
    for what, rate in (("snn-sim layers engine, batch 1:      ", rates["layers"]),
                       ("snn-sim steps engine, batch 1:       ", rates["steps"]),
                       (f"snn-sim layers engine, {args.rows} rows x {args.per_row}:", rates["batched"])):
        print(f"  {what} {rate:9.2f} samples/s   ratio {rate / lava_rate:8.1f}x")
    print_roofline(rates, args.rows, args.per_row)
    print(f"  snn-sim's outputs equal Lava's on the same stream: {'yes' if case.same_as_lava(rates['ours']) else 'NO'}",
          flush=True)


def depth_scan(args) -> None:
    """MS-ResNet-20 and -56 at CIFAR size, composed and relay lowerings: snn-sim and the roofline (no Lava)."""
    from snnchip.loihi import encode_input
    print(f"\n== depth scan: MS-ResNet at CIFAR size (3x32x32, T=4), random weights, no Lava", flush=True)
    # the relay lowering at depth 56: the process grew past 18 GB on a 23 GB machine (killed for memory); not run
    for depth, shortcuts in ((20, ("composed", "relay")), (56, ("composed",))):
        for shortcut in shortcuts:
            graph, steps = ms_resnet_graph(f"ms_resnet{depth}", {}, shortcut=shortcut)
            pop, latency = graph.inputs[0], graph.latency()

            def make_input(n, seed=1):
                rng = torch.Generator().manual_seed(seed)
                return encode_input(graph, (torch.rand(n, *pop.shape, steps, generator=rng) < 0.3).double()).long()

            stream = batched_input((1, *pop.shape, 0), make_input, steps, latency, 1, args.samples)
            batch = batched_input(stream.shape, make_input, steps, latency, args.scan_rows, args.per_row)
            rates = sim_rates(graph, steps, stream, batch, args.per_row, engines=False)
            print(f"\nms_resnet{depth} ({shortcut}): {len(graph.populations)} populations, "
                  f"{len(graph.projections)} projections, latency {latency} ({load()})")
            print(f"  snn-sim layers engine, batch 1:       {rates['layers']:9.2f} samples/s")
            print(f"  snn-sim layers engine, {args.scan_rows} rows x {args.per_row}:  "
                  f"{rates['batched']:9.2f} samples/s")
            print_roofline(rates, args.scan_rows, args.per_row)


NETWORKS = {
    "digits-dvs-msresnet": lambda: ms_resnet_graph("ms_resnet20", digits_overrides()),
    "cifar10dvs-msresnet20": lambda: ms_resnet_graph(
        "ms_resnet20", dict(family="dvs", in_channels=2, input_size=(48, 48), T=10, num_classes=10)),
}


def digits_overrides() -> dict:
    """digits-dvs' input (channels, size), T and classes from the data module."""
    from snnchip.train.data import dataset_info
    info = dataset_info("digits-dvs")
    return dict(family="dvs", in_channels=info.in_channels, input_size=tuple(info.input_size), T=info.T,
                num_classes=info.num_classes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[*NETWORKS, "pilotnet", "depth-scan"], help="run one network only")
    parser.add_argument("--no-depth-scan", action="store_true", help="skip the MS-ResNet-20/56 depth scan")
    parser.add_argument("--scan-rows", type=int, default=4,
                        help="batch rows of the depth scan's batched run (its roofline holds every population's "
                             "outputs as float32: 16 rows of MS-ResNet56 need about 4 GB)")
    parser.add_argument("--rows", type=int, default=16, help="batch rows of the batched run")
    parser.add_argument("--per-row", type=int, default=4, help="samples streamed in each batch row")
    parser.add_argument("--samples", type=int, default=4, help="samples in the streamed runs (>= 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for snn-sim (default 1: on a shared 2-core machine a second thread "
                             "measured 20x slower per operation, waiting for a core)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, no GPU used, {load()}", flush=True)
    cases = []
    for name in [args.only] if args.only else [*NETWORKS, "pilotnet"]:
        if name == "depth-scan":
            continue
        if name == "pilotnet":
            cases.append(pilotnet_case(args))
            continue
        try:
            graph, steps = NETWORKS[name]()
        except ImportError as exc:
            print(f"== {name}: not run, a module it needs has not landed ({exc})", flush=True)
            continue
        cases.append(lava_graph_case(name, graph, steps, args))
    torch.set_num_threads(args.threads)
    print(f"\nsnn-sim with {torch.get_num_threads()} torch thread(s)", flush=True)
    for case in cases:
        report(case, args)
    if args.only == "depth-scan" or (not args.only and not args.no_depth_scan):
        depth_scan(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
