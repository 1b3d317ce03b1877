"""Procedural RGB-D samples: the data source of the ``smoke`` config and of tests.

Both kinds are rooms from :func:`dsr_ros.scene.random_room`, the project's one procedural depth
generator: :func:`room_samples` keeps them in metres (sensor models), :func:`synthetic_samples`
maps them to the 8-bit disparity scale with a colour-coded, textured RGB image of the same
layout, so DENet has something learnable and the run needs no download.
"""

from __future__ import annotations

from typing import List

import numpy as np

from dsr_ros.scene import random_room
from training.data.sample import RGBDSample

__all__ = ['room_samples', 'synthetic_samples']

#: Disparity of each room's nearest point: the far end of the 8-bit scale, as in Middlebury GT.
NEAREST_DISPARITY = 250.0


def _room_disparity(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random room as float32 disparity on the 8-bit scale (nearest point 250, ~ 1 / z).

    Disparity is inversely proportional to depth; scaling each room so that its nearest point
    is at 250 spans the scale the way the Middlebury maps do, whatever the room's ranges.
    """
    metres = random_room(rng, width, height)
    return (NEAREST_DISPARITY * metres.min() / metres).astype(np.float32)


def synthetic_samples(count: int = 4, height: int = 128, width: int = 160, seed: int = 0,
                      with_rgb: bool = True, hole_fraction: float = 0.0) -> List[RGBDSample]:
    """``count`` random rooms in 8-bit disparity units with registered RGB.

    ``hole_fraction`` marks that share of the pixels invalid at random (values kept).
    """
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        depth = _room_disparity(rng, height, width)
        valid = np.ones((height, width), bool)
        if hole_fraction > 0:
            valid &= rng.random((height, width)) >= hole_fraction
        rgb = _colour_coded(depth, rng) if with_rgb else None
        samples.append(RGBDSample(f'synthetic_{seed}_{index}', depth, valid, 'disparity_8bit',
                                  rgb=rgb, source='dsr_ros.scene.random_room'))
    return samples


def _colour_coded(disparity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB coloured by surface orientation, brightened with nearness, plus texture noise.

    Disparity is an affine function of the pixel coordinates on any plane (it is ~ 1 / z), so
    its gradient, mixed into three channels by a random matrix, gives each planar surface one
    colour: floor, walls and the faces of boxes differ, and every depth edge is a colour or
    brightness edge (what DENet learns to transfer). The noise keeps RGB from being a copy of
    the depth.
    """
    grad_y, grad_x = np.gradient(disparity)
    gradient = np.stack([grad_x, grad_y], axis=-1)
    gradient /= np.percentile(np.abs(gradient), 90) + 1e-6
    colour = 128 + np.clip(gradient @ rng.normal(0, 60, (2, 3)), -110, 110)
    shade = 0.4 + 0.6 * disparity[..., None] / 255.0
    texture = rng.normal(0, 12, disparity.shape + (1,))
    return np.clip(colour * shade + texture, 0, 255).astype(np.uint8)


def room_samples(count: int = 64, height: int = 240, width: int = 320, seed: int = 0
                 ) -> List[RGBDSample]:
    """``count`` random cluttered rooms in metres (:func:`dsr_ros.scene.random_room`).

    Unlimited metric scenes at robot ranges for sensor models; ``seed`` picks the set, so the
    held-out rooms (another seed) never overlap the training rooms.
    """
    samples = []
    for index in range(count):
        depth = random_room(np.random.default_rng([seed, index]), width, height)
        samples.append(RGBDSample(f'room_{seed}_{index}', depth, np.ones(depth.shape, bool),
                                  'metre', source='dsr_ros.scene.random_room'))
    return samples
