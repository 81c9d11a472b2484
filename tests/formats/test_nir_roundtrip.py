"""graph -> NIR -> graph gives the same float spikes every layer every step; the MS-ResNet export is linear in size
(one Conv2d node per convolution, the membrane shortcut as edges); SpikingJelly's own NIR importer reads the
exported digits-dvs MS-ResNet and gives the same spikes as snnchip's float graph."""
import nir
import numpy as np
import pytest
import torch

from snnchip.export.lower import lower
from snnchip.formats.nir import read_nir, write_nir
from snnchip.sim import simulate
from snnchip.train.models import build_model, model_config
from snnchip.train.norm import TdBN

from . import frameworks as fw

# the digits-dvs recipe's model (snn-train --dataset digits-dvs: MS-ResNet8, width 16, 2x16x16 input, T = 8)
DIGITS = dict(widths=(16, 32, 64), input_size=(16, 16), in_channels=2, num_classes=10, T=8)


def random_model(name, seed=0, **overrides):
    """An eval-mode float64 model whose norms have random statistics and gains (every residual path matters)."""
    torch.manual_seed(seed)
    model = build_model(model_config(name, **{**DIGITS, **overrides}))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, TdBN):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.3)
    return model.double().eval()


def spiking(graph):
    return [p.name for p in graph.populations if p.neuron.threshold is not None and not p.neuron.graded
            and not p.is_input]


def assert_same_float_spikes(a, b, x, names):
    ra = simulate(a, x, record=tuple(names))
    rb = simulate(b, x, record=tuple(names))
    fired = 0
    for name in names:
        assert torch.equal(ra.spikes[name], rb.spikes[name]), \
            f"{name}: {int((ra.spikes[name] != rb.spikes[name]).sum())} spikes differ"
        fired += int(ra.spikes[name].sum())
    assert fired > 0
    assert torch.allclose(ra.output, rb.output, atol=1e-9, rtol=0)


def digits_input(T=8, n=3, seed=1):
    return torch.randint(0, 3, (n, 2, 16, 16, T), generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("name,shortcut", [("ms_resnet8", "relay"), ("ms_resnet14", "relay"),
                                           ("ms_resnet8", "composed"), ("spiking_resnet8", "composed")])
def test_model_graph_round_trip(tmp_path, name, shortcut):
    graph = lower(random_model(name), shortcut=shortcut)
    write_nir(graph, tmp_path / "m.nir")
    back = read_nir(tmp_path / "m.nir")
    assert back.readout == "readout" and back.steps == graph.steps
    assert_same_float_spikes(graph, back, digits_input(), spiking(graph))


def test_ms_resnet_export_is_linear(tmp_path):
    """One Conv2d node per convolution of the model (stem, 2 per block, 1 per downsampling shortcut), biases on
    them (no v_leak), and the shortcut as edges: a block's lif1 takes the stage's entry and every earlier conv2."""
    model = random_model("ms_resnet14")     # 2 blocks per stage, 3 stages
    write_nir(lower(model, shortcut="relay"), tmp_path / "m.nir")
    g = nir.read(tmp_path / "m.nir")
    convs = [k for k, n in g.nodes.items() if isinstance(n, nir.Conv2d)]
    assert len(convs) == 1 + 2 * 6 + 2
    lifs = {k: n for k, n in g.nodes.items() if isinstance(n, nir.LIF)}
    assert len(lifs) == 2 * 6 + 1 and all(not np.any(n.v_leak) for n in lifs.values())
    into = {k: sorted(a for a, b in g.edges if b == k) for k in lifs}
    stem = [a for a in into["stages.0.0.lif1"]]
    assert len(stem) == 1 and g.nodes[stem[0]].weight.shape == (16, 2, 3, 3)
    assert len(into["stages.0.1.lif1"]) == 2 and stem[0] in into["stages.0.1.lif1"]
    # a downsampling block's lif1 takes the undownsampled sum (stem + the stage's conv2s); its shortcut conv takes
    # the same sum and feeds the next lif1 beside the block's own conv2
    assert len(into["stages.1.0.lif1"]) == 3 and stem[0] in into["stages.1.0.lif1"]
    (down,) = [a for a in into["stages.1.1.lif1"] if g.nodes[a].weight.shape == (32, 16, 1, 1)]
    assert len(into["stages.1.1.lif1"]) == 2 and len([a for a, b in g.edges if b == down]) == 3
    weights = sum(n.weight.size for n in g.nodes.values() if isinstance(n, (nir.Conv2d, nir.Affine)))
    params = sum(p.numel() for n, p in model.named_parameters() if "norm" not in n and n.endswith("weight"))
    assert weights == params


def test_imported_graph_round_trip(tmp_path):
    """NIR written by SpikingJelly -> graph -> NIR -> graph: the same spikes."""
    net = fw.SpikingJellyResBlock()
    fw.spikingjelly_export(net, (2, 6, 6), tmp_path / "sj.nir")
    first = read_nir(tmp_path / "sj.nir")
    write_nir(first, tmp_path / "again.nir")
    second = read_nir(tmp_path / "again.nir")
    x = torch.rand(2, 2, 6, 6, 25, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 1.5
    ra, rb = simulate(first, x, record=("spikes",)), simulate(second, x, record=("spikes",))
    assert set(ra.spikes) == set(rb.spikes)
    for name in ra.spikes:
        assert torch.equal(ra.spikes[name], rb.spikes[name]), name


def test_spikingjelly_reads_the_exported_ms_resnet(tmp_path):
    """SpikingJelly 2.0's `import_from_nir` on the exported digits-dvs MS-ResNet8: every LIF layer's spikes equal
    snnchip's float graph at every step. Its importer has no node for NIR's integrator `I` (the readout), so the
    readout is cut from the graph and SpikingJelly's per-step output (GAP + FC) integrated instead."""
    pytest.importorskip("spikingjelly")
    graph = lower(random_model("ms_resnet8"), shortcut="relay")
    write_nir(graph, tmp_path / "m.nir")
    g = nir.read(tmp_path / "m.nir")
    (readout,) = [k for k, n in g.nodes.items() if isinstance(n, nir.I)]
    feeding = [a for a, b in g.edges if b == readout]
    g.nodes.pop(readout)
    g.edges = [(a, b) for a, b in g.edges if readout not in (a, b)] + [(a, "output") for a in feeding]
    x = digits_input()
    spikes, per_step = fw.spikingjelly_import_spikes(g, x)
    ours = simulate(graph, x, record=tuple(spiking(graph)))
    assert len(spikes) == len(spiking(graph))
    for name in spiking(graph):
        theirs = spikes[name.replace(".", "_")]
        assert int(theirs.sum()) > 0
        assert torch.equal(theirs, ours.spikes[name]), name
    assert torch.allclose(torch.cumsum(per_step, -1), ours.output, atol=1e-9, rtol=0)


def test_binary_input_relay_is_refused_in_one_line(tmp_path):
    """NIR's Input passes values through: a binary relay (1 for every non-zero input) has no NIR form."""
    from snnchip.errors import UnsupportedError
    from snnchip.formats.nir_write import write_nir

    from .test_onnx_step import binary_relay_graph
    with pytest.raises(UnsupportedError, match="population 'in': a binary input relay") as e:
        write_nir(binary_relay_graph(), tmp_path / "binary.nir")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "binary.nir").exists()
