"""dsr_node as a real process over real DDS: publisher -> node -> subscriber.

One node process serves the whole module (start-up costs seconds on this machine). It runs in a
namespace with remapped inputs, exactly as the launch file would start it, with a parameter file
derived from config/dsr.yaml in which only require_camera_info, publish_points, half and
diagnostics_period differ: the point cloud, the pairing behaviour and the half warning therefore
also prove that the YAML key of config/dsr.yaml reaches a namespaced node. The node is forced
onto the CPU (``device: cpu``), so the suite means the same on a machine with a GPU.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import yaml
from conftest import (CONFIG, DDS_TIMEOUT, camera_info_msg, header, image_msg, make_depth,
                      start_node, unique_name, wait_until)

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterValue  # noqa: E402
from rcl_interfaces.srv import (DescribeParameters, ListParameters,  # noqa: E402
                                SetParameters)
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from dsr_ros.depth_io import decode_depth  # noqa: E402

SCALE = 4
HEIGHT, WIDTH = 16, 24
#: Frames are re-sent after this long without an answer (inputs are best effort).
RESEND_S = 2.0
_stamp_counter = iter(range(10_000))


class SrNode:
    """The running node plus the probe's publishers and inboxes for its topics."""

    def __init__(self, probe, process, namespace: str, camera: str) -> None:
        self.probe, self.process = probe, process
        self.namespace, self.camera = namespace, camera
        self.image_pub = probe.publisher(Image, f'{camera}/depth/image_rect_raw')
        self.info_pub = probe.publisher(CameraInfo, f'{camera}/depth/camera_info')
        self.images = probe.subscribe(Image, f'{camera}/depth_sr/image')
        # Only the image is remapped: camera_info and points must follow it.
        self.infos = probe.subscribe(CameraInfo, f'{camera}/depth_sr/camera_info')
        self.points = probe.subscribe(PointCloud2, f'{camera}/depth_sr/points')
        self.diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', depth=200)
        self.status_name = f'/{namespace}/dsr_node: depth super-resolution'

    def ready(self) -> bool:
        return (self.image_pub.get_subscription_count() >= 1
                and self.info_pub.get_subscription_count() >= 1
                and all(inbox.subscription.get_publisher_count() >= 1
                        for inbox in (self.images, self.infos, self.points)))

    def send(self, image, info=None, expect=('images',)) -> dict:
        """Publish (re-sending while unanswered) until every expected output with the image's
        stamp arrived; returns {inbox name: message}."""
        stamp = image.header.stamp
        deadline = time.monotonic() + DDS_TIMEOUT
        while time.monotonic() < deadline:
            if info is not None:
                self.info_pub.publish(info)
            self.image_pub.publish(image)
            resend_at = time.monotonic() + RESEND_S
            while time.monotonic() < resend_at:
                found = {name: getattr(self, name).with_stamp(stamp) for name in expect}
                if all(found.values()):
                    return found
                time.sleep(0.02)
        pytest.fail(f'no {expect} with stamp {stamp} from the node; log:\n'
                    f'{self.process.log()[-3000:]}')

    def send_until_logged(self, image, info, text: str) -> None:
        """Publish (re-sending while unanswered) until ``text`` appears in the node's log."""
        deadline = time.monotonic() + DDS_TIMEOUT
        while time.monotonic() < deadline:
            self.info_pub.publish(info)
            self.image_pub.publish(image)
            resend_at = time.monotonic() + RESEND_S
            while time.monotonic() < resend_at:
                if text in self.process.log():
                    return
                time.sleep(0.05)
        pytest.fail(f'{text!r} never logged; log:\n{self.process.log()[-3000:]}')

    def call(self, srv_type, service: str, request):
        client = self.probe.node.create_client(srv_type, f'/{self.namespace}/dsr_node/{service}')
        try:
            assert client.wait_for_service(timeout_sec=DDS_TIMEOUT), f'no {service} service'
            future = client.call_async(request)
            wait_until(future.done, what=f'{service} response')
            return future.result()
        finally:
            self.probe.node.destroy_client(client)


