"""Reports price the counts as the energy models say, follow seed 000's conventions, and render to MD / HTML."""
import base64
import json
import re

import pytest

from snnchip.energy.count import ActivityCounts, LayerCount, NeuronLayerCount
from snnchip.energy.energy_models import load_energy_model
from snnchip.energy.report import build_report, to_html, to_markdown

SAMPLES, T = 4, 5


def counts():
    """Two neuron layers and three synaptic layers (encoding MACs, a residual conv, the FC), totals over 4 samples."""
    neurons = [NeuronLayerCount("lif1", (2, 4, 4), spikes=64.0, updates=32 * T * SAMPLES, active_updates=500.0),
               NeuronLayerCount("head.lif", (4, 2, 2), spikes=20.0, updates=16 * T * SAMPLES, active_updates=300.0)]
    layers = [LayerCount("stem.conv", "input", None, "conv", "encoding", False, 18, 288, 18, events=40, macs=400.0),
              LayerCount("conv1", "lif1", None, "conv", "residual", True, 32, 1152, 72, events=64, synops=1000.0),
              LayerCount("shortcut", "graded", None, "conv", "shortcut", False, 32, 64, 8, events=160, macs=640.0),
              LayerCount("head.fc", "head.lif", None, "dense", "fc", True, 16, 40, 44, events=20, synops=200.0)]
    return ActivityCounts("model", SAMPLES, T, neurons, layers)


def pricings():
    return [p for name in ("cmos45nm", "loihi") for p in load_energy_model(name).pricings]


def test_energy_and_rates_follow_the_models():
    r = build_report(counts(), pricings(), ann_frames=T, meta={"network": "n", "dataset": "d"})
    conv1 = next(l for l in r["layers"] if l["name"] == "conv1")
    e = conv1["energy_pj"]["cmos45nm/fp32"]
    assert conv1["synops"] == 250.0 and conv1["firing_rate"] == 64 / (32 * T * SAMPLES)
    assert e["snn"] == pytest.approx(250 * 0.9) and e["ann"] == pytest.approx(1152 * T * 4.6)
    assert e["ratio"] == pytest.approx(1152 * T * 4.6 / (250 * 0.9))
    stem = next(l for l in r["layers"] if l["name"] == "stem.conv")
    assert stem["energy_pj"]["cmos45nm/fp32"]["snn"] == pytest.approx(100 * 4.6)
    assert stem["energy_pj"]["loihi/chip"]["snn"] is None and stem["energy_pj"]["loihi/chip"]["unpriced"] == ["mac"]
    ps = r["totals"]["per_sample"]
    assert ps["firing_rate"] == pytest.approx((64 + 20) / SAMPLES / ((32 + 16) * T))
    assert ps["synops"] == 300.0 and ps["macs"] == 260.0 and ps["ann_flops"] == (288 + 1152 + 64 + 40) * T
    assert r["totals"]["per_step"]["synops"] == pytest.approx(300.0 / T)
    loihi = r["totals"]["energy_pj_per_sample"]["loihi/chip"]
    updates = (32 + 16) * T
    active = (500 + 300) / SAMPLES
    assert loihi["snn"] == pytest.approx(300 * 23.6 + active * 81 + (updates - active) * 52 + 84 / SAMPLES * 1.7)
    assert loihi["ann"] is None and loihi["ratio"] is None and loihi["unpriced_snn"] == ["mac"]
    paper = r["paper_convention"]
    assert paper["synops"] == 300.0 and paper["ann_flops"] == (1152 + 40) * T
    assert paper["energy_pj"]["cmos45nm/fp32"]["ratio"] == pytest.approx((1152 + 40) * T * 4.6 / (300 * 0.9))
    json.dumps(r)


def test_markdown_and_html_render(tmp_path):
    r = build_report(counts(), pricings(), ann_frames=1, meta={"network": "n", "dataset": "d"})
    md = to_markdown(r)
    assert "| conv1 | residual | spikes |" in md and "pre-silicon" in md and "E(ANN)/E(SNN)" in md
    page = to_html(r)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4  # no stage plot: these layer names are not the model contract's
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page  # self-contained
