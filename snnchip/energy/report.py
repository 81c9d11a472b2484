"""Energy reports: operation counts priced by energy models, as JSON, Markdown, and a self-contained HTML page.

`build_report(counts, pricings, ann_frames=..., meta=...)` turns `count.ActivityCounts` into a JSON-ready dict:
per synaptic layer (neurons of its source, synapses, firing rate and spikes of its source, synaptic ops, MACs,
ANN FLOPs, SNN and ANN energy under each pricing, ANN/SNN ratio), per neuron layer (spikes, firing rate, neuron
updates and their energy), and totals per sample and per time step. Energies are in pJ.

Conventions: firing rate r = #spikes / (#neurons * T) (seed 000); ANN FLOPs = multiply-accumulates of one frame
times `ann_frames` frames per sample (1 for a static image, T for event streams whose every frame an ANN
processes, as seed 000 does for CIFAR10-DVS); the ratio is E(ANN) / E(SNN) as in seed 000's Table V.
"""
from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from typing import Optional

from . import neurobench
from .count import ActivityCounts
from .energy_models import Pricing
from .flops import PAPER_ROLES


def _price(pricing: Pricing, side: str, **amounts) -> tuple[Optional[float], list[str]]:
    """Energy (pJ) of the amounts a pricing covers, and the non-zero quantities it does not price. None when
    the pricing covers none of the amounts, or only zero ones while others are non-zero (nothing it can say)."""
    table = pricing.snn if side == "snn" else pricing.ann
    total, unpriced, priced = 0.0, [], []
    for quantity, amount in amounts.items():
        if quantity in table:
            total += amount * table[quantity].pj
            priced.append(amount)
        elif amount:
            unpriced.append(quantity)
    if not priced or (unpriced and not any(priced)):
        return None, unpriced
    return total, unpriced


def _ratio(ann: Optional[float], snn: Optional[float]) -> Optional[float]:
    return ann / snn if ann is not None and snn else None


@dataclass
class AnnBaseline:
    """The network the ANN side of the report prices: `layers` (name, role, ann_flops per frame, params) and
    where they come from (`source`, one line)."""
    source: str
    layers: list[dict]


def baseline_of_layers(layers, source: str) -> AnnBaseline:
    """An `AnnBaseline` from `flops.SynapticLayer`s (the trained model's architecture)."""
    return AnnBaseline(source, [{"name": l.name, "role": l.role, "ann_flops": l.ann_flops, "params": l.params}
                                for l in layers])