@pytest.fixture(scope='module')
def sr_node(ros_probe, tiny_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp('node')
    config = yaml.safe_load(CONFIG.read_text())
    key, = config
    config[key]['ros__parameters'].update(require_camera_info=True, publish_points=True,
                                          diagnostics_period=0.5, half=True)
    params_file = work / 'params.yaml'
    params_file.write_text(yaml.safe_dump(config))
    namespace, camera = unique_name('dsr_test'), '/' + unique_name('cam')
    process = start_node(
        work / 'node.log', namespace=namespace, params_file=params_file,
        parameters={'weights_path': str(tiny_checkpoint), 'torch_threads': 1, 'device': 'cpu'},
        remaps={'depth/image_raw': f'{camera}/depth/image_rect_raw',
                'depth/camera_info': f'{camera}/depth/camera_info',
                'depth_sr/image_raw': f'{camera}/depth_sr/image'})
    node = SrNode(ros_probe, process, namespace, camera)
    try:
        wait_until(lambda: node.ready() or not process.alive(), what='node topics to match')
        assert process.alive(), f'node exited:\n{process.log()}'
        yield node
    finally:
        code = process.stop()
        assert code == 0, f'node did not shut down cleanly ({code}):\n{process.log()[-3000:]}'


def _frame(encoding: str, **image_kwargs):
    index = next(_stamp_counter)
    depth = make_depth('32FC1' if encoding == '32FC1' else '16UC1', HEIGHT, WIDTH, seed=index)
    msg_header = header(index)
    image = image_msg(depth, msg_header, encoding=encoding, **image_kwargs)
    return depth, image, camera_info_msg(msg_header, WIDTH, HEIGHT)


def _decode(msg: Image) -> np.ndarray:
    return decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian,
                        msg.data)


