"""Where the output's samples sit, in torch: moves, kept samples and the self-ensemble.

The twins of :mod:`dsr_ros.sampling_phase` (``shift_output``, ``move_output``,
``keep_samples``) and of :func:`dsr_ros.self_ensemble.average_over_flips` (through its
:class:`~dsr_ros.self_ensemble.FlipOps`), with the same order of operations so that on a CPU
they give numpy's bits. Index tensors are cached per shape, move and device: built once, at a
frame's first (eager) run, they are what a captured CUDA graph reads.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, Tuple

import torch

from dsr_ros.sampling_phase import move_coordinates, shift_moves
from dsr_ros.self_ensemble import FlipOps, Member, average_over_flips

__all__ = ['TORCH_FLIPS', 'average_over_flips_t', 'keep_samples_t', 'move_output_t',
           'shift_output_t']

Forward = Callable[[torch.Tensor], torch.Tensor]


@functools.lru_cache(maxsize=64)
def _shift_index(length: int, amount: int, device: torch.device) -> torch.Tensor:
    return (torch.arange(length, device=device) - amount).clamp_(0, length - 1)


@functools.lru_cache(maxsize=64)
def _interp_index(length: int, amount: float, device: torch.device
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``move_output``'s ``low``, ``high`` and float32 ``frac`` for one axis
    (:func:`~dsr_ros.sampling_phase.move_coordinates`, once per shape and move)."""
    low, high, frac = move_coordinates(length, amount)
    return (torch.from_numpy(low).to(device), torch.from_numpy(high).to(device),
            torch.from_numpy(frac).to(device))


def shift_output_t(hr: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``sampling_phase.shift_output`` in torch: moved by whole pixels, the border repeats."""
    if not shift_moves(hr.shape, rows, cols):
        return hr
    height, width = hr.shape[-2:]
    out = hr.index_select(-2, _shift_index(height, rows, hr.device)) if rows else hr
    return out.index_select(-1, _shift_index(width, cols, hr.device)) if cols else out


def move_output_t(hr: torch.Tensor, rows: float, cols: float) -> torch.Tensor:
    """``sampling_phase.move_output`` in torch: ``out[y, x] = hr(y - rows, x - cols)`` by
    separable linear interpolation, coordinates clamped (the border repeats); whole-pixel
    moves are exact shifts. Same order of operations as numpy (rows, then columns;
    ``a (1 - f) + b f`` in float32)."""
    rows, cols = float(rows), float(cols)
    if rows.is_integer() and cols.is_integer():
        return shift_output_t(hr, int(rows), int(cols))
    out = hr
    for dim, amount in ((-2, rows), (-1, cols)):
        if amount == 0:
            continue
        low, high, frac = _interp_index(out.shape[dim], amount, out.device)
        shape = [1] * out.dim()
        shape[dim] = -1
        frac = frac.view(shape)
        out = out.index_select(dim, low) * (1 - frac) + out.index_select(dim, high) * frac
    return out


def keep_samples_t(hr: torch.Tensor, lr: torch.Tensor, valid: torch.Tensor,
                   phase: Sequence[int]) -> torch.Tensor:
    """``sampling_phase.keep_samples`` in torch, in place: each valid LR pixel written back
    at its HR position ``s i + phase``. Returns ``hr``."""
    scale = hr.shape[-2] // lr.shape[-2]
    if scale < 1 or tuple(hr.shape[-2:]) != (lr.shape[0] * scale, lr.shape[1] * scale):
        raise ValueError(f'an HR image {tuple(hr.shape)} is not an integer multiple of '
                         f'{tuple(lr.shape)}')
    row, col = int(phase[0]), int(phase[1])
    samples = hr[..., row::scale, col::scale]
    samples.copy_(torch.where(valid, lr, samples))
    return hr


def _to_member_t(batch: torch.Tensor, member: Member) -> torch.Tensor:
    transpose, rows, cols = member
    if transpose:
        batch = batch.transpose(-1, -2)
    dims = [d for d, on in ((-2, rows), (-1, cols)) if on]
    if dims:
        batch = batch.flip(dims)
    return batch.contiguous()


def _from_member_t(output: torch.Tensor, member: Member) -> torch.Tensor:
    transpose, rows, cols = member
    dims = [d for d, on in ((-2, rows), (-1, cols)) if on]
    if dims:
        output = output.flip(dims)
    return output.transpose(-1, -2) if transpose else output


#: :class:`~dsr_ros.self_ensemble.FlipOps` of torch tensors (sums in place on the device).
TORCH_FLIPS = FlipOps(_to_member_t, _from_member_t, shift_output_t,
                      lambda output: output.clone(memory_format=torch.contiguous_format),
                      lambda total, output: total.add_(output),
                      lambda total, passes: total.div_(passes))


def average_over_flips_t(forward: Forward, batch: torch.Tensor, passes: int, scale: int,
                         alignment: Optional[Sequence[int]] = None) -> torch.Tensor:
    """``self_ensemble.average_over_flips`` in torch (same members, order and placement)."""
    return average_over_flips(forward, batch, passes, scale, alignment, TORCH_FLIPS)
