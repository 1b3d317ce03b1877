"""Overlapping tiles of a frame: where they start, how their outputs blend, and their ranges.

Why tiles: a memory budget (a large frame's activations would not fit) and a range scaling
fitted per tile (sensor models learn on patches, whose depth range is a patch's, not a
room's). Both pipelines (numpy and torch) tile with these functions, so their tiles, ramps and
blend order are the same; :func:`blend_tiles` is written once for numpy arrays and torch
tensors alike (slicing and in-place adds are the same in both).
"""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

import numpy as np

from dsr_ros.depth_scaling import Affine, DepthScaling

__all__ = ['blend_tiles', 'ramp_weights', 'tile_affines', 'tile_starts']


def tile_starts(length: int, tile: int, step: int) -> List[int]:
    """Start of each tile along an axis of ``length``: every ``step``, the last one flush."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def tile_affines(metres: np.ndarray, valid: np.ndarray, scaling: DepthScaling,
                 tops: list, lefts: list, tile: Tuple[int, int], fallback: Affine
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """``(offsets, spans)``, each ``(len(tops), len(lefts))``: the scaling fitted over each LR
    tile's valid depth in one vectorised pass; a tile without valid depth takes ``fallback``."""
    masked = np.where(valid, metres, np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(masked, tile)[np.ix_(tops, lefts)]
    offsets, spans = scaling.fit_rows(windows.reshape(len(tops) * len(lefts), -1), 'm')
    empty = np.isnan(offsets)
    offsets[empty], spans[empty] = fallback.offset, fallback.span
    shape = (len(tops), len(lefts))
    return offsets.reshape(shape), spans.reshape(shape)


def ramp_weights(shape: Tuple[int, int], ramp: int, inner: Tuple[bool, bool, bool, bool]
                 ) -> np.ndarray:
    """Blending weights of one tile's output.

    On each side that overlaps a neighbour, the outermost ``ramp // 4`` pixels get weight 0
    (a tile's last pixels see a truncated receptive field and differ visibly from the whole
    frame) and the weight then rises linearly to 1 over the rest of the overlap, so the
    neighbour's interior covers the seam.
    """
    height, width = shape
    top, bottom, left, right = inner
    dead = ramp // 4
    rise = max(ramp - dead, 1)

    def profile(length: int, low: bool, high: bool) -> np.ndarray:
        distance = np.arange(length, dtype=np.float32)
        weights = np.ones(length, np.float32)
        if ramp > 0:
            for enabled, d in ((low, distance), (high, distance[::-1])):
                if enabled:
                    weights = np.minimum(weights, np.clip((d - dead + 0.5) / rise, 0.0, 1.0))
        return weights

    return profile(height, top, bottom)[:, None] * profile(width, left, right)[None, :]


def blend_tiles(image: Any, tile: Tuple[int, int], scale: int, overlap: int,
                forward: Callable[[Any], Any], ramp: Callable[..., Any],
                accum: Any, weight: Any, check_stop: Callable[[], None]) -> None:
    """Add each overlapping LR tile's ramp-weighted output into ``accum`` and its ramp into
    ``weight`` (both ``(H s, W s)``, zero, numpy or torch alike).

    ``image`` is ``(C, H, W)``; ``forward`` maps a ``(C, h, w)`` tile to its ``(h s, w s)``
    output; ``ramp(shape, ramp, inner)`` gives that output's weights; ``check_stop`` runs
    before each tile (it raises to stop). The caller divides ``accum`` by ``weight``.
    """
    height, width = image.shape[-2:]
    tile_h, tile_w = tile
    for top in tile_starts(height, tile_h, tile_h - overlap):
        for left in tile_starts(width, tile_w, tile_w - overlap):
            check_stop()
            bottom, right = min(top + tile_h, height), min(left + tile_w, width)
            out = forward(image[..., top:bottom, left:right])
            weights = ramp(tuple(out.shape), overlap * scale,
                           (top > 0, bottom < height, left > 0, right < width))
            rows = slice(top * scale, bottom * scale)
            cols = slice(left * scale, right * scale)
            accum[rows, cols] += out * weights
            weight[rows, cols] += weights
