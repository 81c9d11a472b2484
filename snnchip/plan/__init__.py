"""plan/: what a fixed-point network needs of a Loihi chip, without the chip.

    from snnchip.plan import load_chip, plan_graph, plan_to_dict, plan_table
    plan = plan_graph(fixed_graph, load_chip("loihi2"), weight_bits=None, conv_weights="expanded")
    plan.cores, plan.chips, plan.mappable

Populations are cut into tiles, one per neurocore, under the chip's per-core limits (neurons, input and output
axons, synapse memory as a function of the stored weight bits, delays, payload bits); the plan gives cores and
chips used, utilisation per core, the limiting resource per population and what cannot be mapped with a
one-line reason. Chips are data (`chips/*.json`), each figure with its source. See docs/plan.md.
"""
from .chip import Chip, builtin_chip_names, load_chip
from .partition import Plan, plan_graph
from .report import plan_table, plan_to_dict
from .synapses import CONV_WEIGHTS, stored_weight_bits

__all__ = ["Chip", "Plan", "CONV_WEIGHTS", "builtin_chip_names", "load_chip", "plan_graph", "plan_table",
           "plan_to_dict", "stored_weight_bits"]