def build_report(counts: ActivityCounts, pricings: list[Pricing], *, ann_frames: int, meta: dict,
                 ann_baseline: Optional[AnnBaseline] = None) -> dict:
    """The report dict (see module docstring); values per sample unless a key says otherwise.

    ann_baseline: the ANN the SNN is compared with (totals' `ann_flops`, `params` and ANN energy); default the
    counted layers themselves (a checkpoint's own layers, or a graph's projections as dense layers)."""
    n, T = counts.samples, counts.steps
    if ann_baseline is None:
        ann_baseline = AnnBaseline(
            "the model's own layers" if counts.origin == "model" else
            "the deployment graph's projections as dense layers (the file records no model architecture)",
            [{"name": l.name, "role": l.role, "ann_flops": l.synapses, "params": l.params} for l in counts.layers])
    neuron_rows, rate = [], {}
    for nl in counts.neuron_layers:
        r = nl.spikes / (nl.neurons * T * n) if nl.neurons else 0.0
        rate[nl.name] = r
        updates, active = nl.updates / n, nl.active_updates / n
        row = {"name": nl.name, "shape": list(nl.shape), "neurons": nl.neurons, "spikes": nl.spikes / n,
               "firing_rate": r, "neuron_updates": updates, "active_updates": active, "energy_pj": {}}
        for p in pricings:
            e, _ = _price(p, "snn", neuron_update_active=active, neuron_update_inactive=updates - active,
                          spike=nl.spikes / n)
            row["energy_pj"][p.name] = e
        neuron_rows.append(row)
    spikes_of = {nl.name: nl.spikes / n for nl in counts.neuron_layers}

    layer_rows = []
    for layer in counts.layers:
        synops, macs = layer.synops / n, layer.macs / n
        ann_flops = layer.synapses * ann_frames
        row = {"name": layer.name, "kind": layer.kind, "role": layer.role, "source": layer.source,
               "target": layer.target, "input": "spikes" if layer.spike_driven else "graded",
               "neurons": layer.neurons, "synapses": layer.synapses, "params": layer.params,
               # a spiking input population is no neuron layer of the model; its spikes are the events
               "spikes": spikes_of.get(layer.source, layer.events / n) if layer.spike_driven else None,
               "firing_rate": rate.get(layer.source) if layer.spike_driven else None,
               "input_events": layer.events / n, "payload_bits": layer.payload_bits / n,
               "synops": synops, "macs": macs, "ann_flops": ann_flops,
               "energy_pj": {}}
        for p in pricings:
            snn, unpriced = _price(p, "snn", synop=synops, mac=macs)
            ann, _ = _price(p, "ann", mac=ann_flops)
            row["energy_pj"][p.name] = {"snn": snn, "ann": ann, "ratio": _ratio(ann, snn), "unpriced": unpriced}
        layer_rows.append(row)

    neurons_total = sum(nl.neurons for nl in counts.neuron_layers)
    spikes_total = sum(nl.spikes for nl in counts.neuron_layers) / n
    per_sample = {
        "neurons": neurons_total, "spikes": spikes_total,
        "firing_rate": spikes_total / (neurons_total * T) if neurons_total else 0.0,
        "synops": sum(r["synops"] for r in layer_rows), "macs": sum(r["macs"] for r in layer_rows),
        "graded_events": sum(r["input_events"] for r in layer_rows if r["input"] == "graded"),
        "payload_bits": sum(r["payload_bits"] for r in layer_rows),
        "neuron_updates": sum(r["neuron_updates"] for r in neuron_rows),
        "active_updates": sum(r["active_updates"] for r in neuron_rows),
        "ann_flops": sum(b["ann_flops"] for b in ann_baseline.layers) * ann_frames,
        "synapses": sum(r["synapses"] for r in layer_rows),
        "params": sum(b["params"] for b in ann_baseline.layers),
    }
    energy = {}
    for p in pricings:
        snn_parts = [r["energy_pj"][p.name]["snn"] for r in layer_rows] + [r["energy_pj"][p.name] for r in neuron_rows]
        snn = sum(e for e in snn_parts if e is not None) if any(e is not None for e in snn_parts) else None
        ann_parts = [_price(p, "ann", mac=b["ann_flops"] * ann_frames)[0] for b in ann_baseline.layers]
        ann = sum(e for e in ann_parts if e is not None) if any(e is not None for e in ann_parts) else None
        _, unpriced = _price(p, "snn", synop=per_sample["synops"], mac=per_sample["macs"],
                             neuron_update_active=per_sample["active_updates"],
                             neuron_update_inactive=per_sample["neuron_updates"] - per_sample["active_updates"],
                             spike=per_sample["spikes"])
        energy[p.name] = {"snn": snn, "ann": ann, "ratio": _ratio(ann, snn), "unpriced_snn": unpriced,
                          "description": p.description}
    per_step = {k: (v / T if k not in ("neurons", "firing_rate", "synapses", "params") else v)
                for k, v in per_sample.items()}
    per_step["ann_flops"] = per_sample["ann_flops"] / ann_frames

    report = {
        "tool": "snn-energy", **meta, "origin": counts.origin, "samples": n, "T": T, "ann_frames": ann_frames,
        "conventions": {
            "firing_rate": "#spikes / (#neurons * T) (seed 000)",
            "synops": "spikes x fan-out (one accumulate per synapse reached)",
            "macs": "non-zero graded inputs x fan-out (e.g. the encoding layer, sigma-delta payloads)",
            "graded_events": "non-zero graded payloads arriving (relays, sigma-delta neurons)",
            "payload_bits": "graded events x their projection's message bits",
            "ann_flops": f"multiply-accumulates of the same network as an ANN, one per synapse and frame, "
                         f"x {ann_frames} frame(s) per sample",
            "ratio": "E(ANN) / E(SNN)",
            "energy_unit": "pJ",
        },
        "pricings": {p.name: {"description": p.description,
                              "snn": {q: {"pJ": f.pj, "figure": f.key, "label": f.label} for q, f in p.snn.items()},
                              "ann": {q: {"pJ": f.pj, "figure": f.key, "label": f.label} for q, f in p.ann.items()}}
                     for p in pricings},
        "layers": layer_rows,
        "neuron_layers": neuron_rows,
        "totals": {"per_sample": per_sample, "per_step": per_step, "energy_pj_per_sample": energy,
                   "energy_pj_per_step": {k: {"snn": None if v["snn"] is None else v["snn"] / T,
                                              "ann": None if v["ann"] is None else v["ann"] / T,
                                              "ratio": v["ratio"]} for k, v in energy.items()}},
    }
    by_role: dict = {}
    for b in ann_baseline.layers:
        by_role[b["role"]] = by_role.get(b["role"], 0) + b["ann_flops"]
    report["ann_baseline"] = {
        "source": ann_baseline.source, "flops_per_frame": sum(b["ann_flops"] for b in ann_baseline.layers),
        "params": per_sample["params"], "by_role": by_role,
        "layer_rows": "each layer row's ann_flops is that layer (or projection) as a dense ANN layer; the totals "
                      "are the baseline's"}
    report["neurobench"] = neurobench.block(counts)
    if all(r["role"] is not None for r in layer_rows):
        report["paper_convention"] = paper_convention(report, pricings)
    return report


