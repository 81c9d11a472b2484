"""A plan as JSON (`plan_to_dict`) and as a table for people (`plan_table`, Markdown)."""
from __future__ import annotations

from .partition import RESOURCES, Plan

FORMAT = "snnchip-plan"
_HEAD = {"neurons": "neurons", "fan_in": "in-axons", "memory": "syn. memory", "fan_out": "out-axons"}


def plan_to_dict(plan: Plan, *, cores: bool = True) -> dict:
    """JSON-ready plan: totals, per population (cut, cores, peak and mean utilisation per resource, limiting
    resource, or why it cannot be mapped), per projection (synapses, weight bits), per core (with `cores`), and the
    chip figures it relied on that are derived or assumed rather than published."""
    chip = plan.chip
    out = {
        "format": FORMAT, "version": 1,
        "chip": chip.name, "chip_title": chip.title,
        "conv_weights": plan.conv_weights, "weight_bits": plan.weight_bits,
        "cores": plan.cores, "chips": plan.chips, "cores_per_chip": int(chip.cores_per_chip),
        "mappable": plan.mappable,
        "limits": {"neurons": int(chip.neurons_per_core), "fan_in": int(chip.fan_in_axons_per_core),
                   "memory": int(chip.synaptic_memory_bits_per_core), "fan_out": int(chip.fan_out_axons_per_core)},
        "populations": [], "projections": [], "unmapped": [],
        "warnings": list(plan.warnings),
        "unpublished_figures": chip.unpublished(),
    }
    for p in plan.populations:
        row = {"name": p.name, "shape": list(p.shape), "neurons": p.neurons, "cores": len(p.cores),
               "tile": None if p.tile is None else list(p.tile), "limiting": p.limiting, "reason": p.reason}
        if p.mapped:
            peak = p.peak()
            row["peak"] = {r: max(c.used[r] for c in p.cores) for r in RESOURCES}
            row["peak_utilisation"] = {r: round(peak[r], 6) for r in RESOURCES}
            row["mean_utilisation"] = {r: round(v, 6) for r, v in p.mean().items()}
        else:
            out["unmapped"].append({"population": p.name, "reason": p.reason})
        out["populations"].append(row)
    for q in plan.projections:
        out["projections"].append({"name": q.name, "source": q.source, "target": q.target, "kind": q.kind,
                                   "synapses": q.synapses, "weight_bits_needed": q.weight_bits_needed,
                                   "weight_bits": q.weight_bits, "delay_max": q.delay_max,
                                   "message_bits": q.message_bits})
    if cores:
        out["core_list"] = [{"population": c.population, "tile": list(c.tile), "used": c.used,
                             "utilisation": {r: round(v, 6) for r, v in c.utilisation.items()}}
                            for p in plan.populations for c in p.cores]
    return out


def plan_table(plan: Plan, title: str = "") -> str:
    """Markdown: one row per population (cores, cut, peak use of each resource as % of the core's limit, the
    limiting resource), the totals, what cannot be mapped and the unpublished figures used."""
    chip = plan.chip
    lines = []
    if title:
        lines += [f"# Resource plan: {title}", ""]
    bits = "as the weights need" if plan.weight_bits is None else f"{plan.weight_bits} bits"
    lines += [f"{chip.title}; weights stored {bits}, conv weights {plan.conv_weights}.", "",
              "| population | shape | neurons | cores | cut (per core) | " + " | ".join(
                  f"{_HEAD[r]} %" for r in RESOURCES) + " | limiting |",
              "|---|---|---:|---:|---|" + "---:|" * len(RESOURCES) + "---|"]
    for p in plan.populations:
        shape = "x".join(str(s) for s in p.shape)
        if not p.mapped:
            lines.append(f"| {p.name} | {shape} | {p.neurons} | - | - |" + " - |" * len(RESOURCES)
                         + f" cannot be mapped: {p.reason} |")
            continue
        peak = p.peak()
        cut = "x".join(str(t) for t in p.tile)
        lines.append(f"| {p.name} | {shape} | {p.neurons} | {len(p.cores)} | {cut} | "
                     + " | ".join(f"{100 * peak[r]:.1f}" for r in RESOURCES) + f" | {_HEAD[p.limiting]} |")
    lines += ["", f"**{plan.cores} cores on {plan.chips} chip(s)** ({chip.cores_per_chip} cores per chip)"
              + ("" if plan.mappable else
                 f"; {sum(not p.mapped for p in plan.populations)} population(s) cannot be mapped")]
    for w in plan.warnings:
        lines.append(f"- warning: {w}")
    unpublished = chip.unpublished()
    if unpublished:
        lines += ["", "Figures not published as such (derived or assumed; see the chip file):"]
        lines += [f"- {u['figure']} = {u['value']}: {u['note']}" for u in unpublished]
    return "\n".join(lines) + "\n"
