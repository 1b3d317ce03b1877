"""MATLAB's ``imresize(..., 'bicubic')`` for upsampling, the paper's bicubic baseline.

The paper's bicubic row on Middlebury 2005 is reproduced by MATLAB-style bicubic upsampling of
the shipped LR inputs (method.md, "Protocol details"): Keys' cubic kernel with a = -0.5 (OpenCV
uses a = -0.75), MATLAB's pixel-centre mapping ``u = x / s + (1 - 1 / s) / 2``, symmetric
(mirror) boundary handling, rows first, then columns, and on 8-bit data a uint8 result. When
upsampling MATLAB does not widen the kernel, so antialiasing plays no part.
"""

from __future__ import annotations

import numpy as np

__all__ = ['cubic_kernel', 'imresize_bicubic']


def cubic_kernel(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (MATLAB's ``cubic``: a = -0.5)."""
    absx = np.abs(x)
    absx2, absx3 = absx ** 2, absx ** 3
    near = (a + 2) * absx3 - (a + 3) * absx2 + 1
    far = a * absx3 - 5 * a * absx2 + 8 * a * absx - 4 * a
    return np.where(absx <= 1, near, np.where(absx <= 2, far, 0.0))


def _weights(in_length: int, scale: int, a: float) -> tuple:
    """Per output index: the 4 source indices (mirrored at the borders) and their weights."""
    out = np.arange(1, in_length * scale + 1, dtype=np.float64)
    u = out / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - 2.0)
    indices = left[:, None] + np.arange(6)[None, :]
    weights = cubic_kernel(u[:, None] - indices, a)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    return mirror[(indices.astype(np.int64) - 1) % (2 * in_length)], weights


def imresize_bicubic(image: np.ndarray, scale: int, a: float = -0.5,
                     to_uint8: bool = False) -> np.ndarray:
    """Upsample a 2-D image by the integer ``scale`` like MATLAB's bicubic ``imresize``.

    ``to_uint8`` rounds and saturates the result to 0..255, what ``imresize`` returns for a
    uint8 image (the passes run in double precision; only the result is rounded).
    """
    if image.ndim != 2:
        raise ValueError(f'expected a 2-D image, got shape {image.shape}')
    if int(scale) != scale or scale < 1:
        raise ValueError(f'scale must be a positive integer, got {scale!r}')
    result = image.astype(np.float64)
    for axis in (0, 1):
        idx, weights = _weights(result.shape[axis], int(scale), a)
        moved = np.moveaxis(result, axis, 0)
        moved = np.einsum('ok,okn->on', weights, moved[idx])
        result = np.moveaxis(moved, 0, axis)
    if to_uint8:
        return np.clip(np.rint(result), 0, 255).astype(np.uint8)
    return result
