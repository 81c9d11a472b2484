"""lower(): BN folding, exact shortcut composition, and spike-for-spike equality with the torch models."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnchip.export.compose import MembraneSum, Term


# -- composition of linear maps, against torch ------------------------------------------------------
@pytest.mark.parametrize("size", [7, 8, 9])
@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (7, 2, 3), (3, 2, 1), (4, 2, 1)])
def test_composed_convolutions_equal_the_chain(size, kernel, stride, padding):
    rng = np.random.default_rng(size * 100 + kernel)
    w = rng.normal(size=(5, 3, kernel, kernel))
    b = rng.normal(size=5)
    x = torch.tensor(rng.normal(size=(2, 3, size, size)))
    inner = F.conv2d(x, torch.tensor(w), torch.tensor(b), stride=stride, padding=padding)
    state = MembraneSum((5, *inner.shape[2:]))
    state.add(Term("x", w, (stride, stride), (padding, padding)), b)
    wd, bd = rng.normal(size=(4, 5, 1, 1)), rng.normal(size=4)
    chains = {
        "conv1x1 s2": (F.conv2d(inner, torch.tensor(wd), torch.tensor(bd), stride=2),
                       state.conv1x1(wd, bd, (2, 2), "t")),
        "avgpool 2 + conv1x1": (F.conv2d(F.avg_pool2d(inner, 2, 2), torch.tensor(wd), torch.tensor(bd)),
                                state.avgpool((2, 2), (2, 2)).conv1x1(wd, bd, (1, 1), "t")),
        "two stages": (F.conv2d(F.conv2d(inner, torch.tensor(wd), torch.tensor(bd), stride=2),
                                torch.tensor(wd[:, :4] * 0.5), torch.tensor(bd), stride=2),
                       state.conv1x1(wd, bd, (2, 2), "t").conv1x1(wd[:, :4] * 0.5, bd, (2, 2), "t")),
    }
    for what, (ref, composed) in chains.items():
        (term,) = composed.terms
        got = F.conv2d(x, torch.tensor(term.weight), torch.tensor(composed.bias), stride=term.stride,
                       padding=term.padding)
        assert got.shape == ref.shape and tuple(got.shape[1:]) == composed.shape, what
        assert torch.allclose(got, ref, atol=1e-12, rtol=0), what


def test_avgpool_after_3x3_is_a_4x4_stride_2_conv():
    state = MembraneSum((1, 8, 8))
    state.add(Term("x", np.ones((1, 1, 3, 3)), (1, 1), (1, 1)), np.zeros(1))
    (term,) = state.avgpool((2, 2), (2, 2)).terms
    assert term.weight.shape == (1, 1, 4, 4) and term.stride == (2, 2) and term.padding == (1, 1)
    assert np.allclose(term.weight[0, 0], np.outer([1, 2, 2, 1], [1, 2, 2, 1]) / 4)


# -- whole models, against torch in float64 -----------------------------------------------------------
from snnchip.errors import InputError  # noqa: E402
from snnchip.export.lower import lower  # noqa: E402
from snnchip.export.timing import pipeline  # noqa: E402
from snnchip.sim import simulate  # noqa: E402
from snnchip.train.models import build_model, model_config  # noqa: E402
from snnchip.train.norm import TdBN  # noqa: E402

SMALL = dict(widths=(8, 16, 32), input_size=(16, 16), in_channels=2, num_classes=10)


def random_model(name, seed=0, **overrides):
    """A float64 eval-mode model whose norms have random statistics and gains (the zero-init residual gains too,
    so every block's residual path matters)."""
    torch.manual_seed(seed)
    model = build_model(model_config(name, **{**SMALL, **overrides}))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, TdBN):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.3)
    return model.double().eval()


def assert_graph_matches_model(model, graph, x):
    """Every spiking layer's spikes equal at every step; the readout is T x the model's output."""
    with torch.no_grad():
        logits, spikes = model.forward_all(x)
    assert set(graph.meta["torch_names"].values()) == set(spikes)
    res = simulate(graph, x, record=tuple(graph.meta["torch_names"]))
    fired = 0
    for pop, key in graph.meta["torch_names"].items():
        assert torch.equal(res.spikes[pop], spikes[key]), f"{pop}: {int((res.spikes[pop] != spikes[key]).sum())} " \
                                                          f"of {spikes[key].numel()} spikes differ"
        fired += int(spikes[key].sum())
    assert fired > 0
    T = x.shape[-1]
    assert torch.allclose(res.output[..., T - 1] / T, logits, atol=1e-9, rtol=0)
    assert torch.equal(res.output[..., T - 1].argmax(1), logits.argmax(1))
    return res


@pytest.mark.parametrize("name,T", [("ms_resnet20", 4), ("spiking_resnet20", 4), ("plain20", 4),
                                    ("ms_resnet56", 2)])
def test_lowered_graph_reproduces_every_spike(name, T):
    model = random_model(name, T=T)
    graph = lower(model, input_kind="binary")
    assert graph.timing == "ideal" and not graph.fixed and graph.meta["T"] == T
    x = (torch.rand(2, 2, 16, 16, T, generator=torch.Generator().manual_seed(1)) < 0.3).double()
    assert_graph_matches_model(model, graph, x)


