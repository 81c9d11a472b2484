"""sim/: a fast simulator of the deployable graph, bit-exact with Lava's fixed-point CPU models.

`simulate(graph, x, record=..., device=..., reset_interval=..., reset_offset=...) -> SimResult`, or
`Simulator(graph, device).run(x, ...)` to build the synapses once for many runs; `snn-sim` CLI.
"""
from .executor import SimResult, Simulator, population_depths, simulate

__all__ = ["simulate", "Simulator", "SimResult", "population_depths"]