def paper_convention(report: dict, pricings: list[Pricing]) -> dict:
    """Seed 000 Table V: SyOPs and FLOPs of the residual-path convs and the FC only, priced AC / MAC."""
    rows = [r for r in report["layers"] if r["role"] in PAPER_ROLES]
    synops = sum(r["synops"] for r in rows)
    flops = sum(r["ann_flops"] for r in rows)
    out = {"roles": list(PAPER_ROLES), "synops": synops, "ann_flops": flops,
           "firing_rate": report["totals"]["per_sample"]["firing_rate"], "energy_pj": {}}
    for p in pricings:
        snn, _ = _price(p, "snn", synop=synops)
        ann, _ = _price(p, "ann", mac=flops)
        out["energy_pj"][p.name] = {"snn": snn, "ann": ann, "ratio": _ratio(ann, snn)}
    return out


# -- formatting ------------------------------------------------------------------------------------------
def _scaled(value: float, units, digits: int) -> str:
    """`value` in the largest of `units` ((factor, name), ascending) that it reaches once rounded to `digits`
    significant digits, so 999999 is '1 M', not '1e+03 k'."""
    rounded = float(f"{value:.{digits}g}")
    factor, name = units[0]
    for f, n in units[1:]:
        if abs(rounded) >= f:
            factor, name = f, n
    return f"{value / factor:.{digits}g} {name}".rstrip()


def si(value: Optional[float], unit: str = "") -> str:
    """1234567 -> '1.23 M' (with unit); None -> 'n/a'."""
    if value is None:
        return "n/a"
    return _scaled(value, ((1, unit), (1e3, "k" + unit), (1e6, "M" + unit), (1e9, "G" + unit),
                           (1e12, "T" + unit)), 3)


def energy(pj: Optional[float]) -> str:
    """pJ -> the most readable of pJ, nJ, uJ, mJ, J."""
    if pj is None:
        return "n/a"
    return _scaled(pj, ((1, "pJ"), (1e3, "nJ"), (1e6, "µJ"), (1e9, "mJ"), (1e12, "J")), 4)


