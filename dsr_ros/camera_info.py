"""CameraInfo geometry in and out, as REP 104 and ``image_geometry`` read it (numpy only).

A ``sensor_msgs/CameraInfo`` describes its image through the *calibration*: ``width`` and
``height`` are the calibration size, and ``binning_x/y`` and ``roi`` say how the image relates
to it. ``image_geometry.PinholeCameraModel`` (what depth_image_proc and other consumers use)
maps image pixel ``u`` to calibration pixel ``u * binning + roi.x_offset``: the top-left pixel
of each binned block, which is exactly where ``image_proc``'s crop_decimate (nearest) took it.
So a 160x120 image with a 640x480 camera_info and binning 4 is not a mismatch: the node
accepts every camera_info whose binning and roi explain the image size
(:func:`image_size_problem`) and refuses the rest with the reason.

The output is ``s`` times the input. LR pixel ``u`` lands at output pixel ``s * u + g`` where
``g`` is the *sampling position* within the ``s x s`` block (:mod:`dsr_ros.sampling_geometry`:
``(s - 1) / 2`` for a native camera whose footprint is centred on its pixel, the phase for a
decimated one; the resolver moves its output there). :func:`output_camera_info` writes the
camera_info that says the same, so a pixel of the output and the scene point it shows give one
ray: in the REP 104 form (calibration kept, binning divided by ``s``, same roi) when that is
exact, otherwise with the intrinsics of the output image itself (binning 0, no roi), the form
drivers that scale on the device publish.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

import numpy as np

from dsr_ros.depth_io import FrameError

__all__ = ['CameraGeometry', 'check_camera_info', 'effective_intrinsics', 'geometry_of',
           'image_size_problem', 'output_camera_info']

#: ``(x_offset, y_offset, height, width)``, as ``sensor_msgs/RegionOfInterest`` orders it.
Roi = Tuple[int, int, int, int]


@dataclass(frozen=True)
class CameraGeometry:
    """The CameraInfo fields that relate an image's pixels to rays (D and R are unaffected)."""

    width: int
    height: int
    k: Tuple[float, ...]
    p: Tuple[float, ...]
    binning_x: int = 0
    binning_y: int = 0
    roi: Roi = (0, 0, 0, 0)

    @property
    def binning(self) -> Tuple[int, int]:
        """``(x, y)`` binning, 0 read as 1 (REP 104: both mean no subsampling)."""
        return max(1, int(self.binning_x)), max(1, int(self.binning_y))

    def full_roi(self) -> Roi:
        """The roi with all zeros read as the full calibration size (REP 104)."""
        if tuple(self.roi) == (0, 0, 0, 0):
            return (0, 0, int(self.height), int(self.width))
        return tuple(int(v) for v in self.roi)  # type: ignore[return-value]

    def describe(self) -> str:
        """``640x480, binning 4x4, roi (x 0, y 0, 480x640)`` for log lines."""
        x, y, height, width = self.full_roi()
        binning = f'binning {self.binning_x}x{self.binning_y}'
        roi = '' if tuple(self.roi) == (0, 0, 0, 0) else f', roi x {x} y {y} {width}x{height}'
        return f'{self.width}x{self.height}, {binning}{roi}'


