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
