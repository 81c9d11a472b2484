"""Quantisation-aware training: the QAT forward computes with the integers snn-export writes (one quantiser),
straight-through gradients, exact resumption of a QAT run, and the checkpoint's scales reaching the export."""
import copy

import numpy as np
import pytest
import torch

from snnchip import loihi
from snnchip.errors import InputError
from snnchip.export.lower import lower
from snnchip.export.quantize import quantize
from snnchip.export.recipe import export_model
from snnchip.train.checkpoint import load_model, save_checkpoint
from snnchip.train.qat import READOUT, attach_qat
from small_models import small_ms_resnet

from .test_trainer import assert_same_weights, run, tiny, weights

X = (torch.rand(16, 2, 16, 16, 8, generator=torch.Generator().manual_seed(3)) > 0.8).float()


def qat_model(bits):
    model = small_ms_resnet(0)
    qat = attach_qat(model, bits)
    qat.observe(X)
    return model.double().eval(), qat


def raw_copy(model):
    """The same float weights without the QAT hooks: what post-training quantisation would start from."""
    raw = copy.deepcopy(model)
    for m in raw.modules():
        if hasattr(m, "pre_hook_fx"):
            m.pre_hook_fx = None
    return raw


def forward_chip_weights(model, qat):
    """{target population: [chip weight of each membrane-sum term]} as one QAT forward computes them."""
    seen = {}
    original = qat.fake_quantize

    def record(folded, target):
        out = original(folded, target)
        seen.setdefault(target, []).append(out.detach().double().numpy()[..., 0])
        return out
    qat.fake_quantize = record
    try:
        model(X.double())
    finally:
        del qat.fake_quantize
    return seen


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("source", ["qat model", "raw float weights"])
def test_qat_forward_uses_the_integers_snn_export_writes(bits, source):
    """The exporter, given the training's scales, turns the QAT model (what snn-export reads) and also the raw
    float weights (so no re-quantisation can hide a second quantiser) into the weights the QAT forward used: every
    projection, including each composed term of an MS-ResNet's membrane sums."""
    model, qat = qat_model(bits)
    graph = lower(model if source == "qat model" else raw_copy(model), input_kind="binary")
    fixed, _ = quantize(graph, calibration=X.double(), weight_bits=bits, scales=qat.export_scales(graph))
    assert {p.name: p.scale for p in fixed.populations if p.name in qat.scales} == qat.scales
    into = {}
    for q in fixed.projections:
        into.setdefault(q.target, []).append(loihi.weight_value(q.weight, q.weight_exp, qat.scales[q.target]))
    checked = 0
    for s in qat.synapses:
        if not s.hooked:
            continue
        # the chip weight the QAT forward used: the hooked weight times the fold factor
        g = s.gain().double().reshape(-1, *([1] * (s.layer.weight.dim() - 1)))
        used = (s.layer.pre_hook_fx(s.layer.weight) * g).detach().numpy()
        used = used[..., 0, 0, 0] if s.target == READOUT else used[..., 0]
        (exported,) = into[s.target]
        if s.target == READOUT:          # GAP + FC: each weight spread over the H W positions
            exported = exported[:, ::exported.shape[1] // used.shape[1]]
        np.testing.assert_allclose(used, exported, rtol=1e-12, atol=0, err_msg=s.name)
        checked += 1
    unrolled = forward_chip_weights(model, qat)
    assert unrolled and set(unrolled) == {s.target for s in qat.synapses if not s.hooked}
    for target, weights in unrolled.items():
        assert len(weights) == len(into[target]), target
        for used, exported in zip(weights, into[target]):
            np.testing.assert_allclose(used, exported, rtol=1e-12, atol=0, err_msg=target)
            checked += 1
    assert checked == len(fixed.projections)


def test_a_different_rounding_would_be_caught(monkeypatch):
    """The comparison above fails if training's quantiser diverged from the exporter's (here: floor)."""
    model, qat = qat_model(4)
    graph = lower(model, input_kind="binary")
    fixed, _ = quantize(graph, calibration=X.double(), weight_bits=4, scales=qat.export_scales(graph))
    s = qat.synapses[1]                               # conv1 of the first block -> its lif2 (one fan-in)
    (q,) = [q for q in fixed.projections if q.target == s.target]
    exported = loihi.weight_value(q.weight, q.weight_exp, qat.scales[s.target])
    floor = np.floor(s.folded() * qat.scales[s.target] / 2 ** (q.weight_exp + 7)) * 2 ** (q.weight_exp + 7) \
        / qat.scales[s.target]
    assert not np.allclose(floor[..., 0], exported)


def test_straight_through_gradient_and_chip_decay():
    model = small_ms_resnet(0)
    qat = attach_qat(model, 2)
    qat.observe(X)
    w = model.stages[0][0].conv1.weight
    hooked = model.stages[0][0].conv1.pre_hook_fx(w)
    assert not torch.equal(hooked, w)
    hooked.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    dv = loihi.dv_from_fraction(1 - model.stages[0][0].lif1.config.decay)
    assert model.stages[0][0].lif1.config.decay == 1 - loihi.dv_fraction(dv)


def test_frozen_scales_do_not_move():
    model = small_ms_resnet(0)
    qat = attach_qat(model, 4)
    qat.observe(X)
    before = dict(qat.scales)
    qat.frozen = True
    with torch.no_grad():
        model.stages[0][0].conv1.weight.mul_(3)
    qat.observe(X)
    assert qat.scales == before
    qat.frozen = False
    qat.observe(X)
    assert qat.scales != before


def test_qat_resume_reaches_exactly_the_uninterrupted_result(tmp_path):
    extra = dict(qat=True, weight_bits=4, qat_freeze=1, epochs=3)
    full = run(tiny(tmp_path, "full", **extra))
    run(tiny(tmp_path, "cut", **extra), stop_after=2)
    resumed = run(tiny(tmp_path, "cut", resume=str(tmp_path / "cut" / "last.pt"), **extra))
    assert_same_weights(weights(tmp_path / "full" / "last.pt"), weights(tmp_path / "cut" / "last.pt"))
    drop = ("epoch_time_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in full["epochs"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in resumed["epochs"]]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["qat"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["qat"]
    assert a == b and a["weight_bits"] == 4 and a["frozen"] and a["scales"]
    # the checkpoint rebuilds the QAT model, and the export takes exactly its scales and bits
    model = load_model(tmp_path / "full" / "last.pt")
    assert model.qat.bits == 4 and model.qat.scales == a["scales"]
    result = export_model(tmp_path / "full" / "last.pt", calibration=torch.rand(4, 2, 8, 8, 2).round())
    assert result.report.weight_bits == 4
    assert {p.name: p.scale for p in result.graph.populations if p.name in a["scales"]} == a["scales"]
    with pytest.raises(InputError, match="trained with --qat --weight-bits 4"):
        export_model(tmp_path / "full" / "last.pt", weight_bits=8)


@pytest.mark.parametrize("field,value,message", [
    ("weight_bits", 9, "2..8"), ("weight_bits", 0, "2..8"), ("qat_freeze", 5, "--qat-freeze")])
def test_bad_qat_settings(tmp_path, field, value, message):
    with pytest.raises(InputError, match=message):
        run(tiny(tmp_path, qat=True, **{field: value}))


def test_weight_bits_without_qat_is_refused(tmp_path):
    with pytest.raises(InputError, match="need --qat"):
        run(tiny(tmp_path, weight_bits=4))
