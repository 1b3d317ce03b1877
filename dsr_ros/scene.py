"""Procedural depth scenes with exact high-resolution truth, for the demo and tests.

A pinhole camera looks into a room (floor, back and side wall) with boxes, spheres and one
sphere moving across the view. Each frame gives the exact HR depth (ray casting, no holes) and
an LR input made like the training degradation, then spoiled like a real sensor:

1. ``cv2.resize(hr, (W/s, H/s), INTER_CUBIC)`` of the HR truth (the evaluation protocol's
   degradation, see docs/method.md),
2. dropouts along depth edges (structured-light and ToF sensors lose pixels there) and random
   blobs (absorbing or specular surfaces),
3. depth-dependent Gaussian noise (sigma = noise_at_1m * z^2, as for triangulation sensors),
4. encoding as ``16UC1`` millimetres (0 = invalid) or ``32FC1`` metres (NaN = invalid).

Rendering uses only numpy and OpenCV, so the scene is usable without ROS or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from dsr_ros.depth_io import OUTPUT_ENCODINGS, convert_depth

__all__ = ['DepthScene', 'ROOM_SURFACES', 'RoomGeometry', 'SceneConfig', 'SceneFrame',
           'random_room', 'render_room', 'sensor_frame_mm']


@dataclass(frozen=True)
class SceneConfig:
    """Size, timing and sensor model of a scene sequence (HR size = LR size x scale)."""

    encoding: str = '16UC1'
    """The LR input's encoding: ``16UC1`` (millimetres) or ``32FC1`` (metres)."""
    rate_hz: float = 10.0
    lr_width: int = 160
    lr_height: int = 120
    scale: int = 4

    @property
    def hr_size(self) -> Tuple[int, int]:
        """(width, height) of the HR truth."""
        return self.lr_width * self.scale, self.lr_height * self.scale

    # The sensor model of the LR input.
    seed: int = 0
    """Frame ``i`` draws its sensor noise from ``(seed, i)``."""
    noise_at_1m: float = 0.002
    """Depth noise sigma in metres at 1 m; it grows with depth squared (stereo-like)."""
    edge_dropout: float = 0.5
    """Chance that a pixel at a depth jump above ``edge_threshold_m`` is a hole."""
    hole_blobs: int = 3
    edge_threshold_m: float = 0.15


@dataclass
class SceneFrame:
    """One frame: HR truth (float32 m, all valid) and the sensor-like LR input."""

    index: int
    time_s: float
    hr_metres: np.ndarray
    lr: np.ndarray
    lr_clean_metres: np.ndarray


