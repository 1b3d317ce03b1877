"""sensor_msgs <-> numpy for depth images, CameraInfo and point clouds (message types, no rclpy).

Thin adapters around :mod:`dsr_ros.depth_io` and :mod:`dsr_ros.pointcloud`, shared by the node,
the demo and the tests so that all of them encode messages the same (fast) way.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header

from dsr_ros.camera_info import CameraGeometry
from dsr_ros.depth_io import DEFAULT_MAX_PIXELS, decode_depth, encode_depth
from dsr_ros.pointcloud import cloud_layout

try:  # The reference implementation, when the ROS distribution provides it.
    from sensor_msgs_py.point_cloud2 import create_cloud_xyz32
except ImportError:  # Not installable from PyPI: use the numpy path with the same layout.
    create_cloud_xyz32 = None

__all__ = ['camera_geometry_from_msg', 'camera_info_msg', 'depth_from_msg', 'depth_to_msg',
           'points_to_msg']


def depth_from_msg(msg: Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a depth Image (raises depth_io.FrameError for an unusable one)."""
    return decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian,
                        msg.data, max_pixels=max_pixels)


def depth_to_msg(depth: np.ndarray, header: Header, encoding: Optional[str] = None) -> Image:
    """Build an Image from a uint16 (mm) or float32 (m) array; ``encoding`` may rename 16UC1.

    ``encoding`` exists so a ``mono16`` input can be answered as ``mono16``; the bytes are the
    same as ``16UC1``.
    """
    natural, step, data = encode_depth(depth)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(depth.shape[0]), int(depth.shape[1])
    msg.encoding = encoding or natural
    msg.is_bigendian = 0
    msg.step = step
    msg.data = data
    return msg


def camera_geometry_from_msg(info: CameraInfo) -> CameraGeometry:
    """The fields of ``info`` that relate its image to rays (REP 104)."""
    roi = info.roi
    return CameraGeometry(int(info.width), int(info.height), tuple(float(v) for v in info.k),
                          tuple(float(v) for v in info.p), int(info.binning_x),
                          int(info.binning_y),
                          (int(roi.x_offset), int(roi.y_offset), int(roi.height), int(roi.width)))


def camera_info_msg(geometry: CameraGeometry, template: CameraInfo, header: Header
                    ) -> CameraInfo:
    """A CameraInfo with ``geometry`` and the rest (distortion, R, do_rectify) of
    ``template``, stamped with ``header``."""
    out = CameraInfo()
    out.header = header
    out.width, out.height = geometry.width, geometry.height
    out.distortion_model = template.distortion_model
    out.d = list(template.d)
    out.r = np.asarray(template.r, dtype=np.float64)
    out.k = np.asarray(geometry.k, dtype=np.float64)
    out.p = np.asarray(geometry.p, dtype=np.float64)
    out.binning_x, out.binning_y = geometry.binning_x, geometry.binning_y
    x_offset, y_offset, height, width = geometry.roi
    out.roi = RegionOfInterest(x_offset=x_offset, y_offset=y_offset, height=height,
                               width=width, do_rectify=template.roi.do_rectify)
    return out


def points_to_msg(points: np.ndarray, header: Header) -> PointCloud2:
    """PointCloud2 with float32 x, y, z, laid out like create_cloud_xyz32."""
    if create_cloud_xyz32 is not None:
        msg = create_cloud_xyz32(header, points)
        msg.is_dense = bool(np.isfinite(points).all())  # it would call NaN points dense
        return msg
    layout = cloud_layout(points)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = layout.height, layout.width
    msg.fields = [PointField(name=name, offset=offset, datatype=datatype, count=count)
                  for name, offset, datatype, count in layout.fields]
    msg.is_bigendian = layout.is_bigendian
    msg.point_step, msg.row_step = layout.point_step, layout.row_step
    msg.data = layout.data
    msg.is_dense = layout.is_dense
    return msg
