"""The Lava stack works on this machine: a network written by Intel runs on the CPU simulator bit-exactly."""
import numpy as np

from lava_dl_files import run_tinynet


def test_lava_dl_tinynet_matches_shipped_ground_truth():
    output, gt = run_tinynet("fixed_pt")
    assert gt.sum() > 0, "ground truth has spikes, so an all-zero output cannot pass"
    assert output.shape == gt.shape
    np.testing.assert_array_equal(output, gt)
