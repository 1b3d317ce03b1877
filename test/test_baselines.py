"""dsr_ros.baselines: nearest blocks, phase-aware nearest and masked bicubic keep holes."""

from __future__ import annotations

import cv2
import numpy as np

from dsr_ros.baselines import upsample_bicubic_masked, upsample_nearest
from dsr_ros.depth_io import to_metres


def test_masked_bicubic_keeps_holes_and_matches_opencv():
    lr = np.full((6, 8), 2000, np.uint16)
    lr[:, 4:] = 3000
    lr[2, 1] = 0
    up = upsample_bicubic_masked(to_metres(lr), 2)
    assert up.shape == (12, 16) and up.dtype == np.float32
    assert np.isnan(up[4:6, 2:4]).all() and np.isfinite(up).sum() == 12 * 16 - 4
    filled = lr.astype(np.float32) / 1000
    filled[2, 1] = 2.0
    expected = cv2.resize(filled, (16, 12), interpolation=cv2.INTER_CUBIC)
    valid = np.isfinite(up)
    np.testing.assert_allclose(up[valid], expected[valid], rtol=1e-6)


def test_nearest_upsamples_values_and_validity_masks_as_blocks():
    lr = np.array([[1.0, np.nan], [3.0, 4.0]], np.float32)
    up = upsample_nearest(lr, 3)
    assert up.shape == (6, 6) and np.isnan(up[:3, 3:]).all() and (up[3:, :3] == 3.0).all()
    mask = upsample_nearest(np.isfinite(lr), 3)
    assert mask.dtype == bool and mask.sum() == 27
    np.testing.assert_array_equal(mask, np.kron(np.isfinite(lr), np.ones((3, 3), bool)))
