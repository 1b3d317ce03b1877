"""The super-resolved frame in its output encoding: the one encoding, in numpy and in torch.

Why one place: the resolver returns its frame encoded once, straight from metres to the
encoding the caller publishes (``uint16`` millimetres with 0 for invalid, the ``16UC1``
convention, or float metres with NaN, ``32FC1``), so no caller converts units again. An invalid
LR pixel makes its whole ``s x s`` output block invalid; a valid one is never invalid or
non-positive (at least :data:`MIN_VALID_DEPTH_M`, or 1 mm).

A ``32FC1`` frame of a ``16UC1`` input is encoded from the unrounded metres (before issue 29
it was rounded to whole millimetres on its way through ``16UC1``). A ``16UC1`` frame of a float
input keeps the float path's values and then drops, as :func:`dsr_ros.depth_io.convert_depth`
does, what ``16UC1`` cannot hold (beyond 65.535 m) instead of saturating it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch

from dsr_ros.baselines import upsample_nearest
from dsr_ros.depth_io import convert_depth

__all__ = ['MIN_VALID_DEPTH_M', 'SuperResolved', 'blocks_view', 'encode', 'encode_t',
           'invalid_output']

#: Smallest depth a valid output pixel may hold, in metres: a valid pixel is never <= 0.
MIN_VALID_DEPTH_M = 0.001


def blocks_view(hr: np.ndarray, scale: int) -> np.ndarray:
    """``(H*s, W*s)`` -> its ``(H, s, W, s)`` view: output pixel blocks by LR pixel."""
    return hr.reshape(hr.shape[0] // scale, scale, hr.shape[1] // scale, scale)


def encode(result: np.ndarray, valid: np.ndarray, scale: int, dtype: np.dtype,
           source: np.dtype) -> np.ndarray:
    """HR metres ``result`` -> ``dtype``; ``valid`` is the LR validity, ``source`` the input's
    dtype (a float input encoded as ``uint16`` goes through the float encoding first).

    In place on HR-sized arrays and with the blocks addressed through a ``(h, s, w, s)`` view
    rather than a repeated HR mask: at 640x480 x4 these few passes over 4.9 M pixels were a
    third of a GPU frame."""
    blocks = ~valid[:, None, :, None]
    if dtype == np.uint16 and source != np.uint16:
        return convert_depth(encode(result, valid, scale, np.dtype(np.float32), source),
                             '16UC1')
    if dtype == np.uint16:
        scaled = np.multiply(result, np.float32(1000.0), dtype=np.float32)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 1, 65535, out=scaled)
        out = scaled.astype(np.uint16)
        np.copyto(blocks_view(out, scale), 0, where=blocks)
        return out
    out = np.maximum(result, MIN_VALID_DEPTH_M).astype(dtype)
    np.copyto(blocks_view(out, scale), np.nan, where=blocks)
    return out


def encode_t(result: torch.Tensor, valid: torch.Tensor, scale: int, dtype: np.dtype
             ) -> torch.Tensor:
    """:func:`encode` on the device for a ``uint16`` or float ``dtype`` of the same kind as
    the input (``uint16`` as its int16 bits, which travel back as they are)."""
    height, width = valid.shape
    blocks = ~valid[:, None, :, None]
    if dtype == np.uint16:
        millimetres = (result * 1000.0).round_().clamp_(1, 65535).to(torch.int32)
        bits = torch.where(millimetres >= 32768, millimetres - 65536,
                           millimetres).to(torch.int16)
        bits.view(height, scale, width, scale).masked_fill_(blocks, 0)
        return bits
    out = result.clamp_min(MIN_VALID_DEPTH_M).contiguous()
    if dtype == np.float64:
        out = out.to(torch.float64)
    out.view(height, scale, width, scale).masked_fill_(blocks, math.nan)
    return out


def invalid_output(dtype: np.dtype, shape: Tuple[int, int]) -> np.ndarray:
    """An all-invalid frame of ``shape`` in ``dtype`` (a frame without valid depth)."""
    if dtype == np.uint16:
        return np.zeros(shape, np.uint16)
    return np.full(shape, np.nan, dtype)


@dataclass(frozen=True)
class SuperResolved:
    """A super-resolved frame, encoded once, and the LR validity it was computed with.

    ``depth``: ``(H s, W s)`` ``uint16`` mm (0 invalid) or float metres (NaN invalid);
    ``valid``: ``(H, W)`` bool, the input's validity after ``max_depth``, which is every
    consumer's mask (an invalid LR pixel's block is invalid in ``depth``).
    """

    depth: np.ndarray
    valid: np.ndarray
    scale: int

    def hr_valid(self) -> np.ndarray:
        """``valid`` at the output's size (each LR pixel's ``s x s`` block)."""
        return upsample_nearest(self.valid, self.scale)

    def metres(self) -> np.ndarray:
        """``depth`` in float32 metres (itself for a float frame; NaN where 0 mm)."""
        if self.depth.dtype != np.uint16:
            return self.depth
        return convert_depth(self.depth, '32FC1')