def _invalid(depth: np.ndarray) -> np.ndarray:
    return depth == 0 if depth.dtype == np.uint16 else ~np.isfinite(depth)


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1', 'mono16'])
def test_sr_image_and_camera_info(sr_node, encoding):
    depth, image, info = _frame(encoding)
    info.roi.do_rectify = True
    out = sr_node.send(image, info, expect=('images', 'infos'))
    sr_msg, sr_info = out['images'], out['infos']

    assert (sr_msg.height, sr_msg.width) == (HEIGHT * SCALE, WIDTH * SCALE)
    assert sr_msg.encoding == encoding
    assert sr_msg.header.frame_id == image.header.frame_id
    assert sr_msg.header.stamp == image.header.stamp
    sr = _decode(sr_msg)
    expected_invalid = np.kron(_invalid(depth), np.ones((SCALE, SCALE), bool))
    np.testing.assert_array_equal(_invalid(sr), expected_invalid)

    assert sr_info.header.stamp == image.header.stamp
    assert sr_info.header.frame_id == image.header.frame_id
    assert (sr_info.width, sr_info.height) == (WIDTH * SCALE, HEIGHT * SCALE)
    fx, fy, cx, cy = info.k[0], info.k[4], info.k[2], info.k[5]
    cx_sr, cy_sr = SCALE * (cx + 0.5) - 0.5, SCALE * (cy + 0.5) - 0.5
    np.testing.assert_allclose(sr_info.k, [SCALE * fx, 0, cx_sr, 0, SCALE * fy, cy_sr, 0, 0, 1])
    np.testing.assert_allclose(sr_info.p, [SCALE * fx, 0, cx_sr, SCALE * -1.5,
                                           0, SCALE * fy, cy_sr, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(sr_info.d, info.d)
    np.testing.assert_allclose(sr_info.r, info.r)
    assert sr_info.distortion_model == 'plumb_bob'
    roi = sr_info.roi
    assert (roi.x_offset, roi.y_offset, roi.height, roi.width, roi.do_rectify) == (
        0, 0, 0, 0, True)
    assert (sr_info.binning_x, sr_info.binning_y) == (0, 0)


def _binned_info(msg_header, binning=SCALE, roi=(8, 4)):
    """The camera_info image_proc's crop_decimate publishes for a HEIGHT x WIDTH image: the
    calibration size kept (a 128x80 camera), binning, the crop as roi."""
    info = camera_info_msg(msg_header, 128, 80)
    info.binning_x = info.binning_y = binning
    info.roi.x_offset, info.roi.y_offset = roi
    info.roi.width, info.roi.height = WIDTH * binning, HEIGHT * binning
    return info


def test_image_proc_decimation_camera_info_is_read_as_rep_104(sr_node):
    """Calibration 128x80 with binning 4 and a crop is legal for a 24x16 image (REP 104): the
    output gets the same calibration with binning 1, and the geometry (decimated) is logged,
    with the model's inability to serve it named (the test model records no point alignment)."""
    _, image, _ = _frame('16UC1')
    info = _binned_info(image.header)
    out = sr_node.send(image, info, expect=('images', 'infos'))['infos']
    assert (out.width, out.height, out.binning_x, out.binning_y) == (128, 80, 1, 1)
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height) == (
        8, 4, WIDTH * SCALE, HEIGHT * SCALE)
    np.testing.assert_allclose(out.k, info.k)
    sr_node.process.wait_for_log('sampling geometry: decimated at phase (0, 0) (camera_info '
                                 'binning 4x4')
    sr_node.process.wait_for_log('tiny_x4.pt cannot serve decimated input: the checkpoint '
                                 'records no point alignment')


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1'])
def test_big_endian_and_padded_rows_give_the_same_result(sr_node, encoding):
    index = next(_stamp_counter)
    depth = make_depth(encoding, HEIGHT, WIDTH, seed=index)
    results = {}
    for variant, kwargs in {'plain': {}, 'big_endian': {'bigendian': True},
                            'padded': {'pad': 8}, 'both': {'bigendian': True, 'pad': 12}}.items():
        msg_header = header(next(_stamp_counter))
        image = image_msg(depth, msg_header, **kwargs)
        assert image.step == WIDTH * depth.itemsize + kwargs.get('pad', 0)
        results[variant] = _decode(sr_node.send(image, camera_info_msg(msg_header, WIDTH,
                                                                       HEIGHT))['images'])
    for variant in ('big_endian', 'padded', 'both'):
        if encoding == '16UC1':
            difference = np.abs(results[variant].astype(int) - results['plain'].astype(int))
            assert difference.max() <= 1, variant
        else:
            np.testing.assert_allclose(results[variant], results['plain'], rtol=1e-5,
                                       equal_nan=True, err_msg=variant)


def test_point_cloud_back_projects_to_the_sr_depth(sr_node):
    _, image, info = _frame('16UC1')
    out = sr_node.send(image, info, expect=('images', 'infos', 'points'))
    cloud, sr_info = out['points'], out['infos']
    sr = _decode(out['images']).astype(np.float64) / 1000.0

    assert cloud.header.frame_id == image.header.frame_id
    assert cloud.header.stamp == image.header.stamp
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1)]
    assert (cloud.height, cloud.point_step, cloud.is_dense, cloud.is_bigendian) == (
        1, 12, True, False)
    assert cloud.width == np.count_nonzero(sr > 0)
    assert cloud.row_step == 12 * cloud.width
    points = np.frombuffer(bytes(cloud.data), '<f4').reshape(-1, 3).astype(np.float64)
    fx, fy, cx, cy = sr_info.k[0], sr_info.k[4], sr_info.k[2], sr_info.k[5]
    u = np.rint(points[:, 0] * fx / points[:, 2] + cx).astype(int)
    v = np.rint(points[:, 1] * fy / points[:, 2] + cy).astype(int)
    assert u.min() >= 0 and v.min() >= 0 and u.max() < sr.shape[1] and v.max() < sr.shape[0]
    np.testing.assert_allclose(points[:, 2], sr[v, u], rtol=1e-6)
    assert len(set(zip(u.tolist(), v.tolist()))) == cloud.width  # every pixel exactly once


def test_malformed_frames_are_logged_and_skipped(sr_node):
    good_depth, good, good_info = _frame('16UC1')
    bad = []

    def variant(reason, **fields):
        _, image, info = _frame('16UC1')
        for name, value in fields.items():
            setattr(image, name, value)
        bad.append((reason, image, info))

    variant('unsupported encoding', encoding='rgb8')
    variant('data has', data=bytes(good.data)[:-2])
    variant('empty image', height=0, width=0, step=0, data=b'')
    variant('exceeds the limit', height=100_000, width=100_000, step=200_000, data=b'')
    variant('is smaller than width', step=WIDTH)
    variant('is not a multiple', step=2 * WIDTH + 1, data=bytes((2 * WIDTH + 1) * HEIGHT))
    _, image, info = _frame('16UC1')
    info.width += 1
    bad.append(('describes a 25x16 image but the image is 24x16', image, info))

    # One at a time: the sensor-data input queue keeps only the newest 5 messages.
    for reason, image, info in bad:
        sr_node.send_until_logged(image, info, reason)
    out = sr_node.send(good, good_info)['images']
    assert (out.height, out.width) == (HEIGHT * SCALE, WIDTH * SCALE)
    for reason, image, _ in bad:
        assert sr_node.images.with_stamp(image.header.stamp) is None, reason
    assert sr_node.process.alive()
    assert 'Traceback' not in sr_node.process.log()


