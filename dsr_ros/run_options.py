"""The per-frame options of :meth:`dsr_ros.inference.DepthSuperResolver.run`, checked once.

Why a frozen object passed per call: the node's run-time parameters, the sensor suite and the
tools used to set resolver attributes before every frame; a set of attributes poked one by one
can be read half-changed, and each caller repeated the checks. Here the values are validated
when the object is built (the node's start-up and its run-time changes share that one check,
see :mod:`dsr_ros.ros.node_parameters`) and a frame runs with one consistent set.

What is fixed for a resolver's life (device, precision, the net, its memory layout and
padding, the frame pipeline) stays a constructor argument; what may change from one frame to
the next is here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.self_ensemble import check_passes

__all__ = ['NORMALIZATION_MODES', 'RunOptions']

#: ``checkpoint``: the scaling the net was trained with (the default); ``range``: robust
#: per-frame percentiles (1-99); ``minmax``: per-frame min-max; ``fixed``: metres / max_value.
NORMALIZATION_MODES = ('checkpoint', 'range', 'minmax', 'fixed')


@dataclass(frozen=True)
class RunOptions:
    """How one frame is super-resolved; the fields are the resolver's constructor keywords.

    Args:
        input_normalization: ``checkpoint``, ``range``, ``minmax`` or ``fixed``
            (see :mod:`dsr_ros.depth_scaling`).
        max_value: the divisor of ``fixed``, in metres.
        tile_size: LR tile edge in pixels; 0 = whole frame, or as large as ``max_memory_mb``
            allows.
        tile_overlap: LR pixels shared by neighbouring tiles (blended with linear ramps).
        scaling_tile: LR tile edge a ``range`` scaling is fitted over (-1: the checkpoint's
            ``fit_tile``; 0: the whole frame).
        max_memory_mb: peak resident memory to stay under (0 = no limit).
        sampling_phase: ``(row, col)`` at which frames run without a geometry were
            point-sampled; None or ``(-1, -1)``: not known (the output is not moved).
        keep_samples: with a known phase, write each valid LR pixel back at its HR position.
        ensemble_passes: 1, 2, 4 or 8 forward passes over flipped copies, averaged.

    Building one raises ``ValueError`` with a one-line reason naming the field.
    """

    input_normalization: str = 'checkpoint'
    max_value: float = 10.0
    tile_size: int = 0
    tile_overlap: int = 8
    scaling_tile: int = -1
    max_memory_mb: float = 0.0
    sampling_phase: Optional[Tuple[int, int]] = None
    keep_samples: bool = True
    ensemble_passes: int = 1

    def __post_init__(self) -> None:
        phase = self.sampling_phase
        if phase is not None:
            if len(phase) != 2:
                raise ValueError(f'sampling_phase must be [row, col] or [-1, -1], got '
                                 f'{list(phase)}')
            phase = (int(phase[0]), int(phase[1]))
            phase = None if phase == (-1, -1) else phase
        object.__setattr__(self, 'sampling_phase', phase)
        object.__setattr__(self, 'ensemble_passes', check_passes(self.ensemble_passes))
        for name in ('tile_size', 'tile_overlap', 'scaling_tile'):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, 'max_value', float(self.max_value))
        object.__setattr__(self, 'max_memory_mb', float(self.max_memory_mb))
        object.__setattr__(self, 'keep_samples', bool(self.keep_samples))
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str:
        """Why these values cannot run a frame, or '' (the one check of them)."""
        if self.input_normalization not in NORMALIZATION_MODES:
            return (f'input_normalization must be one of {NORMALIZATION_MODES}, got '
                    f'{self.input_normalization!r}')
        tile, overlap = self.tile_size, self.tile_overlap
        if tile < 0 or overlap < 0 or (tile and overlap * 2 >= tile):
            return f'tile_size {tile} must be 0 or more than twice tile_overlap {overlap}'
        if self.scaling_tile > 0 and self.scaling_tile <= 2 * overlap:
            return (f'scaling_tile {self.scaling_tile} must be -1, 0 or more than twice '
                    f'tile_overlap {overlap}')
        if not (math.isfinite(self.max_value) and self.max_value > 0):
            return f'max_value must be positive, got {self.max_value!r}'
        if not (math.isfinite(self.max_memory_mb) and self.max_memory_mb >= 0):
            return f'max_memory_mb must be 0 or positive, got {self.max_memory_mb!r}'
        return ''

    def replace(self, **changes: Any) -> 'RunOptions':
        """A checked copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def input_scaling(self, checkpoint: DepthScaling) -> DepthScaling:
        """The scaling frames are given to the net with (in metres); ``checkpoint`` is the
        one the net was trained with."""
        mode = self.input_normalization
        if mode == 'checkpoint':
            return checkpoint
        if mode == 'range':
            return DepthScaling('range', low_percentile=1.0, high_percentile=99.0,
                                min_relative_span=0.1)
        if mode == 'minmax':
            return DepthScaling('range')
        return DepthScaling('fixed', max_value=self.max_value, unit='m')

    def fit_tile(self, checkpoint: DepthScaling) -> int:
        """LR tile edge the input scaling is fitted over (0 = the whole frame)."""
        scaling = self.input_scaling(checkpoint)
        if scaling.mode != 'range':
            return 0
        tile = scaling.fit_tile if self.scaling_tile < 0 else self.scaling_tile
        return max(tile, 2 * self.tile_overlap + 1) if tile else 0
