"""depth_io and pointcloud without ROS: decoding, validation, encodings, intrinsics, clouds."""

from __future__ import annotations

import numpy as np
import pytest

from dsr_ros.camera_info import check_camera_info, geometry_of, output_camera_info
from dsr_ros.depth_io import FrameError, convert_depth, decode_depth, encode_depth
from dsr_ros.pointcloud import cloud_layout, depth_to_points


def _bytes(depth: np.ndarray, order: str = '<', pad: int = 0) -> tuple:
    rows = depth.astype(depth.dtype.newbyteorder(order)).view(np.uint8).reshape(
        depth.shape[0], -1)
    if pad:
        rows = np.hstack([rows, np.full((rows.shape[0], pad), 0x7F, np.uint8)])
    return rows.shape[1], rows.tobytes()


@pytest.fixture
def depth_mm() -> np.ndarray:
    return (np.arange(5 * 7, dtype=np.uint16).reshape(5, 7) * 97 + 300).astype(np.uint16)


@pytest.mark.parametrize('encoding', ['16UC1', 'mono16'])
def test_decode_uint16(depth_mm, encoding):
    step, data = _bytes(depth_mm)
    out = decode_depth(encoding, 5, 7, step, False, data)
    assert out.dtype == np.uint16 and out.dtype.isnative
    np.testing.assert_array_equal(out, depth_mm)


@pytest.mark.parametrize('order,pad', [('<', 0), ('>', 0), ('<', 6), ('>', 10)])
def test_decode_honours_byte_order_and_row_padding(depth_mm, order, pad):
    metres = depth_mm.astype(np.float32) / 1000
    metres[2, 3] = np.nan
    for depth, encoding in ((depth_mm, '16UC1'), (metres, '32FC1')):
        pad_bytes = pad - pad % depth.itemsize
        step, data = _bytes(depth, order, pad_bytes)
        out = decode_depth(encoding, 5, 7, step, order == '>', data)
        assert out.dtype == depth.dtype and out.dtype.isnative and out.flags.c_contiguous
        np.testing.assert_array_equal(out, depth)


def test_decode_accepts_array_buffers(depth_mm):
    import array
    step, data = _bytes(depth_mm)
    out = decode_depth('16UC1', 5, 7, step, False, array.array('B', data))
    np.testing.assert_array_equal(out, depth_mm)


@pytest.mark.parametrize('fields,kind,text', [
    (dict(encoding='rgb8'), 'encoding', 'unsupported encoding'),
    (dict(encoding='32FC3'), 'encoding', 'unsupported encoding'),
    (dict(height=0, width=0, step=0, data=b''), 'zero_size', 'empty image'),
    (dict(height=5, width=0), 'zero_size', 'empty image'),
    (dict(height=10_000, width=10_000, step=20_000, data=b''), 'too_large', 'exceeds'),
    (dict(step=13), 'step_too_small', 'smaller than width'),
    (dict(step=15, data=b'\0' * 75), 'step_alignment', 'not a multiple'),
    (dict(data=b'\0' * 69), 'data_length', 'data has 69 bytes'),
    (dict(data=b'\0' * 71), 'data_length', 'expected step 14 x height 5 = 70'),
])
def test_decode_refuses_malformed_frames(fields, kind, text):
    args = dict(encoding='16UC1', height=5, width=7, step=14, is_bigendian=False,
                data=b'\0' * 70)
    args.update(fields)
    with pytest.raises(FrameError) as caught:
        decode_depth(**args)
    assert caught.value.kind == kind
    assert text in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_max_pixels_is_configurable():
    with pytest.raises(FrameError, match='exceeds the limit of 34'):
        decode_depth('16UC1', 5, 7, 14, False, b'\0' * 70, max_pixels=34)
    assert decode_depth('16UC1', 5, 7, 14, False, b'\0' * 70, max_pixels=35).shape == (5, 7)


def test_encode_round_trip(depth_mm):
    encoding, step, data = encode_depth(depth_mm)
    assert (encoding, step) == ('16UC1', 14) and isinstance(data, bytes)
    np.testing.assert_array_equal(decode_depth(encoding, 5, 7, step, False, data), depth_mm)
    metres = depth_mm.astype(np.float32) / 1000
    encoding, step, data = encode_depth(metres)
    assert (encoding, step) == ('32FC1', 28)
    np.testing.assert_array_equal(decode_depth(encoding, 5, 7, step, False, data), metres)
    with pytest.raises(ValueError):
        encode_depth(depth_mm.astype(np.float64))


def test_convert_mm_to_m_and_back():
    mm = np.array([[0, 1, 1500, 65535]], np.uint16)
    metres = convert_depth(mm, '32FC1')
    assert metres.dtype == np.float32
    assert np.isnan(metres[0, 0])
    np.testing.assert_allclose(metres[0, 1:], [0.001, 1.5, 65.535], rtol=1e-6)
    np.testing.assert_array_equal(convert_depth(metres, '16UC1'), mm)
    assert convert_depth(mm, '16UC1') is mm


def test_convert_m_to_mm_marks_unrepresentable_depth_invalid():
    metres = np.array([[np.nan, np.inf, -1.0, 0.0, 0.0004, 70.0, 2.0004]], np.float32)
    np.testing.assert_array_equal(convert_depth(metres, '16UC1'), [[0, 0, 0, 0, 0, 0, 2000]])
    with pytest.raises(ValueError, match='output encoding'):
        convert_depth(metres, 'mono8')


