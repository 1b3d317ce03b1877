"""Procedural RGB-D samples: the data source of the ``smoke`` config and of tests.

Both kinds are rooms from :func:`dsr_ros.scene.render_room`, the project's one procedural depth
generator: :func:`room_samples` keeps them in metres (sensor models), :func:`synthetic_samples`
maps them to the 8-bit disparity scale with an RGB image rendered from the same geometry
(:func:`render_rgb`: textured, lit surfaces), so the cross-task stage gets unlimited registered
pairs and a run needs no download.

The RGB images hold the three kinds of edge a guidance net must tell apart (docs/cross_task.md,
"Data"): colour edges *on* depth edges (each surface has its own albedo and shading),
texture edges *inside* flat depth (stripes, tiles, posters, blotches painted in a surface's own
plane coordinates; ``texture_prob`` of the surfaces carry one) and depth edges with little or no
colour edge (``weak_contrast_prob`` of the furniture takes the back wall's albedo). Thousands of
samples: ``cache`` renders each once and maps it from disk afterwards
(:mod:`training.data.sample_cache`).
"""

from __future__ import annotations

from typing import Iterator, List, Tuple, Union

import cv2
import numpy as np

from dsr_ros.scene import ROOM_SURFACES, RoomGeometry, random_room, render_room
from training.data.sample import RGBDSample
from training.data.sample_cache import cache_folder, cached_samples

__all__ = ['render_rgb', 'room_samples', 'synthetic_samples']

#: Disparity of each room's nearest point: the far end of the 8-bit scale, as in Middlebury GT.
NEAREST_DISPARITY = 250.0
#: The textures of :func:`_texture` and their odds; ``plain`` paints no edge inside a surface.
TEXTURES = ('plain', 'stripes', 'tiles', 'posters', 'blotches')
TEXTURE_ODDS = (0.15, 0.25, 0.2, 0.25, 0.15)
#: Default share of surfaces with a texture (1 - the odds of ``plain``).
TEXTURE_PROB = 0.85


def _disparity(metres: np.ndarray) -> np.ndarray:
    """Depth as float32 disparity on the 8-bit scale (nearest point 250, ~ 1 / z).

    Disparity is inversely proportional to depth; scaling each room so that its nearest point
    is at 250 spans the scale the way the Middlebury maps do, whatever the room's ranges.
    """
    return (NEAREST_DISPARITY * metres.min() / metres).astype(np.float32)


def synthetic_samples(count: int = 4, height: int = 128, width: int = 160, seed: int = 0,
                      with_rgb: bool = True, hole_fraction: float = 0.0,
                      weak_contrast_prob: float = 0.3, texture_prob: float = TEXTURE_PROB,
                      cache: Union[bool, str, None] = None) -> List[RGBDSample]:
    """``count`` random rooms in 8-bit disparity units with a rendered, registered RGB image.

    Unlimited RGB-D pairs for the cross-task stage (DENet, SPNet): the RGB image is rendered
    from the same ray-cast geometry (:func:`render_rgb`), so it holds what SPNet exists for:
    texture edges where depth is smooth (``texture_prob`` of the surfaces), and depth edges
    with weak colour contrast (``weak_contrast_prob`` of the furniture).
    ``hole_fraction`` marks that share of the pixels invalid at random (values kept).
    ``cache`` (a folder, or True for ``~/.cache/dsr_ros/samples``) renders each sample once
    and maps it from disk afterwards: same values, bounded memory for thousands of rooms.
    Sample ``i`` depends on ``seed`` and ``i`` only, not on ``count``.
    """
    params = dict(height=height, width=width, seed=seed, with_rgb=with_rgb,
                  hole_fraction=hole_fraction, weak_contrast_prob=weak_contrast_prob,
                  texture_prob=texture_prob)
    if cache:
        return cached_samples(cache_folder(cache, 'synthetic', params),
                              [f'synthetic_{seed}_{index}' for index in range(count)],
                              'disparity_8bit', 'dsr_ros.scene.render_room',
                              _iter_synthetic(count, **params))
    return list(_iter_synthetic(count, **params))


