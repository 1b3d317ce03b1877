"""The noise, quantisation and invalid-pixel models of the sensor degradation, one function each.

:class:`training.data.sensor_degradation.SensorDegradation` draws their parameters per patch
and chains them; the real-sensor suite (:mod:`training.evaluation.families`) calls them with
fixed parameters. Each draws only from the generator passed in, in a fixed order, so a degraded
frame is reproducible:

* noise: ToF (:func:`add_tof_noise`, sigma proportional to depth), structured light
  (:func:`add_structured_light_noise`: noise on disparity ``fB / z``, optional 1/8-px steps)
  and a structured-light camera's own full frame (:func:`structured_light_frame`: disparity
  noise correlated over neighbouring pixels, as block matching makes it);
* quantisation (:func:`quantize`): 1 mm steps (16UC1) or 256 levels over the valid range;
* invalid pixels: blobs (:func:`blob_holes`), dropouts on the far side of depth edges
  (:func:`edge_dropouts`), invalid borders (:func:`border_holes`); and mixed ("flying")
  pixels at depth edges (:func:`flying_pixels`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

__all__ = ['NOISE', 'QUANTIZATION', 'add_structured_light_noise', 'add_tof_noise',
           'blob_holes', 'border_holes', 'edge_dropouts', 'edge_jump', 'flying_pixels',
           'quantize', 'structured_light_frame']

NOISE = ('none', 'tof', 'structured_light')
QUANTIZATION = ('none', 'mm', '8bit')


def add_tof_noise(depth: np.ndarray, rng: np.random.Generator, relative_sigma: float
                  ) -> np.ndarray:
    """ToF-like noise: Gaussian with sigma proportional to depth (``relative_sigma * z``)."""
    noise = rng.standard_normal(depth.shape).astype(np.float32)
    return (depth * (1.0 + relative_sigma * noise)).astype(np.float32)


def add_structured_light_noise(depth: np.ndarray, rng: np.random.Generator,
                               focal_baseline: float, disparity_sigma: float,
                               subpixel: int = 8) -> np.ndarray:
    """Structured-light noise: Gaussian noise on disparity ``fB / z``, optionally quantised.

    A disparity error ``dd`` is a depth error ``z^2 dd / fB``: sigma grows with depth squared,
    and ``subpixel`` > 0 quantises disparity to ``1 / subpixel`` px (Kinect v1: 1/8).
    """
    return _depth_with_disparity_noise(depth, rng.standard_normal(depth.shape) * disparity_sigma,
                                       focal_baseline, subpixel)


def _depth_with_disparity_noise(depth: np.ndarray, noise: np.ndarray, focal_baseline: float,
                                subpixel: int) -> np.ndarray:
    """Depth whose disparity ``fB / z`` is off by ``noise`` px, then quantised to
    ``1 / subpixel`` px (none when 0): both structured-light models share this."""
    with np.errstate(divide='ignore', invalid='ignore'):
        disparity = focal_baseline / np.maximum(depth, 1e-3)
    disparity = disparity + noise
    if subpixel:
        disparity = np.round(disparity * subpixel) / subpixel
    disparity = np.maximum(disparity, 1.0 / max(subpixel, 8))
    return (focal_baseline / disparity).astype(np.float32)


def structured_light_frame(depth: np.ndarray, rng: np.random.Generator,
                           focal_baseline: float, disparity_sigma: float, correlation: float,
                           subpixel: int = 8) -> np.ndarray:
    """A structured-light camera's full-resolution frame of the scene ``depth`` (metres).

    Block matching gives disparity ``fB / z`` an error shared by neighbouring pixels: Gaussian
    noise of ``disparity_sigma`` px, smoothed over ``correlation`` px (sigma) and rescaled to
    keep its sigma; ``subpixel`` > 0 then quantises disparity to ``1 / subpixel`` px, which
    turns slanted surfaces into the terraces of Kinect / PrimeSense frames.
    """
    noise = rng.standard_normal(depth.shape).astype(np.float32)
    if correlation > 0:
        # Smoothing white noise with a Gaussian of sigma c divides its sigma by 2 c sqrt(pi).
        gain = 2.0 * correlation * np.sqrt(np.pi)
        noise = gain * cv2.GaussianBlur(noise, (0, 0), sigmaX=correlation,
                                        borderType=cv2.BORDER_REFLECT)
    return _depth_with_disparity_noise(depth, noise * disparity_sigma, focal_baseline, subpixel)


def quantize(depth: np.ndarray, kind: str, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """``mm``: 1 mm steps (16UC1); ``8bit``: 256 levels over the valid range; ``none``."""
    if kind == 'none':
        return depth
    if kind == 'mm':
        return (np.round(depth * 1000.0) / 1000.0).astype(np.float32)
    if kind != '8bit':
        raise ValueError(f'unknown quantization {kind!r}, expected one of {QUANTIZATION}')
    values = depth[valid] if valid is not None and valid.any() else depth
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return depth
    step = (high - low) / 255.0
    return (np.round((depth - low) / step) * step + low).astype(np.float32)


def _four_neighbours(depth: np.ndarray) -> np.ndarray:
    """``(4, H, W)``: each pixel's up, down, left and right neighbour (edges replicated)."""
    padded = np.pad(depth, 1, mode='edge')
    height, width = depth.shape
    return np.stack([padded[r:r + height, c:c + width]
                     for r, c in ((0, 1), (2, 1), (1, 0), (1, 2))])


