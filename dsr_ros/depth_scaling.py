"""How depth is mapped to the network's input range and back: the one definition.

Training, export, evaluation and the node all scale depth through :class:`DepthScaling`, and a
checkpoint stores the scaling its net was trained with (``DepthScaling.to_dict``), so the node
feeds the net exactly what it saw in training unless told otherwise.

Two modes:

* ``fixed``: ``value / max_value`` in a declared unit. Sensor models are trained this way in
  metres (``unit: m``, ``max_value: 10``): depth-dependent sensor noise only makes sense on an
  absolute scale, and a frame's content never changes how another part of it is scaled.
* ``range``: per frame, ``(value - p_low) / (p_high - p_low)`` with robust percentiles of the
  frame's valid pixels. With ``low_percentile=0, high_percentile=100`` it is the plain min-max of
  the research models; robust percentiles (e.g. 1/99) keep one flying pixel from rescaling the
  rest of the frame.

Units: the node works in metres (``16UC1`` millimetres are converted first); training samples
declare a unit (see ``training.data.sample.UNITS``). A ``fixed`` scaling in ``m`` applied to
data in another unit is refused, not silently wrong.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

__all__ = ['Affine', 'DepthScaling', 'SCALING_MODES', 'SENSOR_SCALING', 'RESEARCH_SCALING']

SCALING_MODES = ('fixed', 'range')


@dataclass(frozen=True)
class Affine:
    """``normalised = (value - offset) / span`` and its inverse."""

    offset: float
    span: float

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Depth in its unit -> the net's range."""
        return (values - self.offset) / self.span

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """The net's range -> depth in the input's unit."""
        return values * self.span + self.offset


