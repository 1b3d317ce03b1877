"""The synthetic RGB-D generator (issue 12, item 3): rendered rooms whose RGB holds the cases
SPNet exists for, from the same ray-cast geometry as the depth."""

import cv2
import numpy as np

from dsr_ros.scene import ROOM_SURFACES, random_room, render_room
from training.data.synthetic import synthetic_samples


def _colour_jump(rgb: np.ndarray) -> np.ndarray:
    """Largest per-channel difference to the right and lower neighbour (uint8 levels), after a
    3 x 3 mean so that sensor noise is not counted as an edge."""
    image = cv2.blur(rgb, (3, 3)).astype(np.float32)
    right = np.abs(np.diff(image, axis=1))[:-1].max(axis=-1)
    down = np.abs(np.diff(image, axis=0))[:, :-1].max(axis=-1)
    return np.maximum(right, down)


def _depth_jump(depth: np.ndarray) -> np.ndarray:
    """Relative depth difference to the right and lower neighbour."""
    right = np.abs(np.diff(depth, axis=1))[:-1] / depth[:-1, :-1]
    down = np.abs(np.diff(depth, axis=0))[:, :-1] / depth[:-1, :-1]
    return np.maximum(right, down)


def test_render_room_is_random_room_with_its_geometry():
    for seed in range(4):
        room = render_room(np.random.default_rng([3, seed]), 96, 72)
        assert np.array_equal(room.depth, random_room(np.random.default_rng([3, seed]), 96, 72))
        assert room.points.shape == (72, 96, 3) and room.surface.shape == (72, 96)
        # The camera sits at the origin: the hit points lie at the depth's distance along rays.
        distance = np.linalg.norm(room.points, axis=-1)
        assert np.all(distance >= room.depth - 1e-4)
        assert room.surface.min() >= 0 and room.surface.max() >= len(ROOM_SURFACES)
        floor = room.surface == ROOM_SURFACES.index('floor')
        assert np.allclose(room.points[..., 1][floor], room.floor_y, atol=1e-4)


def test_rgb_has_texture_edges_on_smooth_depth_and_weak_colour_at_depth_edges():
    samples = synthetic_samples(8, 120, 160, seed=11, weak_contrast_prob=0.5)
    texture_edges, weak_depth_edges, depth_edges = 0, 0, 0
    for sample in samples:
        assert sample.rgb.shape == (120, 160, 3) and sample.rgb.dtype == np.uint8
        colour, depth = _colour_jump(sample.rgb), _depth_jump(sample.depth.astype(np.float64))
        smooth = depth < 0.01
        texture_edges += int(((colour > 15) & smooth).sum())
        edges = depth > 0.1
        depth_edges += int(edges.sum())
        weak_depth_edges += int((edges & (colour < 5)).sum())
    pixels = len(samples) * 119 * 159
    assert texture_edges > 0.005 * pixels, 'no colour edges without depth edges'
    assert weak_depth_edges > 0.05 * depth_edges, 'every depth edge is a strong colour edge'


def test_rendering_is_reproducible_per_seed():
    first = synthetic_samples(2, 64, 80, seed=7)
    again = synthetic_samples(2, 64, 80, seed=7)
    other = synthetic_samples(2, 64, 80, seed=8)
    for a, b in zip(first, again):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(first[0].rgb, other[0].rgb)
    assert synthetic_samples(1, 64, 80, seed=7, with_rgb=False)[0].rgb is None
