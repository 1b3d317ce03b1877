"""Validity, hole filling and robust range fits in torch: the frame's first steps on a device.

The twins of ``depth_io.valid_mask``, ``net_input.fill_invalid`` and
``DepthScaling.fit_rows``, written so that on a CPU they give numpy's bits (the tie rules of
scipy's feature transform, numpy's linear percentile in float64) and so that no step waits
for the host (no data-dependent shapes): :mod:`dsr_ros.frame_pipeline_torch` runs them inside
one CUDA graph per frame, and training's torch patch pipeline reuses them.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import torch

from dsr_ros.depth_scaling import DepthScaling

__all__ = ['EDT_CHUNK_ELEMENTS', 'fill_invalid_t', 'fit_rows_t', 'nearest_valid_index',
           'row_percentile_t', 'valid_mask_t']

#: Squared distance standing for "no valid pixel in this column" (int32 arithmetic: with LR
#: frames up to 8192 px wide a real cost stays below it and the sum below 2**31).
_NO_PIXEL = 1 << 30
#: Most int32 elements one chunk of the hole filling's row search allocates (64 MiB).
EDT_CHUNK_ELEMENTS = 1 << 24


def valid_mask_t(depth: torch.Tensor) -> torch.Tensor:
    """``dsr_ros.depth_io.valid_mask`` in torch: integers > 0, floats finite and > 0."""
    if not depth.is_floating_point():
        return depth > 0
    return torch.isfinite(depth) & (depth > 0)


def nearest_valid_index(valid: torch.Tensor) -> torch.Tensor:
    """Flat index (``row * W + col``) of each pixel's nearest valid pixel; ``(..., H, W)``.

    The same index as ``scipy.ndimage.distance_transform_edt(~valid, return_indices=True)``,
    ties included, so hole filling matches the numpy path bit for bit. scipy's feature
    transform is separable: along each column it takes the nearest valid row (the upper one on
    a tie), then along each row the column whose candidate is nearest (the leftmost on a tie;
    its Voronoi construction keeps every candidate that can be nearest and stops at the first
    of equals). Here the first stage is two cumulative scans and the second an exact
    ``argmin`` over all columns (``argmin`` returns the first minimum), in row chunks of at
    most :data:`EDT_CHUNK_ELEMENTS`: ``H W^2`` work, a few million for an LR camera frame and
    no data-dependent shapes (no host sync). An image without a valid pixel gets
    in-range indices of no meaning.
    """
    *lead, height, width = valid.shape
    flat = valid.reshape(-1, height, width)
    device = flat.device
    rows = torch.arange(height, device=device, dtype=torch.int32).view(1, height, 1)
    above = torch.where(flat, rows, -1).cummax(dim=1).values
    below = torch.where(flat, rows, _NO_PIXEL).flip(1).cummin(dim=1).values.flip(1)
    has_above, has_below = above >= 0, below < _NO_PIXEL
    use_above = has_above & (~has_below | (rows - above <= below - rows))
    nearest_row = torch.where(use_above, above, below)
    gap = nearest_row - rows
    cost_rows = torch.where(has_above | has_below, gap * gap, _NO_PIXEL).reshape(-1, width)
    cols = torch.arange(width, device=device, dtype=torch.int32)
    across = (cols.view(-1, 1) - cols.view(1, -1)) ** 2  # (pixel column, candidate column)
    best = torch.empty(cost_rows.shape, dtype=torch.long, device=device)
    chunk = max(1, EDT_CHUNK_ELEMENTS // (width * width))
    for start in range(0, cost_rows.shape[0], chunk):
        part = cost_rows[start:start + chunk]
        best[start:start + chunk] = (part[:, None, :] + across[None]).argmin(dim=-1)
    best = best.view(flat.shape)
    best_row = nearest_row.gather(2, best).long().clamp_(0, height - 1)  # in range: no pixel
    return (best_row * width + best).reshape(*lead, height, width)


def fill_invalid_t(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``net_input.fill_invalid`` in torch: invalid pixels take their nearest valid one."""
    *lead, height, width = values.shape
    index = nearest_valid_index(valid).reshape(-1, height * width)
    return values.reshape(-1, height * width).gather(1, index).reshape(*lead, height, width)


def fit_rows_t(scaling: DepthScaling, values: torch.Tensor, unit: str = 'm'
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``DepthScaling.fit_rows`` in torch: float64 ``(offsets, spans)`` per row of ``values``
    (``(N, K)``, NaN where invalid; NaN out for a row without a valid value).

    The same float64 operations as numpy's linear percentile, so the fitted ranges agree to
    the bit (a fused multiply-add on a GPU may move the last one).
    """
    if not scaling.accepts(unit):
        raise ValueError(f'this scaling divides {scaling.unit} by {scaling.max_value}; '
                         f'it cannot scale depth in {unit}')
    values = values.to(torch.float64)
    rows = values.shape[0]
    if scaling.mode == 'fixed':
        return (torch.zeros(rows, dtype=torch.float64, device=values.device),
                torch.full((rows,), scaling.max_value, dtype=torch.float64,
                           device=values.device))
    missing = torch.isnan(values)
    ordered = torch.where(missing, math.inf, values).sort(dim=1).values  # invalid last
    count = (~missing).sum(dim=1)
    empty = count == 0
    last = (count - 1).clamp(min=0)
    low = row_percentile_t(ordered, last, scaling.low_percentile)
    high = row_percentile_t(ordered, last, scaling.high_percentile)
    span = torch.maximum(high - low, scaling.min_relative_span * high.abs())
    degenerate = ~(span > 1e-6 * high.abs().clamp(min=1e-6))
    span = torch.where(degenerate, high.abs().clamp(min=1e-6), span)
    nan = torch.full_like(low, math.nan)
    return torch.where(empty, nan, low), torch.where(empty, nan, span)


def row_percentile_t(ordered: torch.Tensor, last: torch.Tensor,
                     percentile: Union[float, torch.Tensor]) -> torch.Tensor:
    """``depth_scaling._row_percentile`` in torch (numpy's linear method, same formula) of each
    row of ``ordered`` (sorted, ``last + 1`` valid values first); ``percentile`` one number
    or one per row."""
    percentile = torch.as_tensor(percentile, dtype=torch.float64, device=ordered.device)
    position = last.to(torch.float64) * (percentile / 100.0)
    below = torch.floor(position)
    gamma = position - below
    index = below.long()
    lower = ordered.gather(1, index[:, None])[:, 0]
    upper = ordered.gather(1, torch.minimum(index + 1, last)[:, None])[:, 0]
    difference = upper - lower
    return torch.where(gamma >= 0.5, upper - difference * (1 - gamma),
                       lower + difference * gamma)