def _ratio_text(r: Optional[float]) -> str:
    return "n/a" if r is None else f"{r:.2f}"


def _tables(report: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the report's tables, shared by Markdown and HTML."""
    names = list(report["pricings"])
    tables = []
    head = ["pricing", "E(SNN) / sample", "E(ANN) / sample", "E(ANN)/E(SNN)", "E(SNN) / step", "not priced"]
    rows = []
    for name in names:
        e = report["totals"]["energy_pj_per_sample"][name]
        step = report["totals"]["energy_pj_per_step"][name]
        rows.append([name, energy(e["snn"]), energy(e["ann"]), _ratio_text(e["ratio"]), energy(step["snn"]),
                     ", ".join(e["unpriced_snn"]) or "-"])
    tables.append(("Energy per sample", head, rows))
    ps, st = report["totals"]["per_sample"], report["totals"]["per_step"]
    keys = ["neurons", "spikes", "firing_rate", "synops", "macs", "neuron_updates", "active_updates", "ann_flops",
            "synapses", "params"]
    tables.append(("Totals", ["quantity", "per sample", "per time step"],
                   [[k, f"{ps[k]:.4f}" if k == "firing_rate" else si(ps[k]),
                     f"{st[k]:.4f}" if k == "firing_rate" else si(st[k])] for k in keys]))
    if "paper_convention" in report:
        pc = report["paper_convention"]
        rows = [[name, si(pc["ann_flops"]), energy(pc["energy_pj"][name]["ann"]), si(pc["synops"]),
                 energy(pc["energy_pj"][name]["snn"]), _ratio_text(pc["energy_pj"][name]["ratio"])]
                for name in names]
        tables.append(("Seed 000 Table V convention (residual-path convs + FC)",
                       ["pricing", "FLOPs", "E(ANN)", "SyOPs", "E(SNN)", "E(ANN)/E(SNN)"], rows))
    first = names[0]
    head = ["layer", "role", "input", "source neurons", "synapses", "firing rate", "spikes", "synops", "MACs",
            "ANN FLOPs", f"E(SNN) {first}", f"E(ANN) {first}", "ratio"]
    rows = []
    for r in report["layers"]:
        e = r["energy_pj"][first]
        rows.append([r["name"], r["role"] or "-", r["input"], si(r["neurons"]), si(r["synapses"]),
                     "-" if r["firing_rate"] is None else f"{r['firing_rate']:.4f}", si(r["spikes"]),
                     si(r["synops"]), si(r["macs"]), si(r["ann_flops"]), energy(e["snn"]), energy(e["ann"]),
                     _ratio_text(e["ratio"])])
    tables.append(("Synaptic layers (per sample)", head, rows))
    rows = [[r["name"]] + [f"{energy(r['energy_pj'][name]['snn'])} / {energy(r['energy_pj'][name]['ann'])} "
                           f"({_ratio_text(r['energy_pj'][name]['ratio'])})" for name in names]
            for r in report["layers"]]
    tables.append(("Energy per synaptic layer and sample under each pricing: E(SNN) / E(ANN) (ratio)",
                   ["layer"] + names, rows))
    head = ["neuron layer", "neurons", "spikes", "firing rate", "updates", "active"] + \
           [f"E {name}" for name in names]
    rows = [[r["name"], si(r["neurons"]), si(r["spikes"]), f"{r['firing_rate']:.4f}", si(r["neuron_updates"]),
             si(r["active_updates"])] + [energy(r["energy_pj"][name]) for name in names]
            for r in report["neuron_layers"]]
    tables.append(("Neuron layers (per sample; energy of neuron updates and spike sends)", head, rows))
    if "comparison" in report:
        c = report["comparison"]
        head = ["population", "spikes (model)", "spikes (sim)", "neurons that differ", "synops (model)",
                "synops (sim)", "difference", "predicted by spike differences", "difference %"]
        rows = [[r["population"], si(r["spikes_model"]), si(r["spikes_sim"]), si(r["neurons_differing"]),
                 si(r["synops_model"]), si(r["synops_sim"]), si(r["synops_diff"]), si(r["synops_diff_predicted"]),
                 f"{r['synops_diff_percent']:.3f}"] for r in c["layers"]]
        tables.append((c["title"], head, rows))
    return tables


def _header_lines(report: dict) -> list[str]:
    origin = "the float model in training" if report["origin"] == "model" else "the simulator's counters"
    return [f"network: {report.get('network', '?')} ({report.get('network_kind', '?')}), counts from {origin}",
            f"dataset: {report.get('dataset', '?')} ({report.get('split', '?')}), samples: {report['samples']}, "
            f"T = {report['T']}, ANN frames per sample: {report['ann_frames']}",
            "firing rate = #spikes / (#neurons T); synops = spikes x fan-out; MACs = non-zero graded inputs x "
            "fan-out; ANN FLOPs: one multiply-accumulate per synapse and frame; ratio = E(ANN) / E(SNN)"]


def _figure_table(report: dict) -> tuple[str, list[str], list[list[str]]]:
    rows = []
    for name, p in report["pricings"].items():
        for side in ("snn", "ann"):
            for quantity, f in p[side].items():
                rows.append([name, f"{side.upper()} {quantity}", f"{f['pJ']:g}", f["label"]])
    return ("Energy figures (pJ per operation, labelled as their sources label them)",
            ["pricing", "operation", "pJ", "source's figure"], rows)


def to_markdown(report: dict) -> str:
    out = ["# Energy report", ""] + [f"- {line}" for line in _header_lines(report)] + [""]
    for title, head, rows in _tables(report) + [_figure_table(report)]:
        out += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def stage_rates(neuron_layers: list[dict]) -> dict[int, dict[str, float]]:
    """Firing rate of `stages.<s>.<b>.lif1` / `lif2` averaged over the blocks of each stage (neuron-weighted):
    {stage: {'lif1': r, 'lif2': r}}; empty when the layer names do not follow the model contract."""
    sums: dict[int, dict[str, list[float]]] = {}
    for r in neuron_layers:
        match = re.fullmatch(r"stages\.(\d+)\.\d+\.(lif[12])", r["name"])
        if match:
            acc = sums.setdefault(int(match.group(1)), {}).setdefault(match.group(2), [0.0, 0.0])
            acc[0] += r["spikes"]
            acc[1] += r["neuron_updates"]  # neurons * T
    return {s: {k: v[0] / v[1] for k, v in d.items() if v[1]} for s, d in sorted(sums.items())}


LABEL_PITCH_IN = 0.16   # inches of x axis per layer label: 7-point text set vertically needs ~0.1 in


def layer_axis_width(n: int) -> float:
    """Width (inches) of a figure with one x label per layer: at least 11, wider for deep networks."""
    return max(11.0, 1.5 + LABEL_PITCH_IN * n)


def label_layers(ax, names: list) -> None:
    """One vertical 7-point label per layer, so that labels of neighbouring layers never overlap."""
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_xlim(-0.75, len(names) - 0.25)


def _figures(report: dict) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of the report's plots."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig) -> str:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        return base64.b64encode(buf.getvalue()).decode()

    figs = []
    nl = report["neuron_layers"]
    fig, ax = plt.subplots(figsize=(layer_axis_width(len(nl)), 3.6))
    ax.plot(range(len(nl)), [r["firing_rate"] for r in nl], "o-")
    label_layers(ax, [r["name"] for r in nl])
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    ax.set_title(f"Layer-wise firing rate (overall {report['totals']['per_sample']['firing_rate']:.4f})")
    ax.grid(alpha=0.3)
    figs.append(("Layer-wise firing rate, r = #spikes / (#neurons T), as seed 000 Fig. 3a", png(fig)))

    stages = stage_rates(nl)
    if stages:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        xs = list(range(len(stages)))
        for key, marker in (("lif1", "^-"), ("lif2", "s-")):
            ax.plot(xs, [stages[s].get(key, float("nan")) for s in stages], marker, label=f"{key} (stage mean)")
        ax.set_xticks(xs, [f"stage {s + 1}" for s in stages])
        ax.set_ylabel("firing rate")
        ax.set_title("Firing rate of the two LIFs of each residual path, per stage")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figs.append(("Per stage, the first (triangles) and second (squares) LIF of the residual paths, averaged "
                     "over the stage's blocks as in seed 000 Fig. 3a", png(fig)))

    layers = report["layers"]
    x = list(range(len(layers)))
    fig, ax = plt.subplots(figsize=(layer_axis_width(len(layers)), 4))
    w = 0.28
    ax.bar([i - w for i in x], [max(r["synops"], 1e-9) for r in layers], w, label="synaptic ops (AC)")
    ax.bar(x, [max(r["macs"], 1e-9) for r in layers], w, label="MACs (graded inputs)")
    ax.bar([i + w for i in x], [max(r["ann_flops"], 1e-9) for r in layers], w, label="ANN FLOPs (MAC)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1)
    label_layers(ax, [r["name"] for r in layers])
    ax.set_ylabel("operations per sample")
    ax.set_title("Operations per layer")
    ax.legend(fontsize=8)
    figs.append(("Operations per synaptic layer and sample", png(fig)))

    priced = [n for n in report["pricings"] if any(r["energy_pj"][n]["ann"] is not None for r in layers)]
    if priced:
        name = priced[0]
        fig, ax = plt.subplots(figsize=(layer_axis_width(len(layers)), 4))
        ax.bar([i - 0.2 for i in x], [(r["energy_pj"][name]["snn"] or 0) / 1e6 for r in layers], 0.4, label="SNN")
        ax.bar([i + 0.2 for i in x], [(r["energy_pj"][name]["ann"] or 0) / 1e6 for r in layers], 0.4, label="ANN")
        label_layers(ax, [r["name"] for r in layers])
        ax.set_ylabel("µJ per sample")
        ax.set_title(f"Energy per layer, {name}")
        ax.legend(fontsize=8)
        figs.append((f"Energy per synaptic layer under {name}", png(fig)))

    totals = report["totals"]["energy_pj_per_sample"]
    names = list(totals)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    xs = list(range(len(names)))
    ax.bar([i - 0.2 for i in xs], [(totals[n]["snn"] or 0) / 1e6 for n in names], 0.4, label="SNN")
    ax.bar([i + 0.2 for i in xs], [(totals[n]["ann"] or 0) / 1e6 for n in names], 0.4, label="ANN")
    for i, n in enumerate(names):
        if totals[n]["ratio"] is not None:
            ax.annotate(f"x{totals[n]['ratio']:.1f}", (i, max(totals[n]["snn"] or 0, totals[n]["ann"] or 0) / 1e6),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("µJ per sample (log)")
    ax.set_title("SNN vs ANN energy per sample (n/a bars: not priced)")
    ax.legend(fontsize=8)
    figs.append(("SNN vs ANN energy per sample under each pricing", png(fig)))
    return figs


def to_html(report: dict) -> str:
    """A self-contained page: header, plots as embedded PNG, tables."""
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Energy report</title><style>",
             "body{font-family:sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;"
             "font-size:12px;margin-bottom:18px}td,th{border:1px solid #bbb;padding:3px 6px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}th{background:#eee}figure{margin:12px 0}"
             "figcaption{font-size:13px;color:#444}img{max-width:100%}li{font-size:13px}",
             "</style></head><body><h1>Energy report</h1><ul>"]
    parts += [f"<li>{esc(line)}</li>" for line in _header_lines(report)]
    parts.append("</ul>")
    for caption, data in _figures(report):
        parts.append(f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    for title, head, rows in _tables(report) + [_figure_table(report)]:
        parts.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
