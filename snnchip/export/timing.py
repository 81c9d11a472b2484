"""Pipelined timing: one step per synaptic hop, with delays that align every fan-in (docs/graph-ir.md).

On a chip (and in Lava) a spike takes one step to cross a synapse, so in a residual graph a shortcut that skips a
block arrives earlier than the path through it. `pipeline(graph)` gives each population a depth
`d(p) = max over projections q into p of d(source) + 1 - delay_q` (inputs: 0; delay_q the ideal graph's delay,
0 from the lowering) and each projection the delay `d(target) - d(source) - 1 + delay_q`, so every input of a
population arrives in the same step. The pipelined graph then computes the ideal graph's outputs shifted:
`s_pipelined[p][t] = s_ideal[p][t - d(p)]`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import InputError
from ..graph import Graph


def pipeline(graph: Graph) -> Graph:
    """A copy of the ideal-timing `graph` under pipelined timing; `meta['depth'][pop]` = steps from the input."""
    if graph.timing != "ideal":
        raise InputError(f"pipeline() needs an ideal-timing graph, got timing '{graph.timing}'")
    order = {pop.name: i for i, pop in enumerate(graph.populations)}
    depth: dict[str, int] = {}
    for pop in graph.populations:
        if pop.is_input:
            depth[pop.name] = 0
            continue
        into = graph.into(pop.name)
        arrivals = []
        for q in into:
            if np.ndim(q.delay) != 0:
                raise InputError(f"projection '{q.name}': pipeline() needs scalar delays")
            if order[q.source] >= order[pop.name]:
                raise InputError(f"projection '{q.name}' goes backwards ({q.source} -> {pop.name}); "
                                 f"recurrent graphs cannot be pipelined")
            arrivals.append(depth[q.source] + 1 - int(q.delay))
        depth[pop.name] = max(arrivals) if arrivals else 0
    # Shallow: weights are shared with the ideal graph (pipelining changes delays only; deep nets hold GBs).
    out = dataclasses.replace(graph, timing="pipelined", meta=dict(graph.meta),
                              populations=[dataclasses.replace(p) for p in graph.populations],
                              projections=[dataclasses.replace(q) for q in graph.projections])
    for q in out.projections:
        q.delay = depth[q.target] - depth[q.source] - 1 + int(q.delay)
        if q.delay < 0:
            raise InputError(f"projection '{q.name}': its delay {q.delay} would be negative")
    out.meta["depth"] = depth
    return out
