"""sim/: a fast simulator of the deployable graph, bit-exact with Lava's fixed-point CPU models.

`simulate(graph, x, record=..., device=..., reset_interval=..., reset_offset=...) -> SimResult`; `snn-sim` CLI.
"""
from .executor import SimResult, population_depths, simulate

__all__ = ["simulate", "SimResult", "population_depths"]
