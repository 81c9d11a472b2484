"""sim/: a fast simulator of the deployable graph, bit-exact with Lava's fixed-point CPU models.

`simulate(graph, x, record=..., device=..., reset_interval=..., reset_offset=...) -> SimResult`, or
`Simulator(graph, device).run(x, ...)` to build the synapses once for many runs; `run_samples(sim, x)` runs whole
samples each as if alone (latency padding, per-depth reset, windows, predicted classes); `snn-sim` CLI.
"""
from .executor import SimResult, Simulator, simulate
from .samples import SampleRun, class_scores, fit_samples, pad_for_latency, run_samples, sample_stream

__all__ = ["simulate", "Simulator", "SimResult", "SampleRun", "run_samples", "pad_for_latency", "sample_stream",
           "fit_samples",
           "class_scores"]
