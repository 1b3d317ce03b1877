"""The upsampling baselines SR is compared with: nearest (block), phase-aware nearest, bicubic.

One definition each, shared by the demo (:mod:`dsr_ros.ros.demo`), the evaluation package
(:mod:`training.evaluation`), training patches (an LR validity mask as HR blocks) and the
real-camera benchmark. Holes are treated as the node treats them: an invalid LR pixel's
``s x s`` output block is invalid, and bicubic sees the holes filled from their nearest valid
neighbour first, so a comparison with the SR output is about the upsampling alone.
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from dsr_ros.depth_io import valid_mask
from dsr_ros.net_input import fill_invalid

__all__ = ['filled_frame', 'nearest_at_phase', 'upsample_bicubic', 'upsample_bicubic_masked',
           'upsample_nearest']


def upsample_nearest(lr: np.ndarray, scale: int) -> np.ndarray:
    """Each LR pixel as an ``s x s`` block: nearest upsampling of depth (holes stay holes) or
    of an LR validity mask (the HR pixels under valid LR pixels)."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


def nearest_at_phase(lr: np.ndarray, scale: int, phase: Tuple[int, int],
                     shape: Tuple[int, int]) -> np.ndarray:
    """Nearest upsampling that knows the sampling phase ``(r, c)``: HR pixel ``y`` takes LR
    sample ``round((y - r) / s)`` (the phase study's phase-aware oracle)."""
    rows = np.clip(np.rint((np.arange(shape[0]) - phase[0]) / scale).astype(int), 0,
                   lr.shape[0] - 1)
    cols = np.clip(np.rint((np.arange(shape[1]) - phase[1]) / scale).astype(int), 0,
                   lr.shape[1] - 1)
    return lr[rows][:, cols]


def upsample_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """OpenCV INTER_CUBIC (a = -0.75) upsampling by ``scale``, float32: the paper's baseline."""
    height, width = lr.shape[:2]
    return cv2.resize(lr.astype(np.float32), (width * scale, height * scale),
                      interpolation=cv2.INTER_CUBIC)


def filled_frame(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A frame (NaN = hole) with every hole set to its nearest valid pixel (dtype kept)."""
    return fill_invalid(np.nan_to_num(depth, nan=0.0), valid)


def upsample_bicubic_masked(lr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic of the nearest-filled float LR frame (metres, NaN = hole), each LR hole's block
    invalid (NaN) in the float32 result."""
    valid = valid_mask(lr)
    if not valid.any():
        return np.full((lr.shape[0] * scale, lr.shape[1] * scale), np.nan, np.float32)
    out = upsample_bicubic(filled_frame(lr, valid), scale)
    out[~upsample_nearest(valid, scale)] = np.nan
    return out