def test_native_output_camera_info_is_the_pixel_centre_form():
    k = [500.0, 0.5, 319.5, 0.0, 510.0, 239.5, 0.0, 0.0, 1.0]
    p = [500.0, 0.5, 319.5, -25.0, 0.0, 510.0, 239.5, 3.0, 0.0, 0.0, 1.0, 0.0]
    out = output_camera_info(geometry_of(640, 480, k, p), 4, 640, 480, (1.5, 1.5))
    assert (out.width, out.height) == (2560, 1920)
    assert out.k == pytest.approx([2000, 2, 4 * 320 - 0.5, 0, 2040, 4 * 240 - 0.5, 0, 0, 1])
    assert out.p == pytest.approx([2000, 2, 1279.5, -100, 0, 2040, 959.5, 12, 0, 0, 1, 0])
    assert out.roi == (0, 0, 0, 0) and (out.binning_x, out.binning_y) == (0, 0)
    with pytest.raises(ValueError):
        output_camera_info(geometry_of(640, 480, k, p), 0, 640, 480, (0, 0))


def test_scaled_intrinsics_project_to_the_centre_of_the_hr_block():
    """A 3-D point seen at LR pixel centre (u, v) lands on the centre of that pixel's s x s
    HR block, i.e. at s*(u+0.5)-0.5: the convention of nearest/align_corners=False upsampling."""
    scale = 4
    k = np.array([[40.0, 0, 11.7], [0, 42.0, 7.2], [0, 0, 1]])
    centre = (scale - 1) / 2
    scaled = np.array(output_camera_info(geometry_of(24, 16, k.ravel()), scale, 24, 16,
                                         (centre, centre)).k).reshape(3, 3)
    point = np.array([0.13, -0.07, 1.9])
    lr = k @ point
    hr = scaled @ point
    u, v = lr[:2] / lr[2]
    np.testing.assert_allclose(hr[:2] / hr[2], [scale * (u + 0.5) - 0.5,
                                                scale * (v + 0.5) - 0.5])


def test_check_camera_info():
    k = [1.0] * 9
    check_camera_info(geometry_of(640, 480, k), 640, 480)
    with pytest.raises(FrameError) as caught:
        check_camera_info(geometry_of(640, 480, k), 320, 240)
    assert caught.value.kind == 'camera_info'
    assert '640x480' in str(caught.value) and '320x240' in str(caught.value)


def test_depth_to_points_back_projects_and_skips_invalid():
    k = [10.0, 0, 1.5, 0, 20.0, 0.5, 0, 0, 1]
    metres = np.array([[1.0, 2.0, np.nan, 4.0], [0.0, 1.5, 2.5, -1.0]], np.float32)
    points = depth_to_points(metres, k)
    assert points.dtype == np.float32 and points.shape == (5, 3)
    expected = [[(0 - 1.5) * 1.0 / 10, (0 - 0.5) * 1.0 / 20, 1.0],
                [(1 - 1.5) * 2.0 / 10, (0 - 0.5) * 2.0 / 20, 2.0],
                [(3 - 1.5) * 4.0 / 10, (0 - 0.5) * 4.0 / 20, 4.0],
                [(1 - 1.5) * 1.5 / 10, (1 - 0.5) * 1.5 / 20, 1.5],
                [(2 - 1.5) * 2.5 / 10, (1 - 0.5) * 2.5 / 20, 2.5]]
    np.testing.assert_allclose(points, expected, rtol=1e-6)


def test_depth_to_points_millimetres_equal_metres():
    k = [10.0, 0, 1.5, 0, 20.0, 0.5, 0, 0, 1]
    mm = np.array([[1000, 0], [2500, 300]], np.uint16)
    np.testing.assert_allclose(depth_to_points(mm, k),
                               depth_to_points(convert_depth(mm, '32FC1'), k))
    with pytest.raises(ValueError, match='uncalibrated'):
        depth_to_points(mm, [0.0] * 9)


def test_cloud_layout_matches_create_cloud_xyz32():
    points = np.array([[0.1, 0.2, 1.0], [-0.3, 0.4, 2.5]], np.float32)
    layout = cloud_layout(points)
    assert [field[:3] for field in layout.fields] == [('x', 0, 7), ('y', 4, 7), ('z', 8, 7)]
    assert (layout.height, layout.width, layout.point_step, layout.row_step) == (1, 2, 12, 24)
    assert layout.is_dense and not layout.is_bigendian
    np.testing.assert_array_equal(np.frombuffer(layout.data, '<f4').reshape(-1, 3), points)
    empty = cloud_layout(np.zeros((0, 3), np.float32))
    assert (empty.width, empty.row_step, empty.data) == (0, 0, b'')


def test_cloud_message_equals_sensor_msgs_py_reference():
    point_cloud2 = pytest.importorskip(
        'sensor_msgs_py.point_cloud2',
        reason='sensor_msgs_py is not installable from PyPI; the layout test above covers it')
    from std_msgs.msg import Header

    points = np.array([[0.1, 0.2, 1.0], [-0.3, 0.4, 2.5]], np.float32)
    reference = point_cloud2.create_cloud_xyz32(Header(frame_id='f'), points)
    ours = cloud_layout(points)
    assert bytes(reference.data) == ours.data
    assert (reference.point_step, reference.row_step, reference.is_dense) == (
        ours.point_step, ours.row_step, ours.is_dense)
    assert [(f.name, f.offset, f.datatype, f.count) for f in reference.fields] == list(
        ours.fields)
