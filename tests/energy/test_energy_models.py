"""The built-in energy models hold their sources' figures, and malformed model files give one-line errors."""
import json

import pytest

from snnchip.errors import InputError
from snnchip.energy.cli import main
from snnchip.energy.energy_models import builtin_model_names, load_energy_model


def figures(name):
    return {k: f.pj for k, f in load_energy_model(name).figures.items()}


def test_cmos45nm_has_horowitz_figures_and_seed000_profile():
    f = figures("cmos45nm")
    assert (f["fp32_mac"], f["fp32_add"], f["fp32_mult"]) == (4.6, 0.9, 3.7)
    assert (f["int8_add"], f["int8_mult"], f["fp16_add"], f["fp16_mult"]) == (0.03, 0.2, 0.4, 1.1)
    model = load_energy_model("cmos45nm")
    fp32 = next(p for p in model.pricings if p.profile == "fp32")
    assert fp32.snn["synop"].pj == 0.9 and fp32.snn["mac"].pj == 4.6 and fp32.ann["mac"].pj == 4.6
    assert "Horowitz" in model.source and "ISSCC 2014" in model.source


def test_loihi_has_davies_figures_labelled_pre_silicon():
    model = load_energy_model("loihi")
    f = figures("loihi")
    assert (f["synaptic_spike_op"], f["neuron_update_active"], f["neuron_update_inactive"]) == (23.6, 81.0, 52.0)
    assert (f["spike_within_tile"], f["tile_hop_east_west"], f["tile_hop_north_south"]) == (1.7, 3.0, 4.0)
    assert all("pre-silicon" in fig.label for fig in model.figures.values())
    (chip,) = model.pricings
    assert chip.ann == {} and "mac" not in chip.snn  # Loihi prices no MAC: reported as not priced, not as 0


def test_builtin_names():
    assert {"cmos45nm", "loihi"} <= set(builtin_model_names())


def _write(tmp_path, data, name="m.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


GOOD = {"format": "snnchip-energy-model", "version": 1, "name": "mine", "title": "my chip", "source": "my lab",
        "unit": "pJ", "figures": {"acc": {"pJ": 0.5, "label": "accumulate"}},
        "profiles": {"p": {"snn": {"synop": "acc"}, "ann": {"mac": "acc"}}}}


def test_user_model_file_loads(tmp_path):
    model = load_energy_model(_write(tmp_path, GOOD))
    assert model.pricings[0].name == "mine/p" and model.pricings[0].snn["synop"].pj == 0.5


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("format"), "'format'"),
    (lambda d: d["figures"]["acc"].update(pJ=-1), "finite non-negative"),
    (lambda d: d["figures"]["acc"].update(pJ="x"), "finite non-negative"),
    (lambda d: d["figures"]["acc"].pop("label"), "'label'"),
    (lambda d: d["profiles"]["p"]["snn"].update(synop="nope"), "unknown figure 'nope'"),
    (lambda d: d["profiles"]["p"]["snn"].update(flops="acc"), "unknown snn quantity 'flops'"),
    (lambda d: d["figures"].update(mac={"pJ": 9, "label": "x", "derived_from": ["acc", "acc"]}), "not the sum"),
    (lambda d: d.update(unit="nJ"), "'unit'"),
])
def test_malformed_model_files(tmp_path, change, message):
    data = json.loads(json.dumps(GOOD))
    change(data)
    path = _write(tmp_path, data)
    with pytest.raises(InputError, match=message) as err:
        load_energy_model(path)
    assert path in str(err.value) and "\n" not in str(err.value)


def test_cli_reports_bad_model_file_in_one_line(tmp_path, capsys):
    bad = _write(tmp_path, "{not json", "bad.json")
    code = main(["net.pt", "--dataset", "digits-dvs", "--energy-model", bad])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: energy model") and bad in err and "\n" not in err
    code = main(["net.pt", "--dataset", "digits-dvs", "--energy-model", "nosuchmodel"])
    assert code == 2 and "no built-in model" in capsys.readouterr().err
