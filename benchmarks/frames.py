"""The depth frame every benchmark stage is fed: a procedural room as a camera delivers it.

The room comes from :func:`dsr_ros.scene.random_room` (the package's one procedural generator);
the benchmark adds invalid blobs like sensor shadows, so hole filling, masks and validity
encoding cost what they cost on a real camera, and encodes it as ``16UC1`` millimetres.
"""

from __future__ import annotations

import argparse
from typing import Tuple

import numpy as np

from dsr_ros.scene import sensor_frame_mm

__all__ = ['parse_size', 'sensor_frame']


def sensor_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A ``uint16`` millimetre depth frame (0 = invalid) of a random room, deterministic."""
    return sensor_frame_mm(width, height, seed)


def parse_size(text: str) -> Tuple[int, int]:
    """``'160x120'`` -> ``(160, 120)``: LR width x height, the way cameras name resolutions."""
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'size {text!r} is not WIDTHxHEIGHT') from error
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'size {text!r} must be positive')
    return width, height