def _iter_synthetic(count: int, height: int, width: int, seed: int, with_rgb: bool,
                    hole_fraction: float, weak_contrast_prob: float, texture_prob: float
                    ) -> Iterator[RGBDSample]:
    """The samples of :func:`synthetic_samples`, one at a time (the cache writes each)."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        room = render_room(rng, width, height)
        depth = _disparity(room.depth)
        valid = np.ones((height, width), bool)
        if hole_fraction > 0:
            valid &= rng.random((height, width)) >= hole_fraction
        rgb = (render_rgb(room, np.random.default_rng([seed, index, 1]), weak_contrast_prob,
                          texture_prob) if with_rgb else None)
        yield RGBDSample(f'synthetic_{seed}_{index}', depth, valid, 'disparity_8bit', rgb=rgb,
                         source='dsr_ros.scene.render_room')


def render_rgb(room: RoomGeometry, rng: np.random.Generator, weak_contrast_prob: float = 0.3,
               texture_prob: float = TEXTURE_PROB) -> np.ndarray:
    """A lit, textured RGB image (uint8, H x W x 3) of a ray-cast room.

    Each surface gets an albedo (pale walls, floor and ceiling; random furniture colours) and,
    in its own plane coordinates, a texture: floor tiles or planks, posters and stripes on walls,
    stripes or blotches on furniture. Texture edges lie on smooth depth, where SPNet must learn
    to ignore them; ``texture_prob`` of the surfaces carry one (0: colour edges only where
    surfaces meet). With probability ``weak_contrast_prob`` a piece of furniture takes the
    albedo of the back wall, so its depth edges show little colour contrast. Lambertian shading
    from a random directional light plus ambient, then gamma, a slight blur and sensor noise.
    """
    surfaces = np.unique(room.surface)
    albedo = np.zeros(room.depth.shape + (3,), np.float32)
    wall = _pale(rng)
    for index in surfaces:
        mask = room.surface == index
        base = wall if index == ROOM_SURFACES.index('back_wall') else (
            _pale(rng) if index < len(ROOM_SURFACES) else _colour(rng))
        if index >= len(ROOM_SURFACES) and rng.random() < weak_contrast_prob:
            base = wall
        albedo[mask] = base * _texture(room, int(index), mask, rng, texture_prob)[mask][..., None]
    normals = _normals(room.points, room.surface)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-1.0, -0.3), rng.uniform(-1.0, -0.2)])
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.25, 0.5)
    shade = ambient + (1.0 - ambient) * np.clip(normals @ -light, 0.0, 1.0)
    linear = np.clip(albedo * shade[..., None], 0.0, 1.0)
    image = 255.0 * linear ** (1.0 / 2.2)
    noise = rng.normal(0, rng.uniform(1.0, 4.0), image.shape)
    image = cv2.GaussianBlur(image, (0, 0), 0.6) + noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _pale(rng: np.random.Generator) -> np.ndarray:
    """A wall/floor albedo: light, low saturation."""
    grey = rng.uniform(0.45, 0.85)
    return np.clip(grey + rng.normal(0, 0.06, 3), 0.05, 0.95).astype(np.float32)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A furniture albedo: any colour, any brightness."""
    return rng.uniform(0.08, 0.9, 3).astype(np.float32)


def _plane_coordinates(room: RoomGeometry, index: int) -> Tuple[np.ndarray, np.ndarray]:
    """Two metric coordinates along a surface (for furniture: around it and up)."""
    x, y, z = room.points[..., 0], room.points[..., 1], room.points[..., 2]
    name = ROOM_SURFACES[index] if index < len(ROOM_SURFACES) else 'clutter'
    if name in ('floor', 'ceiling'):
        return x, z
    if name == 'back_wall':
        return x, y
    if name in ('left_wall', 'right_wall'):
        return z, y
    return x + z, y


def _texture_odds(texture_prob: float) -> List[float]:
    """The odds of :data:`TEXTURES` with ``texture_prob`` of them textured (not ``plain``).

    The default returns :data:`TEXTURE_ODDS` as they are, so existing seeds draw the same
    textures bit for bit.
    """
    if not 0.0 <= texture_prob <= 1.0:
        raise ValueError(f'texture_prob must be in [0, 1], got {texture_prob}')
    if texture_prob == TEXTURE_PROB:
        return list(TEXTURE_ODDS)
    textured = sum(TEXTURE_ODDS[1:])
    return [1.0 - texture_prob] + [texture_prob * odds / textured for odds in TEXTURE_ODDS[1:]]


