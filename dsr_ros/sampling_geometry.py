"""Where each low-resolution sample sits in its ``s x s`` output block, and how the node knows.

Real pipelines have a fixed sampling geometry, not a random one:

* a **native** low-resolution camera (ToF, structured light, a device that bins on the sensor)
  measures a footprint centred on its pixel: the sample sits at ``(s - 1) / 2`` of its block
  (1.5 at x4, between two output pixels);
* a **decimated** stream keeps one pixel per block: ``image_proc``'s crop_decimate (nearest)
  keeps the top-left one after its crop, so the sample sits at phase ``(0, 0)``, and its
  camera_info says so with ``binning_x/y > 1`` (REP 104; the roi only moves the whole image).

The node's ``sampling`` parameter picks the geometry (:func:`geometry_for`): ``auto`` reads it
from the camera_info (binning > 1: decimated at phase 0; binning 0/1: native; no camera_info
yet: native), ``native`` and ``decimated`` force one, and ``sampling_phase`` ``[row, col]``
overrides everything with a decimated stream sampled at that phase. The resolver moves its
output so each sample lands at the geometry's position (:mod:`dsr_ros.sampling_phase`), and the
output camera_info says the same (:mod:`dsr_ros.camera_info`).

A point-sampled frame at an unknown, random phase carries no information about the phase
(``python -m training.evaluation phase-study`` measures the floor); no camera produces one, so
there is no such mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ['GEOMETRY_KINDS', 'SAMPLING_MODES', 'SamplingGeometry', 'geometry_for']

#: Values of the node's ``sampling`` parameter.
SAMPLING_MODES = ('auto', 'native', 'decimated')
#: The two kinds of geometry a frame can have.
GEOMETRY_KINDS = ('native', 'decimated')


@dataclass(frozen=True)
class SamplingGeometry:
    """One frame's sampling geometry and why the node believes it (``source``)."""

    kind: str
    phase: Tuple[int, int] = (0, 0)
    source: str = ''

    def __post_init__(self) -> None:
        if self.kind not in GEOMETRY_KINDS:
            raise ValueError(f'sampling geometry must be one of {GEOMETRY_KINDS}, got '
                             f'{self.kind!r}')

    @property
    def decimated(self) -> bool:
        return self.kind == 'decimated'

    def position(self, scale: int) -> Tuple[float, float]:
        """``(row, col)`` of the sample within its ``s x s`` output block."""
        if self.decimated:
            return float(self.phase[0]), float(self.phase[1])
        centre = (scale - 1) / 2.0
        return centre, centre

    def describe(self) -> str:
        """``decimated at phase (0, 0) (camera_info binning 4x4)`` for logs and diagnostics."""
        what = (f'decimated at phase ({self.phase[0]}, {self.phase[1]})' if self.decimated
                else 'native (footprint centred on each pixel)')
        return f'{what} ({self.source})' if self.source else what

    def key(self) -> Tuple[str, Tuple[int, int]]:
        """What a change of geometry is judged by (the source's words may change freely)."""
        return self.kind, (self.phase if self.decimated else (0, 0))


def geometry_for(mode: str, phase_override: Optional[Tuple[int, int]],
                 binning: Optional[Tuple[int, int]]) -> SamplingGeometry:
    """The geometry of a frame.

    ``mode``: the ``sampling`` parameter; ``phase_override``: a set ``sampling_phase`` (None
    when ``[-1, -1]``); ``binning``: the paired camera_info's ``(binning_x, binning_y)``, or
    None when the frame has no camera_info (yet).
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f'sampling must be one of {SAMPLING_MODES}, got {mode!r}')
    if phase_override is not None:
        return SamplingGeometry('decimated', tuple(int(v) for v in phase_override),
                                'sampling_phase parameter')
    if mode == 'native':
        return SamplingGeometry('native', source='sampling: native')
    if mode == 'decimated':
        return SamplingGeometry('decimated', (0, 0),
                                'sampling: decimated, top-left pixel of each block')
    if binning is None:
        return SamplingGeometry('native', source='no camera_info yet')
    bx, by = int(binning[0]), int(binning[1])
    if bx > 1 or by > 1:
        return SamplingGeometry('decimated', (0, 0),
                                f'camera_info binning {bx}x{by}: decimated, image_proc '
                                'convention')
    return SamplingGeometry('native', source=f'camera_info binning {bx}x{by}: native camera')
