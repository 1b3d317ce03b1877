"""From a depth frame with holes to the net's input: hole filling and the input's channels.

The one path shared by the node's resolver, training patches and evaluation: the scaling is
fitted on the valid pixels only, holes are filled from their nearest valid neighbour (so they
do not drag valid depth towards zero), and the validity mask rides along for mask-aware nets.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage

from dsr_ros.depth_scaling import Affine, DepthScaling

__all__ = ['fill_holes', 'fill_invalid', 'make_net_input', 'prepare_net_input']


def fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels by their nearest valid neighbour (values must have >= 1 valid)."""
    if valid.all():
        return values
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return values[rows, cols]


def fill_holes(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 depth with each invalid pixel (NaN, 0, anything) set to its nearest valid one."""
    return fill_invalid(np.where(valid, depth, 0.0).astype(np.float32), valid)


def make_net_input(normalised: np.ndarray, valid: np.ndarray, in_channels: int) -> np.ndarray:
    """The net's ``(C, h, w)`` input from hole-filled normalised depth and its validity mask.

    One definition for training patches, evaluation and the node: channel 0 is the depth,
    channel 1 (for ``in_channels == 2``) the mask as 1.0 (measured) / 0.0 (filled hole).
    """
    depth = np.asarray(normalised, dtype=np.float32)
    if in_channels == 1:
        return depth[None]
    if in_channels != 2:
        raise ValueError(f'DSRNet input has 1 or 2 channels, got {in_channels!r}')
    return np.stack([depth, np.asarray(valid, dtype=np.float32)])


def prepare_net_input(depth: np.ndarray, valid: np.ndarray, scaling: DepthScaling,
                      in_channels: int, unit: str = 'm') -> Tuple[np.ndarray, Affine]:
    """LR depth with holes -> the net's ``(C, h, w)`` input and the map back to ``unit``."""
    affine = scaling.fit(depth[valid], unit)
    return make_net_input(affine.forward(fill_holes(depth, valid)), valid, in_channels), affine
