"""The resource plan: every neuron on exactly one core, every core within the chip's limits, the limiting resource
named, fewer weight bits never more cores (lava-dl's PilotNet, written by Intel), what cannot be mapped reported
in one line, chip files validated, and `snn-deploy --plan` (JSON and table) without data or Lava."""
import copy
import json

import numpy as np
import pytest

from snnchip.deploy.cli import main
from snnchip.errors import InputError
from snnchip.formats.netx import read_netx
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.plan import load_chip, plan_graph, plan_table, plan_to_dict
from snnchip.plan.chip import CHIP_DIR, parse_chip
from snnchip.plan.partition import RESOURCES

from lava_dl_files import stock_netx_dir



def stock_file(name):
    return stock_netx_dir() / "gts" / name / "network.net"


def lif(**kw):
    return Neuron(threshold=kw.pop("threshold", 100), du=4095, dv=kw.pop("dv", 1024), **kw)


def small_chip(**limits):
    """Loihi 2's description with tiny per-core limits, so that a small graph needs many cores."""
    data = json.loads((CHIP_DIR / "loihi2.json").read_text())
    for key, value in {"neurons_per_core": 64, "fan_in_axons_per_core": 512,
                       "synaptic_memory_bits_per_core": 64 * 1024, "fan_out_axons_per_core": 256,
                       **limits}.items():
        data["figures"][key]["value"] = value
    return parse_chip(data, "small")


def conv_graph(rng, **neuron):
    pops = [Population("in", (2, 12, 12), lif(threshold=0), is_input=True),
            Population("c1", (8, 12, 12), lif(**neuron)),
            Population("c2", (8, 6, 6), lif()),
            Population("out", (10,), Neuron(threshold=None, du=4095, dv=0), is_output=True)]
    projs = [Projection("in->c1", "in", "c1", "conv", 2 * rng.integers(-20, 20, (8, 2, 3, 3)), padding=(1, 1)),
             Projection("c1->c2", "c1", "c2", "conv", 2 * rng.integers(-60, 60, (8, 8, 3, 3)), stride=(2, 2),
                        padding=(1, 1), delay=2),
             Projection("in->c2", "in", "c2", "conv", 2 * rng.integers(-5, 5, (8, 2, 3, 3)), stride=(2, 2),
                        padding=(1, 1), delay=3),
             Projection("c2->out", "c2", "out", "dense", 2 * rng.integers(-100, 100, (10, 288)))]
    return Graph(pops, projs, timing="pipelined", fixed=True)


