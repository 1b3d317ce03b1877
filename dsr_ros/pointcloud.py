"""Back-project a depth image to xyz points and lay them out like a ROS PointCloud2 (numpy only).

The layout is the one ``sensor_msgs_py.point_cloud2.create_cloud_xyz32`` produces (fields x, y, z
as FLOAT32 at offsets 0, 4, 8; point_step 12; height 1; width N; row_step 12 N; little endian),
so consumers see the same cloud whether or not ``sensor_msgs_py`` is installed. ``is_dense`` is
true only when every coordinate is finite (create_cloud_xyz32 always says true).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

from dsr_ros.depth_io import valid_mask

__all__ = ['CloudLayout', 'FLOAT32_DATATYPE', 'XYZ_FIELDS', 'cloud_layout', 'depth_to_points']

#: ``sensor_msgs/PointField.FLOAT32``.
FLOAT32_DATATYPE = 7
#: (name, offset, datatype, count) of the fields create_cloud_xyz32 declares.
XYZ_FIELDS: Tuple[Tuple[str, int, int, int], ...] = (
    ('x', 0, FLOAT32_DATATYPE, 1), ('y', 4, FLOAT32_DATATYPE, 1), ('z', 8, FLOAT32_DATATYPE, 1))


class CloudLayout(NamedTuple):
    """Everything of a PointCloud2 except its header."""

    height: int
    width: int
    fields: Tuple[Tuple[str, int, int, int], ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: bytes
    is_dense: bool


def depth_to_points(depth: np.ndarray, k: Sequence[float],
                    valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Points ``(N, 3)`` float32 in the camera optical frame, invalid pixels left out.

    Pixel ``(u, v)`` with depth ``z`` (metres) maps to ``((u - cx) z / fx, (v - cy) z / fy, z)``
    with pixel centres at integer coordinates, the convention of CameraInfo.K. Skew is ignored,
    as in depth_image_proc. Rows come out in image order (row-major). ``valid``: the image's
    validity when the caller has it (the node passes the resolver's, so the frame's mask is
    not computed again; only the chosen pixels are converted to metres).
    """
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if not (fx > 0 and fy > 0):
        raise ValueError(f'camera matrix has no focal length (fx={fx}, fy={fy}): uncalibrated')
    if valid is None:
        valid = valid_mask(depth)
    rows, cols = np.nonzero(valid)
    z = depth[rows, cols].astype(np.float32)
    if depth.dtype == np.uint16:
        z /= np.float32(1000.0)
    with np.errstate(invalid='ignore'):
        kept = np.isfinite(z) & (z > 0)  # what a given mask may not know (e.g. a 0 mm pixel)
    if not kept.all():
        rows, cols, z = rows[kept], cols[kept], z[kept]
    z = z.astype(np.float64)
    points = np.empty((z.size, 3), np.float32)
    points[:, 0] = (cols - cx) * z / fx
    points[:, 1] = (rows - cy) * z / fy
    points[:, 2] = z
    return points


def cloud_layout(points: np.ndarray) -> CloudLayout:
    """The PointCloud2 body create_cloud_xyz32 would build for ``points`` ``(N, 3)``."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f'expected points of shape (N, 3), got {points.shape}')
    data = np.ascontiguousarray(points, dtype='<f4').tobytes()
    count = points.shape[0]
    return CloudLayout(height=1, width=count, fields=XYZ_FIELDS, is_bigendian=False,
                       point_step=12, row_step=12 * count, data=data,
                       is_dense=bool(np.isfinite(points).all()))