def edge_jump(depth: np.ndarray) -> np.ndarray:
    """Largest absolute depth difference to a 4-neighbour, per pixel (edge strength)."""
    return np.abs(_four_neighbours(depth) - depth).max(axis=0)


def _relative_edges(depth: np.ndarray, threshold: float) -> np.ndarray:
    return edge_jump(depth) > threshold * np.maximum(depth, 1e-3)


def blob_holes(shape: Tuple[int, int], rng: np.random.Generator, fraction: float
               ) -> np.ndarray:
    """Random filled ellipses covering about ``fraction`` of the image."""
    height, width = shape
    mask = np.zeros(shape, np.uint8)
    for _ in range(64):
        if mask.mean() >= fraction:
            break
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(1, max(2, width // 6))),
                int(rng.integers(1, max(2, height // 6))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask > 0


def edge_dropouts(depth: np.ndarray, rng: np.random.Generator, rate: float,
                  threshold: float = 0.05) -> np.ndarray:
    """Pixels on the far side of depth discontinuities, each dropped with probability ``rate``.

    A pixel is an edge pixel when a 4-neighbour is nearer by more than ``threshold`` x its
    depth (the shadowed side, where structured light loses the pattern).
    """
    nearest = _four_neighbours(depth).min(axis=0)
    far_side = depth - nearest > threshold * np.maximum(depth, 1e-3)
    return far_side & (rng.random(depth.shape) < rate)


def border_holes(shape: Tuple[int, int], rng: np.random.Generator, max_width: int
                 ) -> np.ndarray:
    """Invalid bands of 0..``max_width`` pixels on each side (lens vignetting, IR offsets)."""
    mask = np.zeros(shape, bool)
    top, bottom, left, right = (int(v) for v in rng.integers(0, max_width + 1, 4))
    mask[:top] = True
    mask[mask.shape[0] - bottom:] = True
    mask[:, :left] = True
    mask[:, mask.shape[1] - right:] = True
    return mask


def flying_pixels(depth: np.ndarray, rng: np.random.Generator, rate: float,
                  threshold: float) -> Tuple[np.ndarray, int]:
    """Mix edge pixels with a neighbour across the edge: ``a z + (1 - a) z_n``, a ~ U(0, 1)."""
    edges = _relative_edges(depth, threshold) & (rng.random(depth.shape) < rate)
    if not edges.any():
        return depth, 0
    neighbours = _four_neighbours(depth)
    farthest = np.take_along_axis(
        neighbours, np.abs(neighbours - depth).argmax(axis=0)[None], axis=0)[0]
    alpha = rng.random(depth.shape).astype(np.float32)
    out = depth.copy()
    out[edges] = alpha[edges] * depth[edges] + (1 - alpha[edges]) * farthest[edges]
    return out, int(edges.sum())