def check_plan(plan, graph):
    limits = {"neurons": plan.chip.neurons_per_core, "fan_in": plan.chip.fan_in_axons_per_core,
              "memory": plan.chip.synaptic_memory_bits_per_core, "fan_out": plan.chip.fan_out_axons_per_core}
    for pop, p in zip(graph.populations, plan.populations):
        if not p.mapped:
            assert not p.cores and p.reason
            continue
        assert sum(c.used["neurons"] for c in p.cores) == pop.size          # every neuron on exactly one core
        assert len({c.tile for c in p.cores}) == len(p.cores)
        for c in p.cores:
            for r in RESOURCES:
                assert 0 <= c.used[r] <= limits[r], (p.name, r, c.used[r])
        assert p.limiting == max(RESOURCES, key=lambda r: max(c.utilisation[r] for c in p.cores))
    assert plan.cores == sum(len(p.cores) for p in plan.populations)
    assert plan.chips == -(-plan.cores // plan.chip.cores_per_chip)


def test_small_graph_is_cut_within_every_limit():
    graph = conv_graph(np.random.default_rng(0))
    plan = plan_graph(graph, small_chip())
    check_plan(plan, graph)
    assert plan.mappable and plan.cores > len(graph.populations)         # the tiny limits force cuts
    by = {p.name: p for p in plan.populations}
    assert len(by["in"].cores) == 6 and by["in"].limiting == "fan_out"   # 288 neurons fit 5 cores, their spikes don't
    assert by["c1"].limiting == "neurons" and by["c2"].limiting == "memory" and by["out"].limiting == "fan_in"
    total = {q.name: q.synapses for q in plan.projections}
    assert total["c2->out"] == 288 * 10
    report = plan_to_dict(plan)
    assert report["cores"] == plan.cores and len(report["core_list"]) == plan.cores
    assert json.loads(json.dumps(report)) == report
    assert {u["figure"] for u in report["unpublished_figures"]} >= {"synaptic_memory_bits_per_core"}
    assert f"**{plan.cores} cores on {plan.chips} chip(s)**" in plan_table(plan)


def test_fewer_weight_bits_need_less_memory_and_never_more_cores():
    graph = conv_graph(np.random.default_rng(1))
    chip = small_chip(fan_out_axons_per_core=4096, fan_in_axons_per_core=4096, neurons_per_core=256,
                      synaptic_memory_bits_per_core=8 * 1024)          # synapse memory binds
    plans = {bits: plan_graph(graph, chip, weight_bits=bits) for bits in (None, 6, 4, 2, 1)}
    memory = {b: sum(c.used["memory"] for p in pl.populations for c in p.cores) for b, pl in plans.items()}
    cores = [plans[b].cores for b in (None, 6, 4, 2, 1)]
    assert cores == sorted(cores, reverse=True) and cores[0] > cores[-1], cores
    assert {q.weight_bits for q in plans[2].projections} <= {1, 2}
    assert all(q.weight_bits <= q.weight_bits_needed for q in plans[4].projections)
    for plan in plans.values():
        check_plan(plan, graph)
    assert memory[None] > memory[4] > memory[1] > 0
    assert all(p.limiting == "memory" for p in plans[None].populations[1:3])


@pytest.mark.parametrize("chip", ["loihi", "loihi2"])
def test_pilotnet_from_lava_dl_fewer_bits_fewer_cores(chip):
    graph = read_netx(stock_file("pilotnet_lif"))
    cores = []
    for bits in (8, 4, 2):
        plan = plan_graph(graph, load_chip(chip), weight_bits=bits)
        check_plan(plan, graph)
        assert plan.mappable and all(p.limiting in RESOURCES for p in plan.populations)
        cores.append(plan.cores)
    assert cores[0] > cores[-1] and cores == sorted(cores, reverse=True), cores


def test_what_cannot_be_mapped_is_one_line_and_the_rest_is_planned():
    rng = np.random.default_rng(2)
    graph = conv_graph(rng, reset="soft", reset_amount=64)
    graph.projections[1].delay = 70
    graph.populations.append(Population("wide", (3,), lif()))
    graph.populations.append(Population("huge", (5000,), lif(threshold=0), is_input=True))
    graph.projections.append(Projection("huge->wide", "huge", "wide", "dense", np.full((3, 5000), 2)))
    loihi = plan_graph(graph, load_chip("loihi"))
    reasons = {p.name: p.reason for p in loihi.populations if not p.mapped}
    assert "soft-reset" in reasons["c1"] and "70-step delay" in reasons["c2"]
    assert reasons["wide"] == "even one neuron per core exceeds the input axons per core (5000 > 4096)"
    assert all("\n" not in r for r in reasons.values())
    assert not loihi.mappable and loihi.cores == sum(len(p.cores) for p in loihi.populations if p.mapped) > 0
    loihi2 = plan_graph(graph, load_chip("loihi2"))
    assert {p.name for p in loihi2.populations if not p.mapped} == {"c2", "wide"}   # soft reset is programmable
    relay = conv_graph(rng)
    relay.populations[0].neuron = Neuron(threshold=None, graded=True)
    relay.projections[0].num_message_bits = relay.projections[2].num_message_bits = 8
    assert "graded" in plan_graph(relay, load_chip("loihi")).populations[0].reason
    assert plan_graph(relay, load_chip("loihi2")).mappable


def test_plan_needs_a_fixed_graph_and_sane_options():
    graph = conv_graph(np.random.default_rng(3))
    with pytest.raises(InputError, match="fixed-point"):
        plan_graph(Graph(graph.populations, graph.projections, timing="pipelined"), load_chip("loihi2"))
    with pytest.raises(InputError, match="weight bits"):
        plan_graph(graph, load_chip("loihi2"), weight_bits=9)
    with pytest.raises(InputError, match="conv weights"):
        plan_graph(graph, load_chip("loihi2"), conv_weights="dense")


def test_builtin_chips_cite_a_source_for_every_figure():
    for name in ("loihi", "loihi2"):
        chip = load_chip(name)
        for fig in chip.figures.values():
            assert fig.source in chip.sources and fig.label
            assert fig.published or fig.note
    assert load_chip("loihi").message_bits_max == 0 and load_chip("loihi2").message_bits_max > 0


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("sources"), "'sources'"),
    (lambda d: d["figures"].pop("neurons_per_core"), "figure 'neurons_per_core' is missing"),
    (lambda d: d["figures"]["delay_max"].update(value=-1), "figure 'delay_max': 'value' must be an integer >= 0"),
    (lambda d: d["figures"]["cores_per_chip"].update(source="nobody"), "figure 'cores_per_chip': 'source'"),
    (lambda d: d["figures"]["fan_in_axons_per_core"].pop("note"), "needs a 'note'"),
    (lambda d: d["figures"].update(extra={}), "unknown figure(s) extra"),
])
def test_malformed_chip_file_is_one_line(tmp_path, edit, message):
    data = json.loads((CHIP_DIR / "loihi2.json").read_text())
    edit(data)
    path = tmp_path / "chip.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_chip(str(path))
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_snn_deploy_plan_json_and_table(capsys):
    net = stock_file("pilotnet_lif")
    assert main([str(net), "--plan", "--json", "--chip", "loihi", "--core-list"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chip"] == "loihi" and report["mappable"] and report["cores"] == len(report["core_list"])
    assert all(p["limiting"] in RESOURCES for p in report["populations"])
    assert main([str(net), "--plan", "--weight-bits", "2"]) == 0
    table = capsys.readouterr().out
    assert "| layer1 |" in table and "cores on" in table and "weights stored 2 bits" in table


@pytest.mark.parametrize("args, message", [
    (["--weight-bits", "0"], "stores 1..8 weight bits"),
    (["--chip", "nope"], "no built-in chip"),
])
def test_snn_deploy_plan_bad_input_is_one_line(capsys, args, message):
    code = main([str(stock_file("pilotnet_lif")), "--plan", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_snn_deploy_plan_exit_status_says_whether_it_fits(tmp_path, capsys):
    from snnchip.formats.netx import write_netx
    graph = conv_graph(np.random.default_rng(4), reset="soft", reset_amount=64)
    path = tmp_path / "soft.net"
    write_netx(copy.deepcopy(graph), str(path))
    assert main([str(path), "--plan", "--chip", "loihi", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [u["population"] for u in report["unmapped"]] == ["c1"]
