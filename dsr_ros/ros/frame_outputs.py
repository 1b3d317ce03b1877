"""The node's output side: publish a super-resolved frame, its camera_info and its points.

Kept apart from the node so everything a consumer receives for one frame is built in one
place, from the one encoded frame the resolver returned: the image as it is, its camera_info
(REP 104, :mod:`dsr_ros.camera_info`) for the output's size and sample position, and the point
cloud (:mod:`dsr_ros.pointcloud`) from the same values and LR validity with the output's own K
(no unit round trip). camera_info and points go beside the output image: a remapped image takes
them along (image_transport and depth_image_proc expect the pair in one namespace) unless they
are remapped themselves.
"""

from __future__ import annotations

import posixpath
from copy import copy
from typing import Any, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from dsr_ros.camera_info import CameraGeometry, effective_intrinsics, output_camera_info
from dsr_ros.ros.diagnostics import ThrottledLog
from dsr_ros.frame_encoding import SuperResolved
from dsr_ros.ros.frame_inputs import InputFrame
from dsr_ros.ros.messages import camera_info_msg, depth_to_msg, points_to_msg
from dsr_ros.pointcloud import depth_to_points
from dsr_ros.sampling_geometry import SamplingGeometry

__all__ = ['FrameOutputs', 'beside_output']

IMAGE_TOPIC = 'depth_sr/image_raw'


def beside_output(node: Node, topic: str) -> str:
    """``topic`` (a sibling of ``depth_sr/image_raw``) in the namespace the output image
    resolves to, unless ``topic`` itself is remapped: remapping only the image moves its
    camera_info and points with it, as image_transport consumers expect."""
    if node.resolve_topic_name(topic) != node.resolve_topic_name(topic, only_expand=True):
        return topic
    image = node.resolve_topic_name(IMAGE_TOPIC)
    return posixpath.join(posixpath.dirname(image), posixpath.basename(topic))


class FrameOutputs:
    """The output publishers of ``node`` and what one frame publishes on them.

    Args:
        node: the node the publishers belong to.
        qos: the output profile (each publisher gets its own copy: rclpy writes the QoS
            overrides into the profile object it is given).
        events: the publishers' event callbacks (incompatible QoS).
        overrides: the standard ``qos_overrides.<topic>.publisher.<policy>`` parameters.
        points: also publish ``depth_sr/points``.
        log_throttled: the node's throttled log.
    """

    def __init__(self, node: Node, qos: QoSProfile, events: Any,
                 overrides: QoSOverridingOptions, points: bool,
                 log_throttled: ThrottledLog) -> None:
        self._log_throttled = log_throttled
        self._image_pub = node.create_publisher(Image, IMAGE_TOPIC, copy(qos),
                                                event_callbacks=events,
                                                qos_overriding_options=overrides)
        self._info_pub = node.create_publisher(
            CameraInfo, beside_output(node, 'depth_sr/camera_info'), copy(qos),
            event_callbacks=events, qos_overriding_options=overrides)
        self._points_pub = None
        if points:
            self._points_pub = node.create_publisher(
                PointCloud2, beside_output(node, 'depth_sr/points'), copy(qos),
                event_callbacks=events, qos_overriding_options=overrides)

    def publish(self, frame: InputFrame, resolved: SuperResolved, encoding: str,
                info: Optional[CameraInfo], camera: Optional[CameraGeometry],
                geometry: SamplingGeometry) -> None:
        """The image in ``encoding``; with ``info`` (its message) and ``camera`` (the geometry
        read from it), the output's camera_info for the sample position of ``geometry``, and
        the points when asked for."""
        scale = resolved.scale
        self._image_pub.publish(depth_to_msg(resolved.depth, frame.header, encoding))
        if info is None:
            return
        out = output_camera_info(camera, scale, frame.depth.shape[1], frame.depth.shape[0],
                                 geometry.position(scale))
        self._info_pub.publish(camera_info_msg(out, info, frame.header))
        if self._points_pub is not None:
            self._publish_points(resolved, effective_intrinsics(out)[0], frame.header)

    def _publish_points(self, resolved: SuperResolved, k: np.ndarray, header: Header) -> None:
        """Points from the published depth and its validity, with the output image's own K
        (binning, roi applied)."""
        if not (k[0, 0] > 0 and k[1, 1] > 0):
            self._log_throttled('uncalibrated', 'camera_info has no focal length (K is zero: '
                                                'uncalibrated camera); no point cloud')
            return
        points = depth_to_points(resolved.depth, k.ravel(), resolved.hr_valid())
        self._points_pub.publish(points_to_msg(points, header))
