"""Errors of super-resolved depth against the truth: MAD and RMSE, with explicit masks and crop.

The one definition of MAD and RMSE in the repository (:func:`difference_errors`), shared by the
demo (:mod:`dsr_ros.ros.demo`), the evaluation package (:mod:`training.evaluation.scores`) and the
real-camera benchmark. Pure numpy, so the installed package can score its own output.

The functions never convert units unless told: the result is in the unit of the arrays, or in
millimetres for the ``*_mm`` helpers on metric depth. :func:`mad` / :func:`rmse` compute in
float64 so that a mean over a million pixels keeps the third decimal the paper reports; the
pooled and masked helpers keep the precision of the differences they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['Metrics', 'abs_error', 'depth_errors_mm', 'difference_errors', 'errors',
           'mad', 'masked_errors', 'rmse', 'select']


@dataclass
class Metrics:
    """Error statistics over valid pixels, in millimetres."""

    mad_mm: float
    rmse_mm: float
    pixels: int


def difference_errors(difference: np.ndarray) -> Tuple[float, float]:
    """``(MAD, RMSE)`` of a vector of differences (NaN for both when it is empty).

    Computed in the dtype of ``difference``: callers that need float64 accumulation cast first.
    """
    if difference.size == 0:
        return float('nan'), float('nan')
    return (float(np.mean(np.abs(difference))),
            float(np.sqrt(np.mean(difference ** 2))))


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


def errors(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
           crop: int = 0) -> Tuple[float, float]:
    """``(MAD, RMSE)`` over the masked, cropped pixels (float64, unit of the inputs)."""
    p, g = select(pred, gt, mask, crop)
    return difference_errors(p - g)


def mad(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
        crop: int = 0) -> float:
    """Mean absolute difference over the masked, cropped pixels (unit of the inputs)."""
    return errors(pred, gt, mask, crop)[0]


def rmse(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
         crop: int = 0) -> float:
    """Root mean squared error over the masked, cropped pixels (unit of the inputs)."""
    return errors(pred, gt, mask, crop)[1]


def abs_error(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None
              ) -> np.ndarray:
    """Per-pixel |pred - gt| as float32, 0 where ``mask`` is False (for error-map images)."""
    error = np.abs(np.asarray(pred, np.float64) - np.asarray(gt, np.float64)).astype(np.float32)
    if mask is not None:
        error[~np.asarray(mask, bool)] = 0.0
    return error


def masked_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray,
                  factor: float = 1000.0) -> Dict[str, Union[float, int]]:
    """``{'mad', 'rmse', 'pixels'}`` of ``(pred - gt) * factor`` over ``mask`` (metres -> mm by
    default), in the inputs' precision; NaN errors and 0 pixels when the mask is empty."""
    difference = (pred[mask] - gt[mask]) * factor
    mad_value, rmse_value = difference_errors(difference)
    return {'mad': mad_value, 'rmse': rmse_value, 'pixels': int(difference.size)}


def depth_errors_mm(estimates: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                    masks: Sequence[np.ndarray]) -> Metrics:
    """MAD and RMSE (mm, float64) of metric depth pooled over the pixels where ``masks`` are
    true, over every frame given."""
    difference = np.concatenate([(est[mask].astype(np.float64) - truth[mask]) * 1000.0
                                 for est, truth, mask in zip(estimates, truths, masks)])
    mad_mm, rmse_mm = difference_errors(difference)
    return Metrics(mad_mm, rmse_mm, int(difference.size))