class DepthScene:
    """Deterministic sequence of frames (frame ``i`` depends only on the config and ``i``)."""

    def __init__(self, config: Optional[SceneConfig] = None) -> None:
        self.config = config or SceneConfig()
        cfg = self.config
        if cfg.encoding not in OUTPUT_ENCODINGS:
            raise ValueError(f'encoding must be one of {OUTPUT_ENCODINGS}, got {cfg.encoding!r}')
        if cfg.lr_width < 4 or cfg.lr_height < 4 or cfg.scale < 1:
            raise ValueError('the LR image must be at least 4x4 and the scale positive')
        width, height = cfg.hr_size
        self.k_hr = np.array([[0.8 * width, 0.0, (width - 1) / 2.0],
                              [0.0, 0.8 * width, (height - 1) / 2.0],
                              [0.0, 0.0, 1.0]])
        # The LR camera whose native x``scale`` output camera_info (camera_info.output_camera_info,
        # pixel-centre form) is exactly k_hr.
        s = cfg.scale
        self.k_lr = np.array([[self.k_hr[0, 0] / s, 0.0, (self.k_hr[0, 2] + 0.5) / s - 0.5],
                              [0.0, self.k_hr[1, 1] / s, (self.k_hr[1, 2] + 0.5) / s - 0.5],
                              [0.0, 0.0, 1.0]])
        cols, rows = np.meshgrid(np.arange(width, dtype=np.float64),
                                 np.arange(height, dtype=np.float64))
        # Ray directions with z = 1, so the ray parameter t is the z-depth itself.
        self._rays = np.stack([(cols - self.k_hr[0, 2]) / self.k_hr[0, 0],
                               (rows - self.k_hr[1, 2]) / self.k_hr[1, 1],
                               np.ones_like(cols)], axis=-1)
        self._static = self._render_static()

    # ------------------------------------------------------------------ public API
    def frame(self, index: int) -> SceneFrame:
        """Render frame ``index`` (time ``index / rate_hz``)."""
        cfg = self.config
        time_s = index / cfg.rate_hz
        phase = 2 * np.pi * time_s / 4.0  # the moving sphere crosses the view every 2 s
        centre = np.array([0.9 * np.sin(phase), 0.25, 2.2 + 0.3 * np.cos(phase)])
        hr = np.minimum(self._static, _sphere(self._rays, centre, 0.35)).astype(np.float32)
        lr_clean = cv2.resize(hr, (cfg.lr_width, cfg.lr_height), interpolation=cv2.INTER_CUBIC)
        rng = np.random.default_rng([cfg.seed, index])
        lr = self._sensor(lr_clean, rng)
        return SceneFrame(index, time_s, hr, convert_depth(lr, cfg.encoding), lr_clean)

    # ------------------------------------------------------------------ internals
    def _render_static(self) -> np.ndarray:
        rays = self._rays
        depth = np.full(rays.shape[:2], 4.0)  # back wall at z = 4 m
        with np.errstate(divide='ignore', invalid='ignore'):
            floor = np.where(rays[..., 1] > 0, 1.0 / rays[..., 1], np.inf)  # y = 1 m (down)
            wall = np.where(rays[..., 0] < 0, -1.8 / rays[..., 0], np.inf)  # x = -1.8 m
        depth = np.minimum(depth, np.minimum(floor, wall))
        for low, high in (((-1.2, 0.3, 2.6), (-0.5, 1.0, 3.2)),
                          ((0.5, -0.2, 2.9), (1.3, 1.0, 3.4)),
                          ((-0.2, 0.7, 1.6), (0.3, 1.0, 2.0))):
            depth = np.minimum(depth, _box(rays, np.array(low), np.array(high)))
        depth = np.minimum(depth, _sphere(rays, np.array([1.0, 0.55, 1.8]), 0.45))
        return depth

    def _sensor(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        metres = clean + rng.standard_normal(clean.shape).astype(np.float32) * (
            cfg.noise_at_1m * clean ** 2)
        padded = np.pad(clean, 1, mode='edge')
        jump = np.max([np.abs(padded[1:-1, 1:-1] - padded[r:r + clean.shape[0],
                                                          c:c + clean.shape[1]])
                       for r, c in ((0, 1), (2, 1), (1, 0), (1, 2))], axis=0)
        holes = (jump > cfg.edge_threshold_m) & (rng.random(clean.shape) < cfg.edge_dropout)
        height, width = clean.shape
        blobs = np.zeros(clean.shape, np.uint8)
        for _ in range(cfg.hole_blobs):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(1, max(2, width // 16))),
                    int(rng.integers(1, max(2, height // 16))))
            cv2.ellipse(blobs, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        metres[holes | (blobs > 0)] = np.nan
        return metres.astype(np.float32)


def _box(rays: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """z-depth of an axis-aligned box (slab method), inf where the ray misses it."""
    with np.errstate(divide='ignore', invalid='ignore'):
        t1, t2 = low / rays, high / rays
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def _sphere(rays: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """z-depth of a sphere's near surface, inf where the ray misses it."""
    a = np.einsum('...i,...i->...', rays, rays)
    b = rays @ centre
    disc = b * b - a * (centre @ centre - radius * radius)
    with np.errstate(invalid='ignore'):
        t = (b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _vertical_cylinder(rays: np.ndarray, centre_x: float, centre_z: float, radius: float,
                       top_y: float, bottom_y: float) -> np.ndarray:
    """z-depth of a vertical cylinder's near side (y down, between top_y and bottom_y)."""
    dx, dy, dz = rays[..., 0], rays[..., 1], rays[..., 2]
    a = dx * dx + dz * dz
    b = dx * centre_x + dz * centre_z
    disc = b * b - a * (centre_x ** 2 + centre_z ** 2 - radius ** 2)
    with np.errstate(invalid='ignore', divide='ignore'):
        t = (b - np.sqrt(disc)) / a
        y = t * dy
    hit = (disc >= 0) & (t > 0) & (y >= top_y) & (y <= bottom_y)
    return np.where(hit, t, np.inf)


@dataclass(frozen=True)
class RoomGeometry:
    """What the ray caster knows about each pixel of a random room.

    ``depth``: z-depth in metres (float32); ``surface``: which surface the ray hit (int16:
    0 floor, 1 ceiling, 2 back wall, 3 left wall, 4 right wall, 5... the clutter in the order it
    was placed); ``points``: the hit points in room coordinates (x right, y down, z forward;
    float32, H x W x 3). Renderers texture and light surfaces from these (training's synthetic
    RGB-D pairs), so colour and depth agree by construction.
    """

    depth: np.ndarray
    surface: np.ndarray
    points: np.ndarray
    floor_y: float
    back_z: float


#: Surface ids of the room's own planes in :class:`RoomGeometry`; clutter follows.
ROOM_SURFACES = ('floor', 'ceiling', 'back_wall', 'left_wall', 'right_wall')


def random_room(rng: np.random.Generator, width: int = 320, height: int = 240) -> np.ndarray:
    """A random cluttered room at robot ranges, as exact z-depth in metres (float32).

    A pinhole camera (horizontal field of view 55-90 degrees) at 0.2-1.5 m above the floor,
    pitched and yawed a little, looks at a floor, a back wall 2.5-9 m away, side walls and
    furniture-like clutter: boxes standing on the floor (cupboards, tables' tops, crates),
    vertical cylinders (table and chair legs, poles, bins) and spheres. Every ray hits something
    (the walls close the room), so the map has no holes; sensors add those.
    """
    return render_room(rng, width, height).depth


def render_room(rng: np.random.Generator, width: int = 320, height: int = 240) -> RoomGeometry:
    """:func:`random_room` with the surface id and room coordinates of every pixel.

    The random draws are those of :func:`random_room` (same generator state, same depth).
    """
    focal = width / (2.0 * np.tan(np.radians(rng.uniform(55, 90)) / 2.0))
    cols, rows = np.meshgrid(np.arange(width) - (width - 1) / 2.0,
                             np.arange(height) - (height - 1) / 2.0)
    rays = np.stack([cols / focal, rows / focal, np.ones_like(cols)], axis=-1)
    pitch, yaw = rng.uniform(-0.35, 0.1), rng.uniform(-0.4, 0.4)
    rot_x = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)],
                      [0, np.sin(pitch), np.cos(pitch)]])
    rot_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0],
                      [-np.sin(yaw), 0, np.cos(yaw)]])
    world = rays @ (rot_y @ rot_x).T  # camera z of a hit stays the ray parameter t
    floor_y = rng.uniform(0.2, 1.5)
    ceiling_y = floor_y - rng.uniform(2.2, 3.2)
    back_z, left_x, right_x = rng.uniform(2.5, 9.0), -rng.uniform(1.0, 4.0), rng.uniform(1.0, 4.0)
    with np.errstate(divide='ignore', invalid='ignore'):
        planes = [np.where(world[..., 1] > 0, floor_y / world[..., 1], np.inf),
                  np.where(world[..., 1] < 0, ceiling_y / world[..., 1], np.inf),
                  np.where(world[..., 2] > 0, back_z / world[..., 2], np.inf),
                  np.where(world[..., 0] < 0, left_x / world[..., 0], np.inf),
                  np.where(world[..., 0] > 0, right_x / world[..., 0], np.inf)]
    depth = np.min(planes, axis=0)
    surface = np.argmin(planes, axis=0).astype(np.int16)
    clutter = len(ROOM_SURFACES)  # the surface id of the next piece of clutter
    for _ in range(int(rng.integers(2, 10))):
        size = rng.uniform([0.1, 0.1, 0.1], [1.2, 1.2, 1.0])
        centre_x, centre_z = rng.uniform(left_x + 0.2, right_x - 0.2), rng.uniform(0.6, back_z)
        bottom = floor_y - (rng.uniform(0.3, 0.9) if rng.random() < 0.25 else 0.0)
        low = np.array([centre_x - size[0] / 2, bottom - size[1], centre_z - size[2] / 2])
        high = np.array([centre_x + size[0] / 2, bottom, centre_z + size[2] / 2])
        depth, surface = _nearer(depth, surface, _box(world, low, high), clutter)
        clutter += 1
    for _ in range(int(rng.integers(0, 8))):
        radius = rng.uniform(0.015, 0.25)
        top = floor_y - rng.uniform(0.3, 2.0)
        hit = _vertical_cylinder(
            world, rng.uniform(left_x, right_x), rng.uniform(0.5, back_z), radius, top, floor_y)
        depth, surface = _nearer(depth, surface, hit, clutter)
        clutter += 1
    for _ in range(int(rng.integers(0, 4))):
        radius = rng.uniform(0.08, 0.5)
        centre = np.array([rng.uniform(left_x, right_x), floor_y - radius * rng.uniform(1, 3),
                           rng.uniform(0.6, back_z)])
        depth, surface = _nearer(depth, surface, _sphere(world, centre, radius), clutter)
        clutter += 1
    missed = ~np.isfinite(depth)
    depth = np.where(missed, back_z, depth)
    surface[missed] = ROOM_SURFACES.index('back_wall')
    points = (world * depth[..., None]).astype(np.float32)
    return RoomGeometry(depth.astype(np.float32), surface, points, float(floor_y), float(back_z))


def _nearer(depth: np.ndarray, surface: np.ndarray, hit: np.ndarray, index: int
            ) -> Tuple[np.ndarray, np.ndarray]:
    """The z-buffer step: where ``hit`` is nearer, it becomes the depth and surface ``index``."""
    closer = hit < depth
    surface = np.where(closer, np.int16(index), surface)
    return np.minimum(depth, hit), surface


def sensor_frame_mm(width: int, height: int, seed: int = 0, hole_blobs: int = 4) -> np.ndarray:
    """A random room as a camera delivers it: ``uint16`` millimetres with invalid blobs (0).

    The frame benchmarks, memory measurements and tests feed the node: deterministic per seed,
    with holes so hole filling, masks and validity encoding cost what they cost on a camera.
    """
    rng = np.random.default_rng(seed)
    frame = np.clip(np.rint(random_room(rng, width, height) * 1000.0), 1, 65535).astype(np.uint16)
    rows, cols = np.mgrid[0:height, 0:width]
    radius = max(0.03 * width, 1.0)
    for _ in range(hole_blobs):
        centre_col, centre_row = rng.uniform(0, width), rng.uniform(0, height)
        frame[(cols - centre_col) ** 2 + (rows - centre_row) ** 2 < radius ** 2] = 0
    return frame
