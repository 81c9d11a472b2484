"""Energy models as data: JSON files of per-operation energies (pJ), each figure labelled as its source labels it.

A model file (see `models/*.json` and docs/energy.md) holds `figures` (key -> {"pJ", "label", optional
"derived_from": keys whose sum it is}) and `profiles`, each mapping the counted quantities to figures:

    snn: synop (spike-driven accumulate), mac (graded input x weight), neuron_update_active,
         neuron_update_inactive, spike (one send per output spike)
    ann: mac (one multiply-accumulate of the equivalent ANN)

A quantity a profile leaves out is not priced by it (reported as such, never as zero energy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..fileio import load_named_json

MODEL_DIR = Path(__file__).with_name("models")
FORMAT = "snnchip-energy-model"
SNN_QUANTITIES = ("synop", "mac", "neuron_update_active", "neuron_update_inactive", "spike")
ANN_QUANTITIES = ("mac",)


@dataclass(frozen=True)
class Figure:
    key: str
    pj: float
    label: str


@dataclass(frozen=True)
class Pricing:
    """One profile of one model: energy per counted operation, pJ."""
    model: str
    profile: str
    description: str
    snn: dict[str, Figure]
    ann: dict[str, Figure]

    @property
    def name(self) -> str:
        return f"{self.model}/{self.profile}"


@dataclass(frozen=True)
class EnergyModel:
    name: str
    title: str
    source: str
    figures: dict[str, Figure]
    pricings: tuple[Pricing, ...]
    path: str

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "source": self.source, "path": self.path,
                "figures": {k: {"pJ": f.pj, "label": f.label} for k, f in self.figures.items()},
                "profiles": {p.profile: {"description": p.description,
                                         "snn": {q: f.key for q, f in p.snn.items()},
                                         "ann": {q: f.key for q, f in p.ann.items()}} for p in self.pricings}}


def builtin_model_names() -> list[str]:
    return sorted(p.stem for p in MODEL_DIR.glob("*.json"))


def load_energy_model(spec: str) -> EnergyModel:
    """A built-in model by name ('cmos45nm', 'loihi') or a model file path; InputError (one line) if malformed."""
    data, path = load_named_json(spec, MODEL_DIR, "energy model", "model")
    return parse_energy_model(data, str(path))


def parse_energy_model(data, where: str) -> EnergyModel:
    """Validate the JSON structure of a model file (see module docstring); `where` names it in errors."""
    def fail(msg: str):
        raise InputError(f"energy model {where}: {msg}")

    if not isinstance(data, dict):
        fail("top level must be a JSON object")
    if data.get("format") != FORMAT:
        fail(f"'format' must be '{FORMAT}', got {data.get('format')!r}")
    if data.get("unit") != "pJ":
        fail(f"'unit' must be 'pJ', got {data.get('unit')!r}")
    for key in ("name", "title", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            fail(f"'{key}' must be a non-empty string")
    raw_figures = data.get("figures")
    if not isinstance(raw_figures, dict) or not raw_figures:
        fail("'figures' must be a non-empty object of key -> {\"pJ\": number, \"label\": text}")
    figures = {}
    for key, fig in raw_figures.items():
        if not isinstance(fig, dict):
            fail(f"figure '{key}' must be an object")
        pj = fig.get("pJ")
        if isinstance(pj, bool) or not isinstance(pj, (int, float)) or not math.isfinite(pj) or pj < 0:
            fail(f"figure '{key}': 'pJ' must be a finite non-negative number, got {pj!r}")
        if not isinstance(fig.get("label"), str) or not fig["label"].strip():
            fail(f"figure '{key}': 'label' (what the source calls this figure) must be a non-empty string")
        figures[key] = Figure(key, float(pj), fig["label"])
    for key, fig in raw_figures.items():
        parts = fig.get("derived_from")
        if parts is None:
            continue
        if not isinstance(parts, list) or not parts or any(p not in figures for p in parts):
            fail(f"figure '{key}': 'derived_from' must list known figure keys, got {parts!r}")
        total = sum(figures[p].pj for p in parts)
        if not math.isclose(total, figures[key].pj, rel_tol=1e-9, abs_tol=1e-12):
            fail(f"figure '{key}': {figures[key].pj} pJ is not the sum of {parts} ({total} pJ)")
    raw_profiles = data.get("profiles")
    if not isinstance(raw_profiles, dict) or not raw_profiles:
        fail("'profiles' must be a non-empty object of profile -> {\"snn\": {...}, \"ann\": {...}}")
    pricings = []
    for profile, spec in raw_profiles.items():
        if not isinstance(spec, dict):
            fail(f"profile '{profile}' must be an object")
        sides = {}
        for side, allowed in (("snn", SNN_QUANTITIES), ("ann", ANN_QUANTITIES)):
            mapping = spec.get(side, {})
            if not isinstance(mapping, dict):
                fail(f"profile '{profile}': '{side}' must be an object of quantity -> figure key")
            for quantity, key in mapping.items():
                if quantity not in allowed:
                    fail(f"profile '{profile}': unknown {side} quantity '{quantity}' (known: {', '.join(allowed)})")
                if key not in figures:
                    fail(f"profile '{profile}': {side}.{quantity} refers to unknown figure '{key}'")
            sides[side] = {q: figures[k] for q, k in mapping.items()}
        if not sides["snn"]:
            fail(f"profile '{profile}': 'snn' prices nothing")
        pricings.append(Pricing(data["name"], profile, str(spec.get("description", "")), sides["snn"], sides["ann"]))
    return EnergyModel(data["name"], data["title"], data["source"], figures, tuple(pricings), where)