def test_images_without_a_camera_info_of_the_same_stamp_are_not_processed(sr_node):
    """require_camera_info=true: unmatched images wait in a bounded cache, then are reported."""
    stamps = []

    def logged():
        if 'got no camera_info with the same stamp' in sr_node.process.log():
            return True
        _, image, _ = _frame('16UC1')
        stamps.append(image.header.stamp)
        sr_node.image_pub.publish(image)
        return False

    wait_until(logged, interval=0.05, what='the unpaired-images warning')
    assert len(stamps) > 10  # the cache holds 10
    assert not any(sr_node.images.with_stamp(stamp) for stamp in stamps)


def test_uncalibrated_camera_info_gives_image_and_info_but_no_points(sr_node):
    _, image, info = _frame('32FC1')
    info.k = [0.0] * 9
    info.p = [0.0] * 12
    out = sr_node.send(image, info, expect=('images', 'infos'))
    assert out['infos'].width == WIDTH * SCALE and not any(out['infos'].k)
    sr_node.process.wait_for_log('no point cloud')
    assert sr_node.points.with_stamp(image.header.stamp) is None


def test_incompatible_output_qos_is_logged(sr_node):
    from rclpy.qos import DurabilityPolicy, QoSProfile
    qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    subscription = sr_node.probe.node.create_subscription(
        CameraInfo, f'{sr_node.camera}/depth_sr/camera_info', lambda msg: None, qos)
    try:
        sr_node.process.wait_for_log('incompatible QoS on a publisher: policy DURABILITY')
    finally:
        sr_node.probe.node.destroy_subscription(subscription)


def test_diagnostics_report_rates_latency_and_errors(sr_node):
    _, bad, bad_info = _frame('16UC1')
    bad.encoding = 'bgr8'
    sr_node.info_pub.publish(bad_info)
    sr_node.image_pub.publish(bad)
    _, good, good_info = _frame('32FC1')
    sr_node.send(good, good_info)

    def report():
        for array in reversed(sr_node.diagnostics.snapshot()):
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                if (status.name == sr_node.status_name
                        and int(values['rejected_frames']) >= 1
                        and int(values['frames_published']) >= 1):
                    return status, values
        return None

    status, values = wait_until(report, what='a diagnostics report with the rejected frame')
    assert isinstance(status.level, bytes) and status.level in (b'\x00', b'\x01', b'\x02')
    assert status.hardware_id == 'cpu'  # forced by the fixture
    for key in ('input_rate_hz', 'output_rate_hz', 'median_latency_ms', 'dropped_frames',
                'last_error', 'scale', 'precision', 'weights'):
        assert key in values, key
    assert float(values['input_rate_hz']) > 0
    assert math.isfinite(float(values['median_latency_ms']))
    assert values['last_error']  # e.g. "encoding: unsupported encoding 'bgr8' ..."
    assert values['scale'] == str(SCALE)


def test_half_on_cpu_warns_once_and_runs_fp32(sr_node):
    """The fixture forces device cpu and sets half: true."""
    warning = 'fp16 (half) needs CUDA but the device is cpu; running in fp32'
    sr_node.process.wait_for_log(warning)
    assert sr_node.process.log().count(warning) == 1
    array = sr_node.diagnostics.wait_for(
        lambda array: array.status[0].name == sr_node.status_name, what='diagnostics')
    values = {kv.key: kv.value for kv in array.status[0].values}
    assert values['precision'] == 'fp32'