def image_size_problem(info: CameraGeometry, image_width: int, image_height: int) -> str:
    """Why ``info`` cannot describe an ``image_width`` x ``image_height`` image, or ''.

    The image must be the roi (the whole calibration when the roi is all zeros) divided by the
    binning, rounded down or up (image_proc rounds down; a driver may keep the partial block),
    and the roi must lie inside the calibration.
    """
    x, y, height, width = info.full_roi()
    if x + width > info.width or y + height > info.height or width <= 0 or height <= 0:
        return (f'camera_info roi (x {x}, y {y}, {width}x{height}) does not lie inside its '
                f'{info.width}x{info.height} calibration')
    bx, by = info.binning
    sizes_w = {width // bx, -(-width // bx)}
    sizes_h = {height // by, -(-height // by)}
    if int(image_width) in sizes_w and int(image_height) in sizes_h:
        return ''
    expect = f'{min(sizes_w)}x{min(sizes_h)}'
    return (f'camera_info ({info.describe()}) describes a {expect} image but the image is '
            f'{image_width}x{image_height}')


def check_camera_info(info: CameraGeometry, image_width: int, image_height: int) -> None:
    """Raise FrameError when ``info`` cannot describe the image (REP 104, see
    :func:`image_size_problem`) or when its K or P hold NaN or infinity (a zero K, an
    uncalibrated camera, is allowed)."""
    problem = image_size_problem(info, image_width, image_height)
    if problem:
        raise FrameError('camera_info', problem)
    for name, matrix in (('K', info.k), ('P', info.p)):
        values = np.asarray(matrix, dtype=np.float64).ravel()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise FrameError('camera_info', f'camera_info {name} has non-finite values '
                                            f'({values[bad[0]]} at {name}[{bad[0]}])')


def effective_intrinsics(info: CameraGeometry) -> Tuple[np.ndarray, np.ndarray]:
    """``(K, P)`` of the image itself, binning and roi applied as ``image_geometry`` does
    (``fx / binning``, ``(cx - roi.x_offset) / binning``); P's Tx, Ty scale like fx, fy (a
    baseline in image pixels)."""
    bx, by = info.binning
    x, y = info.full_roi()[:2]
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3).copy()
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
    to_image = np.array([[1.0 / bx, 0.0, -x / bx], [0.0, 1.0 / by, -y / by], [0.0, 0.0, 1.0]])
    return to_image @ k, to_image @ p


def output_camera_info(info: CameraGeometry, scale: int, image_width: int, image_height: int,
                       position: Tuple[float, float]) -> CameraGeometry:
    """The camera_info of the ``scale`` x larger output whose pixel ``s * u + position``
    shows what input pixel ``u`` shows (``position`` is ``(row, col)`` in output pixels).

    REP 104 form when it is exact (the binning is a multiple of ``s`` and the position is the
    top-left of the block, as after image_proc decimation): calibration, K and P unchanged,
    binning divided by ``s``, the same roi. Otherwise the output's own intrinsics:
    ``K' = A K_image`` with ``A = [[s, 0, col], [0, s, row], [0, 0, 1]]``, binning 0, no roi,
    width and height of the output (for a native camera ``col = (s - 1) / 2``, the
    pixel-centre form ``cx' = s (cx + 0.5) - 0.5``).
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f'scale must be a positive integer, got {scale!r}')
    row, col = float(position[0]), float(position[1])
    bx, by = info.binning
    if bx % scale == 0 and by % scale == 0 and (row, col) == (0.0, 0.0) and (bx, by) != (1, 1):
        return replace(info, binning_x=bx // scale, binning_y=by // scale)
    k, p = effective_intrinsics(info)
    a = np.array([[scale, 0.0, col], [0.0, scale, row], [0.0, 0.0, 1.0]])
    return CameraGeometry(width=int(image_width) * scale, height=int(image_height) * scale,
                          k=tuple(float(v) for v in (a @ k).ravel()),
                          p=tuple(float(v) for v in (a @ p).ravel()))


def geometry_of(width: int, height: int, k: Sequence[float], p: Optional[Sequence[float]] = None,
                binning: Tuple[int, int] = (0, 0), roi: Roi = (0, 0, 0, 0)) -> CameraGeometry:
    """A :class:`CameraGeometry` from plain values (tests, demos, the scene generator)."""
    p = p if p is not None else list(np.hstack([np.asarray(k, float).reshape(3, 3),
                                                np.zeros((3, 1))]).ravel())
    return CameraGeometry(int(width), int(height), tuple(float(v) for v in k),
                          tuple(float(v) for v in p), int(binning[0]), int(binning[1]),
                          tuple(int(v) for v in roi))
