"""The paper's tables: how each depth-SR test set is scored (see /work/shared/docs/method.md).

- ``middlebury2005`` and ``ferstl_noisy``: the LR inputs shipped with the set (for Ferstl the
  noisy ones); MAD and RMSE on the 0-255 disparity scale, full resolution, no border crop.
- every other set: the ground truth (cropped to a multiple of the scale, holes filled by their
  nearest valid neighbour first) is degraded with :func:`training.data.degradation.degrade`
  (OpenCV INTER_CUBIC, rounded to uint8 for 8-bit disparity); errors over valid GT pixels.
  ``nyuv2``: RMSE/MAD in centimetres with the usual 6-pixel border crop. ``lu_rgbd6``: the
  per-image normalised 0-255 scale. ``msgnet_testsets`` and ``middlebury_thirdsize``: 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from dsr_ros.net_input import fill_invalid
from training.data.degradation import degrade
from training.data.readers import DataError
from training.data.sample import RGBDSample

__all__ = ['PROTOCOLS', 'Protocol', 'lr_and_gt']


@dataclass(frozen=True)
class Protocol:
    """How one data set is scored: which LR, which unit the errors are reported in, crop."""

    shipped_lr: bool
    unit_label: str
    factor: float = 1.0
    crop: int = 0
    error_range: float = 10.0  # colour-map range of the error images, in the reported unit
    primary: str = 'mad'  # the metric the literature reports for this set


PROTOCOLS: Dict[str, Protocol] = {
    'middlebury2005': Protocol(True, '0-255 disparity'),
    'ferstl_noisy': Protocol(True, '0-255 disparity (noisy LR inputs)'),
    'msgnet_testsets': Protocol(False, '0-255 disparity'),
    'middlebury_thirdsize': Protocol(False, '0-255 disparity (valid pixels only)'),
    'lu_rgbd6': Protocol(False, '0-255 (per-image normalised depth)'),
    'nyuv2': Protocol(False, 'cm (6-pixel border crop)', factor=100.0, crop=6,
                      error_range=20.0, primary='rmse'),
}


def lr_and_gt(sample: RGBDSample, scale: int,
              shipped: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The LR input, the GT it must reproduce and the GT validity, per the set's protocol."""
    if shipped:
        if scale not in sample.lr_inputs:
            raise DataError(sample.source, f'no shipped LR input for x{scale}')
        return sample.lr_inputs[scale], sample.depth, sample.valid
    height = sample.depth.shape[0] // scale * scale
    width = sample.depth.shape[1] // scale * scale
    gt = sample.depth[:height, :width]
    valid = sample.valid[:height, :width]
    if not valid.any():
        raise DataError(sample.source, 'no valid ground-truth pixel')
    filled = fill_invalid(gt.astype(np.float32), valid)
    lr = degrade(filled, scale, round_to_uint8=sample.unit == 'disparity_8bit')
    return lr, gt, valid
