"""Error metrics of depth super-resolution: pure numpy, explicit mask and border crop.

The functions never scale or convert units: the result is in the unit of the arrays, and the
caller states it (0-255 disparity for Middlebury: MAD at full resolution, no crop; NYUv2:
RMSE in centimetres, so pass depth in cm, with the usual 6-pixel border crop). Computation is
in float64 so that a mean over a million pixels does not lose the third decimal the paper
reports.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ['abs_error', 'mad', 'rmse', 'select']


def select(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
           crop: int = 0) -> tuple:
    """The compared pixels of ``pred`` and ``gt`` as float64 vectors.

    ``crop`` drops that many pixels on every border (before masking); ``mask`` (True = use)
    keeps valid ground truth only. Raises ValueError on a shape mismatch or when nothing is
    left, rather than returning NaN that would silently vanish from an average.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} must be the '
                         'same 2-D shape')
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gt.shape:
            raise ValueError(f'mask {mask.shape} does not match ground truth {gt.shape}')
    crop = int(crop)
    if crop < 0:
        raise ValueError(f'crop must be >= 0, got {crop}')
    if crop:
        if 2 * crop >= min(gt.shape):
            raise ValueError(f'crop {crop} leaves nothing of a {gt.shape} image')
        window = (slice(crop, -crop), slice(crop, -crop))
        pred, gt = pred[window], gt[window]
        mask = mask[window] if mask is not None else None
    if mask is not None:
        pred, gt = pred[mask], gt[mask]
    else:
        pred, gt = pred.reshape(-1), gt.reshape(-1)
    if gt.size == 0:
        raise ValueError('no pixel left to compare (empty mask or crop)')
    return pred.astype(np.float64), gt.astype(np.float64)


def abs_error(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None
              ) -> np.ndarray:
    """Per-pixel |pred - gt| as float32, 0 where ``mask`` is False (for error-map images)."""
    error = np.abs(np.asarray(pred, np.float64) - np.asarray(gt, np.float64)).astype(np.float32)
    if mask is not None:
        error[~np.asarray(mask, bool)] = 0.0
    return error


def mad(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
        crop: int = 0) -> float:
    """Mean absolute difference over the masked, cropped pixels (unit of the inputs)."""
    p, g = select(pred, gt, mask, crop)
    return float(np.mean(np.abs(p - g)))


def rmse(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
         crop: int = 0) -> float:
    """Root mean squared error over the masked, cropped pixels (unit of the inputs)."""
    p, g = select(pred, gt, mask, crop)
    return float(np.sqrt(np.mean((p - g) ** 2)))
