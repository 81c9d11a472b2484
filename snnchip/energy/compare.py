"""Float model in training vs the deployed (e.g. fixed-point) graph: do their synaptic ops differ only where
their spikes differ?

Both are counted on the graph's projections: the model's spikes through `count.graph_ops_from_model`, the graph's
from the simulator's counters (`count.count_graph`). Synaptic ops are linear in the spikes, so the difference of a
projection's ops must equal (spikes_sim - spikes_model) per source neuron times that neuron's fan-out; the
report gives, per source population, both differences and the share of the model's ops they make up.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .count import ActivityCounts, graph_ops_from_model, projection_fan_out


def compare(graph, activity, sim: ActivityCounts, model_samples: int) -> dict:
    """Per source population: spikes and synops of the model and of the simulation (per sample), the synops
    difference and the one predicted from the spike differences. `activity` from `count.run_model` on the
    same samples as `sim`. Raises ValueError if a spiking population has no model counterpart."""
    if model_samples != sim.samples:
        raise InputError(f"model saw {model_samples} samples, the simulation {sim.samples}")
    n = sim.samples
    names = graph.module_names
    model_ops = graph_ops_from_model(graph, activity)
    sim_maps = {nl.name: nl.spike_map for nl in sim.neuron_layers}
    sim_ops = {l.name: l for l in sim.layers}
    rows = []
    for pop in graph.populations:
        out = graph.out_of(pop.name)
        if pop.is_input or not out:
            continue
        module = names.get(pop.name)
        if module not in activity.spikes:
            raise InputError(f"population '{pop.name}' has no matching neuron module in the model")
        model_map = activity.spikes[module].numpy().reshape(-1).astype(np.int64)
        diff_map = sim_maps[pop.name].reshape(-1) - model_map
        fan = sum(projection_fan_out(graph, q) for q in out)
        synops_model = sum(model_ops[q.name]["synops"] for q in out)
        synops_sim = sum(sim_ops[q.name].synops for q in out)
        rows.append({
            "population": pop.name, "module": module,
            "spikes_model": float(model_map.sum()) / n, "spikes_sim": float(sim_maps[pop.name].sum()) / n,
            "neurons_differing": int(np.count_nonzero(diff_map)),
            "spike_count_l1": float(np.abs(diff_map).sum()) / n,
            "synops_model": synops_model / n, "synops_sim": synops_sim / n,
            "synops_diff": (synops_sim - synops_model) / n,
            "synops_diff_predicted": float(diff_map @ fan) / n,
            "synops_diff_percent": 100.0 * (synops_sim - synops_model) / synops_model if synops_model else 0.0,
        })
    total_model = sum(r["synops_model"] for r in rows)
    total_sim = sum(r["synops_sim"] for r in rows)
    return {
        "title": f"Float model vs {'fixed-point' if graph.fixed else 'float'} graph: synaptic ops by source "
                 f"population (per sample)",
        "graph": "fixed" if graph.fixed else "float",
        "layers": rows,
        "synops_model": total_model, "synops_sim": total_sim,
        "synops_diff_percent": 100.0 * (total_sim - total_model) / total_model if total_model else 0.0,
        "explained": all(np.isclose(r["synops_diff"], r["synops_diff_predicted"], rtol=0, atol=1e-6)
                         for r in rows),
    }
