"""dsr_ros.depth_metrics: values, validity mask, explicit border crop, loud failures, pooling."""

from __future__ import annotations

import numpy as np
import pytest

from dsr_ros.depth_metrics import abs_error, depth_errors_mm, mad, rmse


def test_known_values():
    gt = np.zeros((4, 4))
    pred = gt.copy()
    pred[0, 0], pred[1, 1] = 4.0, -2.0
    assert mad(pred, gt) == pytest.approx(6 / 16)
    assert rmse(pred, gt) == pytest.approx(np.sqrt(20 / 16))


def test_mask_and_crop():
    gt = np.zeros((6, 6), np.float32)
    pred = np.ones((6, 6), np.float32)
    pred[0, :] = 100.0  # border row: removed by crop=1
    mask = np.ones((6, 6), bool)
    mask[2, 2] = False
    pred[2, 2] = 50.0  # invalid GT pixel: removed by the mask
    assert mad(pred, gt, mask, crop=1) == pytest.approx(1.0)
    assert rmse(pred, gt, mask, crop=1) == pytest.approx(1.0)
    assert mad(pred, gt, mask) > 1.0
    assert np.array_equal(abs_error(pred, gt, mask)[2, 2], 0.0)


def test_float64_accumulation_keeps_third_decimal():
    gt = np.zeros((1000, 1000), np.float32)
    pred = np.full_like(gt, 0.1234)
    assert mad(pred, gt) == pytest.approx(0.1234, abs=1e-6)


@pytest.mark.parametrize('kwargs, message', [
    ({'pred': np.zeros((3, 3))}, 'same 2-D shape'),
    ({'mask': np.zeros((4, 4), bool)}, 'no pixel left'),
    ({'mask': np.ones((2, 2), bool)}, 'does not match'),
    ({'crop': 2}, 'leaves nothing'),
    ({'crop': -1}, '>= 0'),
])
def test_refusals(kwargs, message):
    args = {'pred': np.zeros((4, 4)), 'gt': np.zeros((4, 4))}
    args.update(kwargs)
    for metric in (mad, rmse):
        with pytest.raises(ValueError, match=message):
            metric(**args)


def test_depth_errors_mm_pools_masked_pixels():
    truth = [np.ones((2, 2), np.float32), np.ones((1, 2), np.float32)]
    estimate = [np.array([[1.001, 0.998], [5.0, 1.0]], np.float32),
                np.array([[1.004, np.nan]], np.float32)]
    masks = [np.array([[True, True], [False, True]]), np.array([[True, False]])]
    metrics = depth_errors_mm(estimate, truth, masks)
    assert metrics.pixels == 4
    assert metrics.mad_mm == pytest.approx((1 + 2 + 0 + 4) / 4, rel=1e-3)
    assert metrics.rmse_mm == pytest.approx(np.sqrt((1 + 4 + 0 + 16) / 4), rel=1e-3)
    assert depth_errors_mm(estimate, truth, [m & False for m in masks]).pixels == 0
