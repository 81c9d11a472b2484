"""#15 item 1: a sequential network exported for Loihi is a file that stock lava-dl netx runs with exactly
snn-sim's integers (every layer's spikes, u and v at every step); every other file is refused by stock netx."""
import numpy as np
import pytest
import torch

from snnchip.export.recipe import export_model
from snnchip.formats.netx import read_netx, write_netx
from snnchip.formats.netx_read import EXTENSION_KIND, REFUSAL, STOCK_KIND, netx_file_kind
from snnchip.sim import simulate
from snnchip.train.models import build_model, model_config
from snnchip.train.norm import TdBN

from sim.netx_harness import run_netx_on_lava
from sim.test_stock_netx import compare_blocks, lava_layout
from small_models import small_ms_resnet

T = 6


def small_plain(seed: int = 0):
    """A PlainNet-8 (widths 4, 8, 8; 2x8x8 input) with random weights and norm statistics, so every layer spikes."""
    torch.manual_seed(seed)
    model = build_model(model_config("plain8", widths=(4, 8, 8), in_channels=2, input_size=(8, 8), T=T,
                                     num_classes=5))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, TdBN):
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.05 + 0.02)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.double().eval()


def calibration(binary: bool) -> torch.Tensor:
    x = torch.rand(16, 2, 8, 8, T, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return (x < 0.3).double() if binary else x


@pytest.mark.parametrize("input_kind", ["binary", "graded"])
def test_plainnet_export_runs_in_stock_netx_exactly_as_snn_sim(tmp_path, input_kind):
    binary = input_kind == "binary"
    # binary input: stock-exact by default; graded input: on request (netx then takes input_message_bits)
    result = export_model(small_plain(), input_kind=input_kind, calibration=calibration(binary),
                          stock=None if binary else True)
    assert result.file_kind == STOCK_KIND and result.summary()["netx_file"] == STOCK_KIND
    assert all(q.weight_exp == 0 for q in result.graph.projections)
    path = tmp_path / "plain.net"
    assert write_netx(result.graph, path, graded_input=not binary) == STOCK_KIND
    assert netx_file_kind(path) == STOCK_KIND
    graph = read_netx(path)
    steps = T + graph.latency()
    x = calibration(binary)[:1]
    xin = torch.nn.functional.pad(
        (x > 0).long() if binary else torch.round(x * graph.input_scale).long(), (0, steps - T))
    ours = simulate(graph, xin, record=("spikes", "u", "v"))
    bits = 0 if binary else graph.message_bits
    theirs = run_netx_on_lava(path, steps, x=lava_layout(xin[0].numpy()), input_message_bits=bits)
    compare_blocks(graph, ours, theirs)
    readout = graph.outputs[0].name
    assert np.abs(ours.v[readout]).max() > 1000
    assert all(ours.spikes[p.name].sum() > 0 for p in graph.populations[1:-1])


def test_free_exponents_and_residual_files_are_refused_by_stock_netx(tmp_path):
    from lava.lib.dl import netx
    plain = export_model(small_plain(), input_kind="binary", calibration=calibration(True), stock=False)
    assert any(q.weight_exp != 0 for q in plain.graph.projections)          # netx would drop these exponents
    ms = export_model(small_ms_resnet(), input_kind="binary")
    for name, result in (("plain_free", plain), ("ms_resnet", ms)):
        path = tmp_path / f"{name}.net"
        assert result.file_kind == EXTENSION_KIND
        assert write_netx(result.graph, path) == EXTENSION_KIND and netx_file_kind(path) == EXTENSION_KIND
        with pytest.raises(ValueError, match=REFUSAL.split(",")[0]) as exc:
            netx.hdf5.Network(net_config=str(path))
        assert result.stock_reasons[0] in str(exc.value)
        read_netx(path)                                      # snnchip still reads the whole graph back


def test_stock_refuses_a_residual_network_in_one_line():
    from snnchip.errors import UnsupportedError
    with pytest.raises(UnsupportedError, match="cannot export for stock netx: population .* not fed by exactly one"):
        export_model(small_ms_resnet(), input_kind="binary", stock=True)


def test_snn_export_reports_which_kind_of_file_it_wrote(tmp_path, capsys):
    from snnchip.export.cli import main
    from snnchip.train.checkpoint import save_checkpoint
    plain, ms = tmp_path / "plain.pt", tmp_path / "ms.pt"
    save_checkpoint(str(plain), small_plain())
    save_checkpoint(str(ms), small_ms_resnet())
    cases = [((plain, "--input", "binary"), STOCK_KIND, "computes exactly what snn-sim computes"),
             ((plain, "--input", "graded", "--stock"), STOCK_KIND, "when given input_message_bits=8"),
             ((plain, "--input", "graded"), EXTENSION_KIND, "refuses the file: input 'input' is graded"),
             ((plain, "--input", "binary", "--extension"), EXTENSION_KIND, "refuses the file"),
             ((ms, "--input", "binary"), EXTENSION_KIND, "not fed by exactly one projection")]
    for k, (argv, kind, words) in enumerate(cases):
        out = tmp_path / f"{k}.net"
        assert main([str(a) for a in argv] + ["--target", "loihi", "-o", str(out)]) == 0
        line = capsys.readouterr().out.splitlines()[-1]
        assert line.startswith(f"NetX file kind: {kind} (stock lava-dl netx ") and words in line, line
        assert netx_file_kind(out) == kind
    assert main([str(ms), "--target", "loihi", "--input", "binary", "--stock", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot export for stock netx" in err
    assert main([str(plain), "--target", "onnx", "--stock", "--dry-run"]) == 2
    assert "apply to --target loihi only" in capsys.readouterr().err