def test_ms_resnet_projection_structure():
    """Each lif1 receives the stem and every earlier block's conv2: 1, 2, 3 ... projections per stage."""
    graph = lower(random_model("ms_resnet20", T=2))
    into = {p.name: [q.source for q in graph.into(p.name)] for p in graph.populations}
    assert into["stages.0.0.lif1"] == ["input"]
    assert into["stages.0.2.lif1"] == ["input", "stages.0.0.lif2", "stages.0.1.lif2"]
    assert into["head.lif"] == ["input"] + [f"stages.{s}.{b}.lif2" for s in range(3) for b in range(3)]
    assert into["stages.1.0.lif2"] == ["stages.1.0.lif1"]
    assert into["readout"] == ["head.lif"]
    # composed through two stride-2 shortcuts: the stem is a 3x3 stride-4 conv into head.lif
    stem_into_head = [q for q in graph.into("head.lif") if q.source == "input"][0]
    assert stem_into_head.weight.shape == (32, 2, 3, 3) and stem_into_head.stride == (4, 4)
    assert graph.population("input").neuron.graded      # the default: exact for any input
    assert graph.population("readout").neuron.threshold is None


def test_graded_input_and_relay_shortcuts_are_exact_too():
    model = random_model("ms_resnet20", T=3)
    x = torch.randint(0, 4, (2, 2, 16, 16, 3), generator=torch.Generator().manual_seed(2)).double()
    composed = lower(model, input_kind="graded")
    assert composed.population("input").neuron.graded
    assert_graph_matches_model(model, composed, x)
    relay = lower(model, input_kind="graded", shortcut="relay")
    assert len(relay.projections) < len(composed.projections)
    assert "stages.0.1.relay" in {p.name for p in relay.populations}
    assert_graph_matches_model(model, relay, x)


def test_pipelined_lowered_graph_is_the_ideal_one_shifted():
    model = random_model("ms_resnet20", T=3)
    T = 3
    x = (torch.rand(2, 2, 16, 16, T, generator=torch.Generator().manual_seed(3)) < 0.3).double()
    with torch.no_grad():
        logits, spikes = model.forward_all(x)
    graph = pipeline(lower(model, input_kind="binary"))
    latency = graph.latency()
    assert latency == graph.meta["depth"]["readout"] == 2 * 9 + 2     # 9 blocks of two hops, head.lif, readout
    padded = torch.cat([x, torch.zeros(*x.shape[:-1], latency, dtype=x.dtype)], dim=-1)
    res = simulate(graph, padded, record=tuple(spikes), reset_interval=T)
    for pop, key in graph.meta["torch_names"].items():
        d = graph.meta["depth"][pop]
        assert torch.equal(res.spikes[pop][..., d:d + T], spikes[key]), pop
    assert torch.allclose(res.output[..., T - 1 + latency] / T, logits, atol=1e-9, rtol=0)


def test_ms_resnet104_with_average_pool_shortcut():
    model = random_model("ms_resnet104", widths=(4, 4, 8, 8), input_size=(32, 32), T=1)
    assert model.config.shortcut == "avgpool"
    graph = lower(model, input_kind="binary")
    # a term composed through three 2x2 average pools: the stage-1 conv2 (3x3 s1) as a 10x10 stride-8 conv
    first = [q for q in graph.into("head.lif") if q.source == "stages.0.0.lif2"][0]
    assert first.weight.shape[2:] == (10, 10) and first.stride == (8, 8) and first.padding == (1, 1)
    x = (torch.rand(1, 2, 32, 32, 1, generator=torch.Generator().manual_seed(4)) < 0.4).double()
    assert_graph_matches_model(model, graph, x)


def test_unsupported_models_are_one_line_errors():
    with pytest.raises(InputError, match=r"block 'stages.0.0' of kind 'sr_b'"):
        lower(random_model("sr_b20", T=2))
    with pytest.raises(InputError, match=r"block 'stages.0.0' of kind 'sr_c'"):
        lower(random_model("sr_c20", T=2))
    from snnchip.train.layers import RecurrentDense
    from snnchip.train.neurons import SpikingNeuron
    model = random_model("plain20", T=2)
    model.head.extra = RecurrentDense(4, 4, SpikingNeuron())
    with pytest.raises(InputError, match=r"module 'head.extra': recurrent"):
        lower(model)
    with pytest.raises(InputError, match="Linear is not a spiking ResNet"):
        lower(torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match="input_kind"):
        lower(random_model("plain20", T=2), input_kind="analog")


def test_mpr_and_side_branches_are_dropped():
    """MPR changes no spike (so the graph, which has no MPR, still matches); side branches are ignored."""
    model = random_model("ms_resnet20", T=3, neuron=dict(threshold=0.5, decay=0.25, mpr=True))
    model.side_branches = torch.nn.ModuleList([torch.nn.Linear(3, 3)])
    graph = lower(model, input_kind="binary")
    x = (torch.rand(2, 2, 16, 16, 3, generator=torch.Generator().manual_seed(5)) < 0.3).double()
    assert_graph_matches_model(model, graph, x)


def test_digits_dvs_samples_through_an_ms_resnet():
    """Real event frames (the embedded digits-dvs set) in the model's own input layout."""
    from snnchip.train.data import dataset_info, load_dataset
    info = dataset_info("digits-dvs")
    test = load_dataset("digits-dvs", "test")
    x = torch.stack([test[i][0] for i in range(4)]).double()
    model = random_model("ms_resnet8", widths=(8, 16, 32), in_channels=info.in_channels,
                         input_size=info.input_size, T=info.T)
    graph = lower(model, input_kind="binary" if info.binary else "graded")
    assert_graph_matches_model(model, graph, x)
