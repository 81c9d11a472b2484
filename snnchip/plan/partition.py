"""Partition a fixed-point graph's populations onto neurocores: `plan_graph(graph, chip) -> Plan`.

Each population gets cores of its own (as Lava's compiler maps one process per set of cores), cut into a grid of
equal tiles (`synapses.Tiling`), one tile per core. For every population, from the outputs back to the inputs
(a source's output axons depend on how its targets are cut), the planner takes the fewest tiles under which
every core stays within the chip's limits:

    neurons        neurons on the core                           <= neurons_per_core
    fan_in         input axons (source neurons with a synapse)   <= fan_in_axons_per_core
    memory         synapse memory, bits                          <= synaptic_memory_bits_per_core
    fan_out        output axons (source neuron, target core)     <= fan_out_axons_per_core

and among cuts with that many tiles the one whose busiest core is least full. A population's *limiting*
resource is the one its busiest core uses the largest fraction of. What cannot be mapped (a neuron the chip
does not have, a delay or payload beyond its range, one neuron that alone overflows a core) is reported with a
one-line reason and takes no cores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import InputError
from ..graph import Graph, Population
from .chip import Chip
from .synapses import (CONV_WEIGHTS, Tiling, incoming, is_spatial, outgoing, real_synapses,
                       stored_weight_bits)

RESOURCES = ("neurons", "fan_in", "memory", "fan_out")
MAX_PASSES = 4


@dataclass
class CoreUse:
    """One core: which tile of which population, and what it uses of each resource."""
    population: str
    tile: tuple[int, ...]
    used: dict[str, int]
    utilisation: dict[str, float]


@dataclass
class PopulationPlan:
    name: str
    shape: tuple[int, ...]
    neurons: int
    tile: Optional[tuple[int, ...]] = None
    cores: list[CoreUse] = field(default_factory=list)
    limiting: Optional[str] = None
    reason: Optional[str] = None

    @property
    def mapped(self) -> bool:
        return self.reason is None

    def peak(self) -> dict[str, float]:
        return {r: max((c.utilisation[r] for c in self.cores), default=0.0) for r in RESOURCES}

    def mean(self) -> dict[str, float]:
        return {r: float(np.mean([c.utilisation[r] for c in self.cores])) if self.cores else 0.0
                for r in RESOURCES}


@dataclass
class ProjectionPlan:
    name: str
    source: str
    target: str
    kind: str
    synapses: int
    weight_bits_needed: int
    weight_bits: int
    delay_max: int
    message_bits: int


@dataclass
class Plan:
    """Where a graph goes on a chip. `cores`: cores used by the mapped populations; `chips`: chips they need."""
    chip: Chip
    conv_weights: str
    weight_bits: Optional[int]
    populations: list[PopulationPlan]
    projections: list[ProjectionPlan]
    warnings: list[str] = field(default_factory=list)

    @property
    def cores(self) -> int:
        return sum(len(p.cores) for p in self.populations)

    @property
    def chips(self) -> int:
        return -(-self.cores // int(self.chip.cores_per_chip))

    @property
    def mappable(self) -> bool:
        return all(p.mapped for p in self.populations)


def plan_graph(graph: Graph, chip: Chip, *, weight_bits: Optional[int] = None,
               conv_weights: str = "expanded") -> Plan:
    """Partition `graph` (fixed point) onto `chip`'s cores.

    weight_bits: store every projection's weights with at most this many bits (as if exported so: a projection
    whose integer weights need fewer keeps those); default: the bits its integer weights need
    (`synapses.stored_weight_bits`). conv_weights: 'expanded' or 'shared' (see
    `snnchip.plan.synapses`)."""
    if not graph.fixed:
        raise InputError("a resource plan needs a fixed-point graph (export with --target loihi)")
    if conv_weights not in CONV_WEIGHTS:
        raise InputError(f"conv weights must be one of {', '.join(CONV_WEIGHTS)}, got '{conv_weights}'")
    if weight_bits is not None and not 1 <= weight_bits <= int(chip.weight_bits_max):
        raise InputError(f"--weight-bits {weight_bits}: {chip.name} stores 1..{chip.weight_bits_max} weight bits")
    graph.validate()
    shapes = {p.name: tuple(int(s) for s in p.shape) for p in graph.populations}
    warnings: list[str] = []
    projections = [_projection_plan(q, shapes, chip, weight_bits, warnings) for q in graph.projections]
    pops = {p.name: PopulationPlan(p.name, shapes[p.name], int(np.prod(shapes[p.name])),
                                   reason=_unsupported(graph, p, chip)) for p in graph.populations}
    planner = _Planner(graph, chip, shapes, {q.name: q.weight_bits for q in projections}, conv_weights,
                       skip={name for name, p in pops.items() if p.reason is not None})
    planner.run()
    for pop in graph.populations:
        plan = pops[pop.name]
        if plan.reason is None and pop.name in planner.failed:
            plan.reason = planner.failed[pop.name]
        if plan.reason is None:
            plan.tile = planner.tilings[pop.name].tile
            plan.cores = planner.cores(pop.name)
            peak = plan.peak()
            plan.limiting = max(RESOURCES, key=lambda r: peak[r])
    return Plan(chip, conv_weights, weight_bits, [pops[p.name] for p in graph.populations], projections, warnings)


def _projection_plan(q, shapes, chip: Chip, override, warnings) -> ProjectionPlan:
    need = stored_weight_bits(q.weight)
    bits = need if override is None else min(need, override)
    if bits > int(chip.weight_bits_max):
        warnings.append(f"projection '{q.name}': its weights need {bits} bits, {chip.name} stores "
                        f"{chip.weight_bits_max} (mixed-sign odd weights lose their lowest bit); planned at "
                        f"{chip.weight_bits_max}")
        bits = int(chip.weight_bits_max)
    return ProjectionPlan(q.name, q.source, q.target, q.kind, real_synapses(q, shapes[q.source], shapes[q.target]),
                          need, max(bits, 1), int(np.max(q.delay)), int(q.num_message_bits))


def _unsupported(graph: Graph, pop: Population, chip: Chip) -> Optional[str]:
    """Why the chip cannot hold this population at all, or None."""
    if not chip.programmable_neurons:
        if pop.neuron.graded:
            return f"a graded relay (payload instead of spikes); {chip.name} has no programmable neurons"
        if pop.neuron.reset == "soft":
            return f"soft-reset neurons; {chip.name}'s compartments reset to a value"
    for q in graph.out_of(pop.name):
        if int(q.num_message_bits) > int(chip.message_bits_max):
            what = "binary spikes only" if int(chip.message_bits_max) == 0 else \
                f"payloads of at most {chip.message_bits_max} bits"
            return f"sends {q.num_message_bits}-bit graded payloads ('{q.name}'); {chip.name} carries {what}"
    for q in graph.into(pop.name):
        if int(np.max(q.delay)) > int(chip.delay_max):
            return f"projection '{q.name}' has a {int(np.max(q.delay))}-step delay; {chip.name} allows " \
                   f"{chip.delay_max}"
    return None


def _candidates(shape: tuple[int, ...], per_core: int) -> list[Tiling]:
    """Tilings with at most `per_core` neurons per tile, fewest tiles first (channels kept whole first)."""
    def sizes(n):
        return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)

    axes = [sizes(int(n)) for n in shape] if is_spatial(shape) else [sizes(int(np.prod(shape)))]
    flat = not is_spatial(shape)
    out = []
    for c in axes[0]:
        if flat:
            if c <= per_core:
                out.append(Tiling((int(np.prod(shape)),), (c,)))
            continue
        for h in axes[1]:
            if c * h > per_core:
                continue
            for w in axes[2]:
                if c * h * w <= per_core:
                    out.append(Tiling(tuple(shape), (c, h, w)))
    out.sort(key=lambda t: (t.cores, -t.tile[0]))
    return out


class _Planner:
    """Chooses every population's cut. Outputs first: a population's output axons depend on how its targets are
    cut. Each cut is chosen for the cores it needs plus an estimate of the cores its sources will need because of
    it (each (source neuron, core it reaches) pair is an output axon of the source; the estimate is the larger of
    what a source needs without output axons and its output axons over the per-core limit); among equal
    estimates, the cut with fewer cores, then fewer of its sources' output axons, then the least-full busiest core. Projections that go back
    (recurrence) see the previous pass's cut, so passes repeat until no cut changes."""

    def __init__(self, graph: Graph, chip: Chip, shapes, bits, conv_weights: str, skip: set[str]):
        self.graph, self.chip, self.shapes, self.bits, self.conv_weights = graph, chip, shapes, bits, conv_weights
        self.skip = skip
        self.limits = {"neurons": int(chip.neurons_per_core), "fan_in": int(chip.fan_in_axons_per_core),
                       "memory": int(chip.synaptic_memory_bits_per_core), "fan_out": int(chip.fan_out_axons_per_core)}
        self.tilings: dict[str, Tiling] = {}
        self.failed: dict[str, str] = {}
        self._own: dict[str, int] = {}
        self._candidates: dict[str, list[Tiling]] = {}

    def run(self) -> None:
        for _ in range(MAX_PASSES):
            before = dict(self.tilings)
            for pop in reversed(self.graph.populations):
                if pop.name in self.skip:
                    continue
                tiling, reason = self.best(pop.name)
                if tiling is None:
                    self.failed[pop.name] = reason
                    self.tilings.pop(pop.name, None)
                else:
                    self.failed.pop(pop.name, None)
                    self.tilings[pop.name] = tiling
            if self.tilings == before:
                break

    def usage(self, name: str, tiling: Tiling, fan_out: bool = True) -> dict[str, np.ndarray]:
        """Per tile (grid-shaped) what each resource holds."""
        grid = tiling.grid
        use = {"neurons": tiling.sizes(), "fan_in": np.zeros(grid, dtype=np.int64),
               "memory": np.zeros(grid, dtype=np.int64), "fan_out": np.zeros(grid, dtype=np.int64)}
        for q in self.graph.into(name):
            axons, memory = incoming(q, self.shapes[q.source], tiling, self.bits[q.name], self.chip,
                                     self.conv_weights)
            use["fan_in"] += axons
            use["memory"] += memory
        if fan_out:
            for q in self.graph.out_of(name):
                if q.target in self.tilings:
                    use["fan_out"] += outgoing(q, tiling, self.tilings[q.target])
        return use

    def fill(self, use: dict[str, np.ndarray]) -> float:
        """The largest fraction of a limit any core uses."""
        return max(float(use[r].max()) / self.limits[r] for r in RESOURCES)

    def candidates(self, name: str) -> list[Tiling]:
        if name not in self._candidates:
            self._candidates[name] = _candidates(self.shapes[name], self.limits["neurons"])
        return self._candidates[name]

    def own_cores(self, name: str) -> int:
        """Fewest cores the population needs for its neurons, input axons and synapse memory alone."""
        if name not in self._own:
            self._own[name] = next((t.cores for t in self.candidates(name)
                                    if self.fill(self.usage(name, t, fan_out=False)) <= 1.0), 0)
        return self._own[name]

    def spread(self, name: str, tiling: Tiling) -> dict[str, int]:
        """Output axons each source of `name` needs for this cut of it (over all the source's neurons)."""
        out: dict[str, int] = {}
        for q in self.graph.into(name):
            if q.source not in self.skip:
                whole = Tiling(self.shapes[q.source], self.shapes[q.source])
                out[q.source] = out.get(q.source, 0) + int(outgoing(q, whole, tiling).sum())
        return out

    def best(self, name: str) -> tuple[Optional[Tiling], Optional[str]]:
        candidates = self.candidates(name)
        # The finest cut (one neuron per core) needs the least of every resource per core: if it overflows a
        # core, nothing fits.
        use = self.usage(name, candidates[-1])
        over = [r for r in RESOURCES if use[r].max() > self.limits[r]]
        if over:
            r = over[0]
            return None, (f"even one neuron per core exceeds the {_NAMES[r]} ({int(use[r].max())} > "
                          f"{self.limits[r]})")
        limit = self.limits["fan_out"]
        other = {}
        for s in {q.source for q in self.graph.into(name) if q.source not in self.skip}:
            whole = Tiling(self.shapes[s], self.shapes[s])
            other[s] = sum(int(outgoing(q, whole, self.tilings[q.target]).sum()) for q in self.graph.out_of(s)
                           if q.target != name and q.target in self.tilings)
        best, best_key = None, None
        for tiling in candidates:
            if best is not None and tiling.cores > best_key[0]:
                break          # the estimate is at least the population's own cores
            spread = self.spread(name, tiling)
            estimate = tiling.cores + sum(max(self.own_cores(s), -(-(n + other[s]) // limit))
                                          for s, n in spread.items())
            if best is not None and estimate > best_key[0]:
                continue
            fill = self.fill(self.usage(name, tiling))
            if fill > 1.0:
                continue
            key = (estimate, tiling.cores, sum(spread.values()), fill)
            if best is None or key < best_key:
                best, best_key = tiling, key
        return best, None

    def cores(self, name: str) -> list[CoreUse]:
        tiling = self.tilings[name]
        use = self.usage(name, tiling)
        cores = []
        for index in np.ndindex(*tiling.grid):
            used = {r: int(use[r][index]) for r in RESOURCES}
            cores.append(CoreUse(name, tuple(int(i) for i in index), used,
                                 {r: used[r] / self.limits[r] for r in RESOURCES}))
        return cores


_NAMES = {"neurons": "neurons per core", "fan_in": "input axons per core", "memory": "synapse memory bits per core",
          "fan_out": "output axons per core"}
