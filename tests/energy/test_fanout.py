"""Fan-out per source neuron against the explicit synapse matrix of the convolution."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnchip.energy.count import conv_fan_out


@pytest.mark.parametrize("c_in, c_out, hw, k, stride, padding, dilation, groups", [
    (2, 3, (7, 6), 3, (1, 1), (1, 1), (1, 1), 1),
    (4, 6, (9, 8), 3, (2, 2), (1, 1), (1, 1), 2),
    (2, 4, (8, 8), 1, (2, 2), (0, 0), (1, 1), 1),
    (3, 3, (10, 9), 3, (2, 1), (2, 0), (2, 1), 3),
    (1, 2, (5, 5), 4, (2, 2), (1, 1), (1, 1), 1),
])
def test_conv_fan_out_equals_synapse_matrix(c_in, c_out, hw, k, stride, padding, dilation, groups):
    n = c_in * hw[0] * hw[1]
    one_hot = torch.eye(n, dtype=torch.float64).reshape(n, c_in, *hw)
    weight = torch.ones(c_out, c_in // groups, k, k, dtype=torch.float64)
    reached = F.conv2d(one_hot, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = reached.reshape(n, -1).sum(dim=1).round().long().numpy().reshape(c_in, *hw)
    got = conv_fan_out((c_in, *hw), weight.shape, stride, padding, dilation, groups)
    np.testing.assert_array_equal(got, expected)
