"""The depth frame every benchmark stage is fed: a procedural room as a camera delivers it.

The room comes from :func:`dsr_ros.scene.random_room` (the package's one procedural generator);
the benchmark adds invalid blobs like sensor shadows, so hole filling, masks and validity
encoding cost what they cost on a real camera, and encodes it as ``16UC1`` millimetres.
"""

from __future__ import annotations

import argparse
from typing import Tuple

import numpy as np

from dsr_ros.scene import random_room

__all__ = ['parse_size', 'sensor_frame']

#: Invalid blobs per frame and their radius as a fraction of the frame width.
HOLE_BLOBS = 4
HOLE_RADIUS = 0.03


def sensor_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A ``uint16`` millimetre depth frame (0 = invalid) of a random room, deterministic."""
    rng = np.random.default_rng(seed)
    millimetres = np.clip(np.rint(random_room(rng, width, height) * 1000.0), 1, 65535)
    frame = millimetres.astype(np.uint16)
    rows, cols = np.mgrid[0:height, 0:width]
    for _ in range(HOLE_BLOBS):
        centre_col, centre_row = rng.uniform(0, width), rng.uniform(0, height)
        radius = max(HOLE_RADIUS * width, 1.0)
        frame[(cols - centre_col) ** 2 + (rows - centre_row) ** 2 < radius ** 2] = 0
    return frame


def parse_size(text: str) -> Tuple[int, int]:
    """``'160x120'`` -> ``(160, 120)``: LR width x height, the way cameras name resolutions."""
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'size {text!r} is not WIDTHxHEIGHT') from error
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'size {text!r} must be positive')
    return width, height
