"""Small guards of issue 11: non-finite intrinsics, ROI overflow, honest point-cloud density."""

from __future__ import annotations

import numpy as np
import pytest

from dsr_ros.camera_info import check_camera_info, geometry_of
from dsr_ros.depth_io import FrameError
from dsr_ros.pointcloud import cloud_layout

K = [20.0, 0.0, 11.5, 0.0, 21.0, 7.5, 0.0, 0.0, 1.0]
P = [20.0, 0.0, 11.5, 0.0, 0.0, 21.0, 7.5, 0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize('matrix,index,value', [('K', 0, np.nan), ('K', 5, np.inf),
                                                ('P', 3, -np.inf)])
def test_non_finite_intrinsics_are_refused_with_that_reason(matrix, index, value):
    k, p = list(K), list(P)
    (k if matrix == 'K' else p)[index] = value
    with pytest.raises(FrameError, match=rf'camera_info {matrix} has non-finite values '
                                         rf'\({value} at {matrix}\[{index}\]\)') as caught:
        check_camera_info(geometry_of(24, 16, k, p), 24, 16)
    assert caught.value.kind == 'camera_info'
    check_camera_info(geometry_of(24, 16, [0.0] * 9, [0.0] * 12), 24, 16)  # uncalibrated: ok


def test_a_roi_beyond_the_calibration_is_refused_with_the_reason():
    """A hostile roi (uint32 near 2^32) cannot describe any image: refused, never scaled."""
    for roi in ((2 ** 32 - 1, 3, 2 ** 31, 5), (20, 0, 16, 8)):
        with pytest.raises(FrameError, match='does not lie inside its 24x16 calibration'):
            check_camera_info(geometry_of(24, 16, K, P, roi=roi), 8, 16)
    check_camera_info(geometry_of(24, 16, K, P, roi=(16, 0, 16, 8)), 8, 16)


def test_cloud_is_dense_only_when_every_point_is_finite():
    points = np.ones((4, 3), np.float32)
    assert cloud_layout(points).is_dense is True
    points[2, 1] = np.nan
    assert cloud_layout(points).is_dense is False


def test_points_message_is_not_dense_with_nan():
    pytest.importorskip('sensor_msgs')
    from std_msgs.msg import Header

    from dsr_ros.ros.messages import points_to_msg
    points = np.ones((3, 3), np.float32)
    points[0, 0] = np.nan
    assert points_to_msg(points, Header()).is_dense is False
    assert points_to_msg(np.ones((3, 3), np.float32), Header()).is_dense is True
