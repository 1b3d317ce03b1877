"""The one sample type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

__all__ = ['RGBDSample', 'UNITS']

#: Depth units a sample can declare. ``disparity_8bit`` is Middlebury's 0-255 disparity scale.
UNITS = ('disparity_8bit', 'metre', 'millimetre', 'sintel_depth', 'relative')


@dataclass
class RGBDSample:
    """HR depth with its validity mask, and what else a source provides.

    Attributes:
        name: unique, human-readable name (scene or file stem).
        depth: float32 (H, W) in ``unit``; invalid pixels may hold any value.
        valid: bool (H, W), True where ``depth`` is a measurement.
        unit: one of :data:`UNITS`.
        rgb: optional uint8 (H, W, 3) image registered to ``depth``.
        intrinsics: optional 3x3 camera matrix of ``depth``.
        lr_inputs: LR inputs shipped with a benchmark, by scale (``{4: array}``), in ``unit``.
        source: the file(s) it came from, for error messages and provenance.
        stamp: acquisition time in seconds, for bag frames.
    """

    name: str
    depth: np.ndarray
    valid: np.ndarray
    unit: str
    rgb: Optional[np.ndarray] = None
    intrinsics: Optional[np.ndarray] = None
    lr_inputs: Dict[int, np.ndarray] = field(default_factory=dict)
    source: str = ''
    stamp: Optional[float] = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f'{self.name}: unknown depth unit {self.unit!r}, expected {UNITS}')
        if self.depth.ndim != 2 or self.valid.shape != self.depth.shape:
            raise ValueError(f'{self.name}: depth {self.depth.shape} and valid '
                             f'{self.valid.shape} must be the same 2-D shape')
        if self.rgb is not None and self.rgb.shape[:2] != self.depth.shape:
            raise ValueError(f'{self.name}: rgb {self.rgb.shape} does not match depth '
                             f'{self.depth.shape}')
