"""REP 104 camera_info in and out, read by upstream image_geometry as downstream nodes read it.

For every camera_info convention a pipeline produces (a plain camera, image_proc's binning,
crop + binning, a driver that scales on the device, binning that is not a multiple of the
scale, a phase set by hand), a pixel of the node's output read with the output camera_info must
give the same ray as the scene point it shows read with the full-resolution calibration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsr_ros.camera_info import (check_camera_info, effective_intrinsics, geometry_of,
                                 image_size_problem, output_camera_info)
from dsr_ros.depth_io import FrameError
from dsr_ros.sampling_geometry import SamplingGeometry, geometry_for

SHARED_WHEEL = Path(__file__).resolve().parents[2] / 'shared' / 'ros2_image_geometry'
#: The full-resolution calibration of a 640x480 depth camera.
FULL_K = [570.3, 0.0, 319.5, 0.0, 570.3, 239.5, 0.0, 0.0, 1.0]
FULL_P = [570.3, 0.0, 319.5, 0.0, 0.0, 570.3, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]


def _image_geometry():
    try:
        from image_geometry import PinholeCameraModel
        from sensor_msgs.msg import CameraInfo  # noqa: F401
    except ImportError:
        where = ('install it: pip install --find-links ../shared/ros2_image_geometry '
                 'ros-image-geometry' if SHARED_WHEEL.is_dir()
                 else '../shared/ros2_image_geometry is not beside this checkout')
        pytest.skip(f'upstream image_geometry is not installed ({where})')
    return PinholeCameraModel


def _model(geometry):
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from dsr_ros.ros.messages import camera_info_msg
    template = CameraInfo(distortion_model='plumb_bob', d=[0.0] * 5,
                          r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
    model = _image_geometry()()
    model.fromCameraInfo(camera_info_msg(geometry, template, Header(frame_id='cam')))
    return model


def _ray(model, u, v):
    return np.array(model.projectPixelTo3dRay((u, v)))


#: (name, input camera_info, image size, geometry, full-res pixel of input pixel (u, v))
CASES = [
    ('plain 160x120 camera', geometry_of(160, 120, [142.6, 0, 79.5, 0, 142.6, 59.5, 0, 0, 1]),
     (160, 120), SamplingGeometry('native'), None),
    ('image_proc binning 4', geometry_of(640, 480, FULL_K, FULL_P, binning=(4, 4)),
     (160, 120), SamplingGeometry('decimated'), lambda u, v: (4 * u, 4 * v)),
    ('crop then binning 4', geometry_of(640, 480, FULL_K, FULL_P, binning=(4, 4),
                                        roi=(8, 4, 240, 320)),
     (80, 60), SamplingGeometry('decimated'), lambda u, v: (4 * u + 8, 4 * v + 4)),
    ('device-scaled (RealSense decimation filter)',
     geometry_of(320, 240, [285.15, 0, 159.75, 0, 285.15, 119.75, 0, 0, 1]),
     (320, 240), SamplingGeometry('native'), None),
    ('binning 2 under a x4 net', geometry_of(640, 480, FULL_K, FULL_P, binning=(2, 2),
                                             roi=(0, 2, 476, 640)),
     (320, 238), SamplingGeometry('decimated'), lambda u, v: (2 * u, 2 * v + 2)),
    ('binning 4, phase (1, 2) set by hand', geometry_of(640, 480, FULL_K, FULL_P,
                                                        binning=(4, 4)),
     (160, 120), SamplingGeometry('decimated', (1, 2)), lambda u, v: (4 * u, 4 * v)),
]


@pytest.mark.parametrize('name,info,size,geometry,full_pixel', CASES, ids=[c[0] for c in CASES])
def test_an_output_pixel_and_its_scene_point_give_one_ray(name, info, size, geometry,
                                                          full_pixel):
    scale = 4
    check_camera_info(info, *size)
    out = output_camera_info(info, scale, size[0], size[1], geometry.position(scale))
    into, out_model = _model(info), _model(out)
    row, col = geometry.position(scale)
    full = _model(geometry_of(640, 480, FULL_K, FULL_P))
    for u, v in ((0, 0), (37, 21), (size[0] - 1, size[1] - 1)):
        ray = _ray(out_model, scale * u + col, scale * v + row)
        np.testing.assert_allclose(ray, _ray(into, u, v), atol=1e-12, err_msg=name)
        if full_pixel is not None:
            np.testing.assert_allclose(ray, _ray(full, *full_pixel(u, v)), atol=1e-12)
    # The output's own pixel grid is what image_geometry thinks it is (projection round trip).
    point = (0.21, -0.13, 1.7)
    u_out, v_out = out_model.project3dToPixel(point)
    u_in, v_in = into.project3dToPixel(point)
    assert u_out == pytest.approx(scale * u_in + col) and v_out == pytest.approx(
        scale * v_in + row)


def test_the_rep_104_form_is_kept_where_it_is_exact():
    binned = geometry_of(640, 480, FULL_K, FULL_P, binning=(4, 4), roi=(8, 4, 240, 320))
    out = output_camera_info(binned, 4, 80, 60, (0.0, 0.0))
    assert (out.width, out.height, out.binning_x, out.binning_y) == (640, 480, 1, 1)
    assert out.roi == (8, 4, 240, 320) and out.k == binned.k
    check_camera_info(out, 320, 240)  # the node's own output is accepted downstream
    # Binning 8 under a x4 net: still exact, binning 2 out.
    out8 = output_camera_info(geometry_of(640, 480, FULL_K, binning=(8, 8)), 4, 80, 60, (0, 0))
    assert (out8.binning_x, out8.width) == (2, 640)
    check_camera_info(out8, 320, 240)


@pytest.mark.parametrize('info,size,reason', [
    (geometry_of(640, 480, FULL_K), (320, 240), 'describes a 640x480 image'),
    (geometry_of(640, 480, FULL_K, binning=(4, 4)), (320, 240), 'binning 4x4'),
    (geometry_of(640, 480, FULL_K, binning=(2, 2), roi=(600, 0, 480, 80)), (40, 240),
     'does not lie inside'),
])
def test_an_info_its_binning_and_roi_cannot_explain_is_refused(info, size, reason):
    with pytest.raises(FrameError, match=reason) as caught:
        check_camera_info(info, *size)
    assert caught.value.kind == 'camera_info'


def test_a_baseline_in_p_scales_with_the_pixels():
    """P's Tx is -fx * baseline: in the output's own pixels it scales like fx (image_geometry
    itself leaves Tx unbinned; the REP 104 form keeps the calibration's, which is exact)."""
    p = list(FULL_P)
    p[3] = -3.2
    binned = geometry_of(640, 480, FULL_K, p, binning=(2, 2))
    assert output_camera_info(binned, 4, 320, 240, (0, 0)).p[3] == pytest.approx(-6.4)
    assert output_camera_info(geometry_of(640, 480, FULL_K, p, binning=(4, 4)), 4, 160, 120,
                              (0, 0)).p[3] == pytest.approx(-3.2)


def test_partial_blocks_may_be_kept_or_dropped():
    info = geometry_of(642, 481, FULL_K, binning=(4, 4))
    assert image_size_problem(info, 160, 120) == '' and image_size_problem(info, 161, 121) == ''


def test_effective_intrinsics_are_image_geometrys():
    info = geometry_of(640, 480, FULL_K, FULL_P, binning=(4, 2), roi=(8, 4, 240, 320))
    k, p = effective_intrinsics(info)
    np.testing.assert_allclose(k, [[570.3 / 4, 0, (319.5 - 8) / 4], [0, 570.3 / 2,
                                                                     (239.5 - 4) / 2], [0, 0, 1]])
    model = _model(info)
    np.testing.assert_allclose(np.asarray(model.intrinsicMatrix()), k)


def test_geometry_from_parameters_and_camera_info():
    assert geometry_for('auto', None, None).kind == 'native'
    assert geometry_for('auto', None, None).source == 'no camera_info yet'
    assert geometry_for('auto', None, (0, 0)).kind == 'native'
    assert geometry_for('auto', None, (1, 1)).kind == 'native'
    binned = geometry_for('auto', None, (4, 4))
    assert binned.decimated and binned.phase == (0, 0) and 'binning 4x4' in binned.describe()
    assert geometry_for('native', None, (4, 4)).kind == 'native'
    assert geometry_for('decimated', None, None).decimated
    told = geometry_for('native', (2, 1), (0, 0))
    assert told.decimated and told.phase == (2, 1) and told.position(4) == (2.0, 1.0)
    assert geometry_for('auto', None, None).position(4) == (1.5, 1.5)
    assert geometry_for('auto', None, None).position(3) == (1.0, 1.0)
    with pytest.raises(ValueError, match='sampling must be one of'):
        geometry_for('random', None, None)