def test_parameters_are_described_listed_in_config_and_vetoed(sr_node):
    config = yaml.safe_load(CONFIG.read_text())
    config_keys = set(next(iter(config.values()))['ros__parameters'])
    listed = set(sr_node.call(ListParameters, 'list_parameters',
                              ListParameters.Request()).result.names)
    builtin = {'use_sim_time', 'start_type_description_service'}
    qos_overrides = {name for name in listed if name.startswith('qos_overrides.')}
    assert listed - builtin - qos_overrides == config_keys

    described = sr_node.call(DescribeParameters, 'describe_parameters',
                             DescribeParameters.Request(names=sorted(config_keys)))
    for descriptor in described.descriptors:
        assert len(descriptor.description) > 20, descriptor.name
    read_only = {d.name for d in described.descriptors if d.read_only}
    assert {'weights_path', 'device', 'input_reliability', 'publish_points',
            'keep_samples', 'ensemble_passes'} <= read_only
    assert {'max_depth', 'sampling', 'sampling_phase'}.isdisjoint(read_only)

    def set_param(name, value):
        kind = 4 if isinstance(value, str) else 7 if isinstance(value, list) else 2
        param_value = (ParameterValue(type=kind, string_value=value) if kind == 4
                       else ParameterValue(type=kind, integer_array_value=value) if kind == 7
                       else ParameterValue(type=kind, integer_value=value))
        request = SetParameters.Request(parameters=[Parameter(name=name, value=param_value)])
        return sr_node.call(SetParameters, 'set_parameters', request).results[0]

    assert not set_param('weights_path', '/elsewhere.pt').successful
    refused = set_param('tile_size', 4)  # tile_overlap is 8
    assert not refused.successful and 'tile_overlap' in refused.reason
    refused = set_param('scaling_tile', 12)
    assert not refused.successful and 'scaling_tile' in refused.reason
    assert not set_param('output_encoding', '8UC1').successful

    refused = set_param('sampling_phase', [1, 2])
    assert not refused.successful and 'no point alignment' in refused.reason
    assert not set_param('sampling', 'random').successful
    assert set_param('sampling', 'native').successful
    try:
        _, image, _ = _frame('16UC1')
        out = sr_node.send(image, _binned_info(image.header), expect=('infos',))['infos']
        assert (out.binning_x, out.width) == (0, WIDTH * SCALE)  # the native form now

        def sampling_reported():
            for array in reversed(sr_node.diagnostics.snapshot()):
                for status in array.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if status.name == sr_node.status_name and 'sampling' in values:
                        return values['sampling']
            return None
        wait_until(lambda: 'sampling: native' in (sampling_reported() or ''),
                   what='/diagnostics reporting the native geometry')
    finally:
        assert set_param('sampling', 'auto').successful

    assert set_param('output_encoding', '32FC1').successful
    try:
        depth, image, info = _frame('16UC1')
        out = sr_node.send(image, info)['images']
        assert out.encoding == '32FC1'
        sr = _decode(out)
        expected_invalid = np.kron(depth == 0, np.ones((SCALE, SCALE), bool))
        np.testing.assert_array_equal(np.isnan(sr), expected_invalid)
    finally:
        assert set_param('output_encoding', '').successful


def test_long_values_are_truncated_in_diagnostics(sr_node):
    """A hostile encoding name (100,000 characters) must not be repeated in every report."""
    _, image, info = _frame('16UC1')
    image.encoding = 'x' * 100_000
    sr_node.send_until_logged(image, info, 'unsupported encoding')

    def long_error():
        for array in reversed(sr_node.diagnostics.snapshot()):
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name == sr_node.status_name and 'xxxx' in values['last_error']:
                    return values
        return None

    values = wait_until(long_error, what='diagnostics with the long encoding error')
    assert all(len(value) <= 256 for value in values.values())
    assert values['last_error'].endswith('characters)')


def test_camera_info_with_non_finite_k_is_refused(sr_node):
    _, image, info = _frame('32FC1')
    info.k[4] = float('nan')
    sr_node.send_until_logged(image, info, 'camera_info K has non-finite values (nan at K[4])')
    assert sr_node.images.with_stamp(image.header.stamp) is None
    assert sr_node.points.with_stamp(image.header.stamp) is None


def test_roi_beyond_the_calibration_is_refused_not_wrapped(sr_node):
    _, image, info = _frame('16UC1')
    info.roi.x_offset, info.roi.y_offset = 2 ** 32 - 1, 3
    info.roi.height, info.roi.width = 2 ** 31, 5
    sr_node.send_until_logged(image, info, 'does not lie inside its 24x16 calibration')
    assert sr_node.images.with_stamp(image.header.stamp) is None


def test_an_info_binning_and_roi_cannot_explain_is_refused_with_the_reason(sr_node):
    _, image, _ = _frame('16UC1')
    info = _binned_info(image.header)
    info.binning_x = info.binning_y = 2
    sr_node.send_until_logged(image, info, 'describes a 48x32 image but the image is 24x16')
    assert sr_node.images.with_stamp(image.header.stamp) is None
