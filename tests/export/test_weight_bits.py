"""Post-training quantisation at low precision (`quantize(weight_bits=B)`, `snn-export --weight-bits B`): B-bit
mantissas, the report's per-projection bits, saturations and errors, and what stock lava-dl netx keeps of them."""
import json

import numpy as np
import pytest
import torch
from lava.lib.dl.netx.utils import optimize_weight_bits
from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

from snnchip import loihi
from snnchip.errors import ChipRangeError
from snnchip.export.cli import main
from snnchip.export.lower import lower
from snnchip.export.quantize import quantize
from snnchip.train.checkpoint import save_checkpoint
from small_models import small_ms_resnet


@pytest.fixture(scope="module")
def graph_and_data():
    model = small_ms_resnet(0).double().eval()
    x = (torch.rand(16, 2, 16, 16, 8, generator=torch.Generator().manual_seed(1)) > 0.8).double()
    return lower(model, input_kind="binary"), x


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_mantissas_fit_b_bits_and_stock_netx_keeps_them(graph_and_data, bits):
    graph, x = graph_and_data
    fixed, report = quantize(graph, calibration=x, weight_bits=bits)
    lo, hi = loihi.mantissa_range(bits)
    assert report.weight_bits == bits
    for q, r in zip(fixed.projections, report.projections):
        m = np.asarray(q.weight) // 2
        assert np.array_equal(np.asarray(q.weight), 2 * m) and lo <= m.min() and m.max() <= hi, q.name
        assert r.weight_bits <= bits and r.saturated >= 0
        if not np.any(m):
            continue
        # stock netx's loader (optimize_weight_bits) then Lava's Dense (clip to 8 bits, truncate to
        # num_weight_bits) must keep exactly these weights (shifted by netx's exponent)
        w = np.asarray(q.weight).reshape(q.weight.shape[0], -1)
        shifted, num_bits, exp, _ = optimize_weight_bits(w)
        assert 1 <= num_bits <= loihi.WEIGHT_BITS, q.name
        sign = determine_sign_mode(shifted)
        kept = truncate_weights(clip_weights(shifted, sign, loihi.WEIGHT_BITS), sign, num_bits)
        assert np.array_equal(kept, shifted) and np.array_equal(shifted, w * 2 ** -exp), q.name


def test_error_grows_as_bits_shrink(graph_and_data):
    graph, x = graph_and_data
    errors = {b: np.mean([r.rel_error for r in quantize(graph, calibration=x, weight_bits=b)[1].projections])
              for b in (2, 4, 8)}
    assert errors[8] < errors[4] < errors[2]


def test_eight_bits_is_the_default(graph_and_data):
    graph, x = graph_and_data
    a, b = quantize(graph, calibration=x)[0], quantize(graph, calibration=x, weight_bits=8)[0]
    for p, q in zip(a.projections, b.projections):
        assert np.array_equal(p.weight, q.weight) and p.weight_exp == q.weight_exp
    assert [p.scale for p in a.populations] == [p.scale for p in b.populations]


@pytest.mark.parametrize("bits", [0, 1, 9, True])
def test_quantize_refuses_widths_netx_cannot_load(graph_and_data, bits):
    with pytest.raises(ChipRangeError, match="2..8"):
        quantize(graph_and_data[0], weight_bits=bits)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(str(path), small_ms_resnet(0))
    return path


def test_stock_netx_halves_one_bit_mantissas():
    """Why 1 bit is refused: mantissas -1/0 (Lava integers -2/0) load through netx as -1 after its shift."""
    w = np.array([[-2, 0], [0, -2]])
    shifted, num_bits, exp, _ = optimize_weight_bits(w)
    sign = determine_sign_mode(shifted)
    kept = truncate_weights(clip_weights(shifted, sign, loihi.WEIGHT_BITS), sign, num_bits)
    assert not np.array_equal(kept * 2.0 ** exp, w)


@pytest.mark.parametrize("bits", ["0", "1", "9"])
def test_cli_refuses_bad_widths_in_one_line(checkpoint, capsys, bits):
    rc = main([str(checkpoint), "--target", "loihi", "--weight-bits", bits, "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "2..8" in err and len(err.strip().splitlines()) == 1


def test_cli_report_shows_the_bits(checkpoint, capsys):
    rc = main([str(checkpoint), "--target", "loihi", "--weight-bits", "3", "--dry-run", "--json",
               "--calibrate", "digits-dvs", "--samples", "16", "--eval-samples", "0"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(out)
    assert report["weight_bits"] == 3
    assert all(q["weight_bits"] <= 3 and q["saturated"] >= 0 and q["rel_error"] > 0 for q in report["projections"])
    rc = main([str(checkpoint), "--target", "loihi", "--weight-bits", "3", "--dry-run"])
    assert rc == 0 and "weight mantissas: 3 bits" in capsys.readouterr().out