@dataclass(frozen=True)
class DepthScaling:
    """A depth normalisation, as stored in checkpoints.

    Args:
        mode: ``fixed`` or ``range`` (see the module docstring).
        max_value: divisor of ``fixed`` mode, in ``unit``.
        unit: unit of ``max_value`` (``m`` for metric models, ``disparity_8bit`` for the
            paper's 8-bit disparity / 255); ``any`` for ``range`` mode, which is unit-free.
        low_percentile, high_percentile: the percentiles of ``range`` mode (0-100).
        min_relative_span: ``range`` mode's span is at least this fraction of the far
            percentile's magnitude, so a flat frame (a wall) is not stretched until its noise
            looks like structure.
        fit_tile: at inference, fit ``range`` mode over LR tiles of this edge (blended) instead
            of the whole frame (0). A net trained on patches scaled per patch sees a patch's
            depth range; a room's range squeezes its detail (see
            :meth:`dsr_ros.inference.DepthSuperResolver._run_locally_scaled`).
    """

    mode: str = 'range'
    max_value: float = 1.0
    unit: str = 'any'
    low_percentile: float = 0.0
    high_percentile: float = 100.0
    min_relative_span: float = 0.0
    fit_tile: int = 0

    def __post_init__(self) -> None:
        if self.mode not in SCALING_MODES:
            raise ValueError(f'depth scaling mode must be one of {SCALING_MODES}, '
                             f'got {self.mode!r}')
        if not (math.isfinite(self.max_value) and self.max_value > 0):
            raise ValueError(f'depth scaling max_value must be positive, got {self.max_value!r}')
        if not 0.0 <= self.min_relative_span <= 10.0:
            raise ValueError('depth scaling min_relative_span must be in [0, 10], got '
                             f'{self.min_relative_span!r}')
        if self.fit_tile < 0 or (self.fit_tile and self.mode != 'range'):
            raise ValueError(f'depth scaling fit_tile must be 0, or positive in range mode; got '
                             f'{self.fit_tile!r} in {self.mode} mode')
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError('depth scaling percentiles must satisfy 0 <= low < high <= 100, '
                             f'got {self.low_percentile} and {self.high_percentile}')

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> Dict[str, Any]:
        """Plain data for a checkpoint's ``normalization`` entry."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> 'DepthScaling':
        """Read a checkpoint's ``normalization`` entry, including the pre-1.1 spellings.

        Older checkpoints said ``{'mode': 'minmax'}`` (per-frame min-max = ``range`` 0/100) or
        ``{'mode': 'fixed', 'max_value': 255, 'unit': 'disparity_8bit'}`` (the paper).
        """
        if not data:
            return RESEARCH_SCALING
        data = dict(data)
        mode = data.get('mode', 'range')
        if mode == 'minmax':
            return cls('range', unit='any', low_percentile=0.0, high_percentile=100.0)
        unit = str(data.get('unit', 'any'))
        if mode == 'fixed' and unit.startswith('disparity_8bit'):
            unit = 'disparity_8bit'
        return cls(mode=mode, max_value=float(data.get('max_value', 1.0)), unit=unit,
                   low_percentile=float(data.get('low_percentile', 0.0)),
                   high_percentile=float(data.get('high_percentile', 100.0)),
                   min_relative_span=float(data.get('min_relative_span', 0.0)),
                   fit_tile=int(data.get('fit_tile', 0)))

    # ------------------------------------------------------------------ use
    def accepts(self, unit: str) -> bool:
        """Whether depth in ``unit`` can be scaled: ``range`` takes any unit, ``fixed`` its own."""
        return self.mode == 'range' or 'any' in (self.unit, unit) or self.unit == unit

    def fit(self, valid_values: np.ndarray, unit: str = 'any') -> Affine:
        """The affine map for one frame, from its valid values (in ``unit``)."""
        values = np.asarray(valid_values, dtype=np.float64).ravel()
        if values.size == 0 and self.mode == 'range':
            raise ValueError('cannot scale a frame without valid depth')
        offsets, spans = self.fit_rows(values[None], unit)
        return Affine(float(offsets[0]), float(spans[0]))

    def fit_rows(self, values: np.ndarray, unit: str = 'any') -> Tuple[np.ndarray, np.ndarray]:
        """``(offsets, spans)`` of one affine map per row of ``values`` (``(N, K)``, NaN where a
        pixel is invalid), each as :meth:`fit` gives for that row's valid values.

        Why rows: the node fits the range over every 32-px LR tile of a frame (hundreds of
        tiles); one sort of all of them costs what a few ``np.percentile`` calls did. The
        percentiles are numpy's default (linear) ones, to the last bit. A row without a valid
        value gets NaN: the caller decides what such a tile uses.
        """
        if not self.accepts(unit):
            raise ValueError(f'this scaling divides {self.unit} by {self.max_value}; '
                             f'it cannot scale depth in {unit}')
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f'expected (rows, values), got shape {values.shape}')
        rows = values.shape[0]
        if self.mode == 'fixed':
            return np.zeros(rows), np.full(rows, self.max_value)
        ordered = np.sort(values, axis=1)  # NaN (invalid) last
        count = np.count_nonzero(~np.isnan(values), axis=1)
        empty = count == 0
        last = np.maximum(count - 1, 0)
        low = _row_percentile(ordered, last, self.low_percentile)
        high = _row_percentile(ordered, last, self.high_percentile)
        span = np.maximum(high - low, self.min_relative_span * np.abs(high))
        degenerate = ~(span > 1e-6 * np.maximum(np.abs(high), 1e-6))
        span = np.where(degenerate, np.maximum(np.abs(high), 1e-6), span)
        return np.where(empty, np.nan, low), np.where(empty, np.nan, span)

    def describe(self) -> str:
        """One line for logs."""
        if self.mode == 'fixed':
            return f'fixed: depth [{self.unit}] / {self.max_value:g}'
        return (f'range: per-frame percentiles {self.low_percentile:g}-'
                f'{self.high_percentile:g} of valid depth')


#: Sensor models: metres / 10 (depth-dependent noise needs an absolute scale).
SENSOR_SCALING = DepthScaling('fixed', max_value=10.0, unit='m')
#: Research (benchmark) models: per-image min-max, as the shipped research model was trained.
RESEARCH_SCALING = DepthScaling('range', unit='any', low_percentile=0.0, high_percentile=100.0)


def _row_percentile(ordered: np.ndarray, last: np.ndarray, percentile: float) -> np.ndarray:
    """Per row, ``np.percentile(row[:last + 1], percentile)`` of rows sorted ascending (numpy's
    default linear method, including its interpolation formula, so results match bit for bit)."""
    position = last * (percentile / 100.0)
    below = np.floor(position)
    gamma = position - below
    index = below.astype(np.intp)
    lower = np.take_along_axis(ordered, index[:, None], axis=1)[:, 0]
    upper = np.take_along_axis(ordered, np.minimum(index + 1, last)[:, None], axis=1)[:, 0]
    difference = upper - lower
    return np.where(gamma >= 0.5, upper - difference * (1 - gamma), lower + difference * gamma)