def _texture(room: RoomGeometry, index: int, mask: np.ndarray, rng: np.random.Generator,
             texture_prob: float = TEXTURE_PROB) -> np.ndarray:
    """A brightness factor (about 0.4-1.4) painting edges that have no depth edge."""
    u, v = _plane_coordinates(room, index)
    out = np.ones(room.depth.shape, np.float32)
    kind = rng.choice(list(TEXTURES), p=_texture_odds(texture_prob))
    if kind == 'stripes':
        period = rng.uniform(0.05, 0.6)
        angle = rng.uniform(0, np.pi)
        phase = (u * np.cos(angle) + v * np.sin(angle)) / period
        out = np.where(np.floor(phase) % 2 == 0, 1.0, rng.uniform(0.4, 0.8))
    elif kind == 'tiles':
        size = rng.uniform(0.15, 0.8)
        checker = (np.floor(u / size) + np.floor(v / size)) % 2
        grout = (np.abs((u / size) % 1.0 - 0.5) > 0.47) | (np.abs((v / size) % 1.0 - 0.5) > 0.47)
        out = np.where(checker == 0, 1.0, rng.uniform(0.6, 0.9)) * np.where(grout, 0.5, 1.0)
    elif kind == 'posters':
        us, vs = u[mask], v[mask]
        for _ in range(int(rng.integers(1, 5))):
            width, height = rng.uniform(0.2, 1.2), rng.uniform(0.2, 1.0)
            left, top = rng.uniform(us.min(), us.max()), rng.uniform(vs.min(), vs.max())
            inside = (u >= left) & (u < left + width) & (v >= top) & (v < top + height)
            out = np.where(inside, rng.uniform(0.35, 1.4), out)
    elif kind == 'blotches':
        noise = rng.normal(0, 1, (8, 8)).astype(np.float32)
        smooth = cv2.resize(noise, room.depth.shape[::-1], interpolation=cv2.INTER_CUBIC)
        out = 1.0 + 0.25 * np.tanh(smooth)
    return out.astype(np.float32)


def _normals(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Unit normals facing the camera, by differences within each surface (no edge smear)."""
    tangents = []
    for axis in (1, 0):
        forward = np.roll(points, -1, axis=axis) - points
        backward = points - np.roll(points, 1, axis=axis)
        same_ahead = np.roll(surface, -1, axis=axis) == surface
        tangents.append(np.where(same_ahead[..., None], forward, backward))
    normals = np.cross(tangents[0], tangents[1])
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True) + 1e-12
    facing = np.sum(normals * points, axis=-1, keepdims=True) > 0
    return np.where(facing, -normals, normals)


def room_samples(count: int = 64, height: int = 240, width: int = 320, seed: int = 0,
                 cache: Union[bool, str, None] = None) -> List[RGBDSample]:
    """``count`` random cluttered rooms in metres (:func:`dsr_ros.scene.random_room`).

    Unlimited metric scenes at robot ranges for sensor models; ``seed`` picks the set, so the
    held-out rooms (another seed) never overlap the training rooms. Depth only (the teachers'
    RGB-D rooms are :func:`synthetic_samples`). ``cache``: as there.
    """
    if cache:
        return cached_samples(cache_folder(cache, 'rooms', dict(height=height, width=width,
                                                                seed=seed)),
                              [f'room_{seed}_{index}' for index in range(count)], 'metre',
                              'dsr_ros.scene.random_room',
                              _iter_rooms(count, height, width, seed))
    return list(_iter_rooms(count, height, width, seed))


def _iter_rooms(count: int, height: int, width: int, seed: int) -> Iterator[RGBDSample]:
    for index in range(count):
        depth = random_room(np.random.default_rng([seed, index]), width, height)
        yield RGBDSample(f'room_{seed}_{index}', depth, np.ones(depth.shape, bool), 'metre',
                         source='dsr_ros.scene.random_room')
