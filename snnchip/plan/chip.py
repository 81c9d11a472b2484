"""Chip descriptions as data: the per-core limits a resource plan partitions a network under.

A chip file (`chips/*.json`, or a file of your own; see docs/plan.md) holds `sources` (key -> citation) and
`figures`, each `{"value", "source", "label", "published", "note"?}`: `label` is what the source calls the figure,
`published` says whether the value is a figure the source states (false: derived from one, or assumed, as `note`
explains). The plan reports every unpublished figure it relied on.

Figures (all required):

    cores_per_chip, neurons_per_core                      counts
    synaptic_memory_bits_per_core                         bits of synaptic memory per core
    fan_in_axons_per_core, fan_out_axons_per_core         input / output axons per core
    memory_word_bits, synapses_per_group, group_header_bits
                                                          how a synapse list is stored: entries of at most
                                                          `synapses_per_group` synapses plus a header, each
                                                          rounded up to whole words
    weight_bits_max, index_bits_min                       stored bits per weight (sign included), of a sparse
                                                          synapse's target index
    delay_max                                             largest synaptic delay, steps
    message_bits_max                                      largest graded payload (0: binary spikes only)
    programmable_neurons                                  soft reset and graded relays need programmable neurons

Optional figure (a non-negative number; the built-in chips leave it out, their sources publish none):

    static_energy_per_core_step_pj                        static (leakage and idle) energy of one active core
                                                          for one time step, pJ: snn-energy's static cost
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..fileio import load_named_json

CHIP_DIR = Path(__file__).with_name("chips")
FORMAT = "snnchip-chip"
COUNTS = ("cores_per_chip", "neurons_per_core", "synaptic_memory_bits_per_core", "fan_in_axons_per_core",
          "fan_out_axons_per_core", "memory_word_bits", "synapses_per_group", "weight_bits_max")
NON_NEGATIVE = ("group_header_bits", "index_bits_min", "delay_max", "message_bits_max")
FLAGS = ("programmable_neurons",)
OPTIONAL = ("static_energy_per_core_step_pj",)


@dataclass(frozen=True)
class Figure:
    key: str
    value: int | bool
    source: str
    label: str
    published: bool
    note: str = ""


@dataclass(frozen=True)
class Chip:
    """A chip's per-core limits (`figures`), with the citation of each figure's source."""
    name: str
    title: str
    sources: dict[str, str]
    figures: dict[str, Figure]
    path: str

    def __getattr__(self, key: str):
        figures = self.__dict__.get("figures", {})
        if key in figures:
            return figures[key].value
        raise AttributeError(key)

    def unpublished(self) -> list[dict]:
        """The figures that are derived or assumed rather than stated by their source."""
        return [{"figure": f.key, "value": f.value, "source": self.sources[f.source], "label": f.label,
                 "note": f.note} for f in self.figures.values() if not f.published]

    def as_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "path": self.path, "sources": dict(self.sources),
                "figures": {k: {"value": f.value, "source": f.source, "label": f.label, "published": f.published,
                                **({"note": f.note} if f.note else {})} for k, f in self.figures.items()}}


def builtin_chip_names() -> list[str]:
    return sorted(p.stem for p in CHIP_DIR.glob("*.json"))


def load_chip(spec: str) -> Chip:
    """A built-in chip by name ('loihi', 'loihi2') or a chip file; InputError (one line) if malformed."""
    data, path = load_named_json(spec, CHIP_DIR, "chip", "chip")
    return parse_chip(data, str(path))


def parse_chip(data, where: str) -> Chip:
    """Validate a chip description (see the module docstring); `where` names it in errors."""
    def fail(msg: str):
        raise InputError(f"chip {where}: {msg}")

    if not isinstance(data, dict):
        fail("top level must be a JSON object")
    if data.get("format") != FORMAT:
        fail(f"'format' must be '{FORMAT}', got {data.get('format')!r}")
    for key in ("name", "title"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            fail(f"'{key}' must be a non-empty string")
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources or not all(isinstance(v, str) and v.strip()
                                                                 for v in sources.values()):
        fail("'sources' must be a non-empty object of key -> citation")
    raw = data.get("figures")
    if not isinstance(raw, dict):
        fail("'figures' must be an object of figure -> {\"value\", \"source\", \"label\", \"published\"}")
    def cited(key: str, fig: dict, value) -> Figure:
        if fig.get("source") not in sources:
            fail(f"figure '{key}': 'source' must be one of the keys of 'sources', got {fig.get('source')!r}")
        if not isinstance(fig.get("label"), str) or not fig["label"].strip():
            fail(f"figure '{key}': 'label' (what the source calls this figure) must be a non-empty string")
        if not isinstance(fig.get("published"), bool):
            fail(f"figure '{key}': 'published' must be true or false")
        if not fig["published"] and not (isinstance(fig.get("note"), str) and fig["note"].strip()):
            fail(f"figure '{key}': an unpublished figure needs a 'note' saying how it was obtained")
        return Figure(key, value, fig["source"], fig["label"], fig["published"], str(fig.get("note", "")))

    figures = {}
    for key in COUNTS + NON_NEGATIVE + FLAGS:
        fig = raw.get(key)
        if not isinstance(fig, dict):
            fail(f"figure '{key}' is missing")
        value = fig.get("value")
        if key in FLAGS:
            if not isinstance(value, bool):
                fail(f"figure '{key}': 'value' must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < (1 if key in COUNTS else 0):
            fail(f"figure '{key}': 'value' must be an integer >= {1 if key in COUNTS else 0}, got {value!r}")
        figures[key] = cited(key, fig, value)
    for key in OPTIONAL:
        fig = raw.get(key)
        if fig is None:
            continue
        value = fig.get("value") if isinstance(fig, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            fail(f"figure '{key}': 'value' must be a number >= 0, got {value!r}")
        figures[key] = cited(key, fig, value)
    unknown = sorted(set(raw) - set(figures))
    if unknown:
        fail(f"unknown figure(s) {', '.join(unknown)} (known: {', '.join(COUNTS + NON_NEGATIVE + FLAGS + OPTIONAL)})")
    return Chip(data["name"], data["title"], dict(sources), figures, where)
