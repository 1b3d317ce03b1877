"""Where a point-sampled LR pixel came from, and how to move a net's output to match it.

A camera or driver that decimates by keeping one pixel per ``s x s`` block (structured light,
ROS ``image_proc`` crop_decimate) samples the HR scene at a *phase* ``(row, col)``: LR pixel
``(i, j)`` is HR pixel ``(s i + row, s j + col)``. The LR image alone cannot reveal the phase,
so a net trained on a mix of phases settles on one alignment of its own: its output is placed
as if every sample came from one fixed offset, the checkpoint's *point alignment* (measured on
validation frames by ``python -m training.checkpoints calibrate-phase``, e.g. ``(1, 1)`` for the
shipped x4 models).

When the phase is known (the node's ``sampling_phase`` parameter), the fix is exact and free:
sampling at phase ``p`` is sampling the scene shifted by ``p``, so the output is moved by
``p - alignment`` whole HR pixels (rows and columns that move in from the border repeat the
edge). Validity is not moved: an invalid LR pixel still invalidates its own ``s x s`` block.

A known phase also says that each LR pixel *is* the camera's measurement of one HR pixel, so
:func:`keep_samples` puts it back there (the node's ``keep_samples``): a net smooths the
quantised terraces of a structured-light frame, and on the frame it is compared against those
pixels are exact (x2: a quarter of the output).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ['UNKNOWN_PHASE', 'checkpoint_alignment', 'checkpoint_native_alignment', 'keep_samples',
           'move_coordinates', 'move_output', 'parse_phase', 'shift_moves', 'shift_output']

#: The node parameter's value for "phase not known" (no shift).
UNKNOWN_PHASE = (-1, -1)

Phase = Tuple[int, int]


def parse_phase(value: Optional[Sequence[int]], scale: int, what: str = 'sampling_phase'
                ) -> Optional[Phase]:
    """``None`` for an unknown phase (``None`` or ``(-1, -1)``), else a checked ``(row, col)``."""
    if value is None:
        return None
    phase = tuple(int(v) for v in value)
    if phase == UNKNOWN_PHASE:
        return None
    if len(phase) != 2 or not all(0 <= v < scale for v in phase):
        raise ValueError(f'{what} must be [-1, -1] (unknown) or [row, col] with each in '
                         f'0..{scale - 1} at x{scale}; got {list(value)}')
    return phase  # type: ignore[return-value]


def checkpoint_alignment(metadata: Mapping[str, Any]) -> Optional[Phase]:
    """The point alignment a checkpoint records (``sampling.point_alignment``), if any."""
    value = (metadata.get('sampling') or {}).get('point_alignment')
    return None if value is None else (int(value[0]), int(value[1]))


def checkpoint_native_alignment(metadata: Mapping[str, Any]) -> Optional[Tuple[float, float]]:
    """Where a checkpoint's net places a native (centred-footprint) sample, if measured
    (``sampling.native_alignment``, HR pixels within the ``s x s`` block; ``(s - 1) / 2`` is
    centred). ``None``: not measured, taken as centred (no move)."""
    value = (metadata.get('sampling') or {}).get('native_alignment')
    return None if value is None else (float(value[0]), float(value[1]))


def move_output(hr: np.ndarray, rows: float, cols: float) -> np.ndarray:
    """``hr`` moved down by ``rows`` and right by ``cols`` HR pixels, sub-pixel allowed.

    ``out[y, x] = hr(y - rows, x - cols)``, read by separable linear interpolation with the
    coordinates clamped to the image (the border repeats). Whole-pixel moves are exact index
    shifts (:func:`shift_output`). Why sub-pixel: a native camera's sample sits at the centre
    of its ``s x s`` block, ``(s - 1) / 2``, which at even scales is between two HR pixels,
    while a net trained on point samples places it on a whole pixel.
    """
    rows, cols = float(rows), float(cols)
    if rows.is_integer() and cols.is_integer():
        return shift_output(hr, int(rows), int(cols))
    out = hr
    for axis, amount in ((-2, rows), (-1, cols)):
        if amount == 0:
            continue
        length = out.shape[axis]
        low, high, frac = move_coordinates(length, amount)
        shape = [1] * out.ndim
        shape[axis] = length
        frac = frac.reshape(shape)
        out = (np.take(out, low, axis=axis) * (1 - frac)
               + np.take(out, high, axis=axis) * frac).astype(hr.dtype, copy=False)
    return out


def move_coordinates(length: int, amount: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One axis of :func:`move_output`: for each output index, the source pixels ``low`` and
    ``high`` (int64) and the float32 weight ``frac`` of ``high``, coordinates clamped to the
    axis. The torch twin reads the same arrays, so both interpolate with the same bits."""
    source = np.clip(np.arange(length, dtype=np.float64) - amount, 0, length - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, length - 1)
    return low, high, (source - low).astype(np.float32)


def shift_moves(shape: Sequence[int], rows: int, cols: int) -> bool:
    """Whether shifting an image of ``shape`` (``(..., H, W)``) by ``(rows, cols)`` moves it;
    a shift that would leave no pixel of the image in it is refused (``ValueError``)."""
    if rows == 0 and cols == 0:
        return False
    height, width = shape[-2:]
    if abs(rows) >= height or abs(cols) >= width:
        raise ValueError(f'cannot shift a {height}x{width} image by ({rows}, {cols})')
    return True


def shift_output(hr: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``hr`` moved down by ``rows`` and right by ``cols`` HR pixels (negative: up / left).

    The pixels that enter from the border repeat the nearest edge row or column; NaN holes
    move with their values.
    """
    if not shift_moves(hr.shape, rows, cols):
        return hr
    height, width = hr.shape[-2:]
    src_rows = np.clip(np.arange(height) - rows, 0, height - 1)
    src_cols = np.clip(np.arange(width) - cols, 0, width - 1)
    return hr[..., src_rows[:, None], src_cols[None, :]]


def keep_samples(hr: np.ndarray, lr: np.ndarray, valid: np.ndarray, phase: Phase) -> np.ndarray:
    """``hr`` with every valid LR pixel written back at its HR position ``s i + phase``.

    ``lr`` and ``valid`` are the LR frame (in ``hr``'s unit) and its validity; ``s`` is the
    ratio of the two shapes. Returns a new array.
    """
    scale = hr.shape[-2] // lr.shape[-2]
    if scale < 1 or hr.shape[-2:] != (lr.shape[0] * scale, lr.shape[1] * scale):
        raise ValueError(f'an HR image {hr.shape} is not an integer multiple of {lr.shape}')
    row, col = phase
    out = np.array(hr, copy=True)
    out[..., row::scale, col::scale][..., valid] = lr[valid]
    return out
