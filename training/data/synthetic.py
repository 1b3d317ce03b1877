"""Procedural RGB-D samples: the data source of the ``smoke`` config and of tests.

Depth is a few planes and blobs with sharp edges; the RGB image is a colour-coded, textured
version of the same layout, so DENet has something learnable and the run needs no download.
"""

from __future__ import annotations

from typing import List

import numpy as np

from training.data.sample import RGBDSample

__all__ = ['room_samples', 'synthetic_samples']


def synthetic_samples(count: int = 4, height: int = 128, width: int = 160, seed: int = 0,
                      with_rgb: bool = True, hole_fraction: float = 0.0) -> List[RGBDSample]:
    """``count`` scenes in 8-bit disparity units with registered RGB."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    samples = []
    for index in range(count):
        depth = 60 + 40 * rows / height + 20 * np.sin(cols / rng.uniform(8, 30))
        label = np.zeros((height, width), np.int32)
        for obj in range(1, 4):
            top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
            h, w = rng.integers(height // 6, height // 2), rng.integers(width // 6, width // 2)
            depth[top:top + h, left:left + w] = rng.uniform(120, 220)
            label[top:top + h, left:left + w] = obj
        valid = np.ones((height, width), bool)
        if hole_fraction > 0:
            valid &= rng.random((height, width)) >= hole_fraction
        rgb = None
        if with_rgb:
            palette = rng.integers(0, 255, (4, 3))
            texture = rng.normal(0, 12, (height, width, 1))
            rgb = np.clip(palette[label] * (depth[..., None] / 255.0) + texture + 40, 0, 255)
            rgb = rgb.astype(np.uint8)
        samples.append(RGBDSample(f'synthetic_{seed}_{index}', depth.astype(np.float32), valid,
                                  'disparity_8bit', rgb=rgb, source='procedural'))
    return samples


def room_samples(count: int = 64, height: int = 240, width: int = 320, seed: int = 0
                 ) -> List[RGBDSample]:
    """``count`` random cluttered rooms in metres (:func:`dsr_ros.scene.random_room`).

    Unlimited metric scenes at robot ranges for sensor models; ``seed`` picks the set, so the
    held-out rooms (another seed) never overlap the training rooms.
    """
    from dsr_ros.scene import random_room
    samples = []
    for index in range(count):
        depth = random_room(np.random.default_rng([seed, index]), width, height)
        samples.append(RGBDSample(f'room_{seed}_{index}', depth, np.ones(depth.shape, bool),
                                  'metre', source='dsr_ros.scene.random_room'))
    return samples
