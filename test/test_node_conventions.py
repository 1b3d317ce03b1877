"""dsr_node as Humble would import it, and the ROS conventions its users expect, over real DDS.

One node process serves the module. It starts with ``rclpy.event_handler`` hidden (Humble has
``rclpy.qos_event`` instead; rclpy's own modules are imported first so only dsr_ros sees the
gap), forced onto the CPU, and is configured the way a robot integrator would:

* only the output *image* is remapped (``/cam/sr/image_raw``): its points must follow it to
  ``/cam/sr/points``, while the explicitly remapped camera_info goes where it was sent;
* standard QoS overrides (``qos_overrides.<topic>.<entity>.<policy>``) make the image
  subscription reliable and the image publisher best effort;
* every frame carries a header stamp :data:`STAMP_AGE_S` in the past, so diagnostics must show
  the latency from the stamp apart from the (much smaller) latency from receipt.
"""

from __future__ import annotations

import sys
import time

import pytest
from conftest import (DDS_TIMEOUT, CONFIG, NodeProcess, camera_info_msg, image_msg, make_depth,
                      publish_until_answered, unique_name, wait_until)

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from dsr_ros.ros.ros_args import node_command  # noqa: E402

#: Runs before dsr_ros.ros.node is imported: as on Humble, ``import rclpy.event_handler`` fails.
HUMBLE_PREAMBLE = ('import sys, rclpy.node, rclpy.qos_event; '
                   "sys.modules['rclpy.event_handler'] = None; "
                   'from dsr_ros.ros.node import main; sys.exit(main())')
STAMP_AGE_S = 3.0
HEIGHT, WIDTH = 12, 16


class Setup:
    def __init__(self, probe, process, namespace, topics):
        self.probe, self.process, self.topics = probe, process, topics
        self.namespace = namespace
        self.image_pub = probe.publisher(Image, topics['in_image'])
        self.info_pub = probe.publisher(CameraInfo, topics['in_info'])
        self.images = probe.subscribe(Image, topics['out_image'], reliable=False)
        self.infos = probe.subscribe(CameraInfo, topics['out_info'])
        self.points = probe.subscribe(PointCloud2, topics['out_points'])
        self.diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', depth=200)

    def send(self, expect=('images', 'infos', 'points')):
        """Publish one frame stamped STAMP_AGE_S ago until every expected output arrived."""
        msg_header = Header(frame_id='cam_depth')
        stamp = self.probe.node.get_clock().now().nanoseconds - int(STAMP_AGE_S * 1e9)
        msg_header.stamp.sec, msg_header.stamp.nanosec = divmod(stamp, 10 ** 9)
        image = image_msg(make_depth('16UC1', HEIGHT, WIDTH), msg_header)
        info = camera_info_msg(msg_header, WIDTH, HEIGHT)
        publish_until_answered(self.image_pub, image, self.info_pub, info,
                               [getattr(self, name) for name in expect],
                               f'{expect} from the node')


@pytest.fixture(scope='module')
def setup(ros_probe, tiny_checkpoint, tmp_path_factory):
    namespace, cam = unique_name('dsr_conv'), '/' + unique_name('cam')
    topics = {'in_image': f'{cam}/depth', 'in_info': f'{cam}/info',
              'out_image': f'{cam}/sr/image_raw', 'out_info': f'/{namespace}_elsewhere/sr_info',
              'out_points': f'{cam}/sr/points'}
    argv = node_command(
        [sys.executable, '-c', HUMBLE_PREAMBLE], namespace=namespace, params_file=CONFIG,
        parameters={'weights_path': str(tiny_checkpoint), 'device': 'cpu', 'torch_threads': 1,
                    'publish_points': True, 'diagnostics_period': 0.5,
                    f'qos_overrides.{topics["in_image"]}.subscription.reliability': 'reliable',
                    f'qos_overrides.{topics["out_image"]}.publisher.reliability': 'best_effort'},
        remaps={'depth/image_raw': topics['in_image'], 'depth/camera_info': topics['in_info'],
                'depth_sr/image_raw': topics['out_image'],
                'depth_sr/camera_info': topics['out_info']})
    process = NodeProcess(argv, tmp_path_factory.mktemp('conventions') / 'node.log')
    node = Setup(ros_probe, process, namespace, topics)
    try:
        wait_until(lambda: (node.image_pub.get_subscription_count()
                            and node.images.subscription.get_publisher_count()
                            and node.infos.subscription.get_publisher_count()
                            and node.points.subscription.get_publisher_count())
                   or not process.alive(), what='the node on the configured topics')
        assert process.alive(), process.log()
        yield node
    finally:
        code = process.stop()
        assert code == 0, process.log()[-3000:]


def test_the_first_frame_waits_for_its_camera_info(setup):
    """require_camera_info is false, and the first image arrives before its camera_info: it
    waits for it (a camera_info publisher exists), so the first output has one too."""
    wait_until(lambda: setup.info_pub.get_subscription_count(), what='the info subscription')
    setup.process.wait_for_log(f'subscribing to {setup.topics["in_info"]} reliable')
    msg_header = Header(frame_id='cam_depth')
    msg_header.stamp.sec, msg_header.stamp.nanosec = 7, 5
    setup.image_pub.publish(image_msg(make_depth('16UC1', HEIGHT, WIDTH), msg_header))
    time.sleep(0.3)
    setup.info_pub.publish(camera_info_msg(msg_header, WIDTH, HEIGHT))
    image = setup.images.wait_for(lambda msg: msg.header.stamp.sec == 7, what='the first image')
    assert setup.images.snapshot()[0] is image  # it is the first output
    info = setup.infos.wait_for(lambda msg: msg.header.stamp.sec == 7, what='its camera_info')
    assert info.width == WIDTH * 4


def test_runs_with_rclpy_event_handler_hidden_as_on_humble(setup):
    setup.send(expect=('images',))
    assert 'Traceback' not in setup.process.log()
    assert setup.process.alive()


def test_points_follow_the_remapped_image_and_an_explicit_info_remap_is_kept(setup):
    setup.send()
    graph = setup.probe.node
    default_info = setup.topics['out_image'].rsplit('/', 1)[0] + '/camera_info'
    assert graph.count_publishers(default_info) == 0


def _endpoint(infos):
    mine = [info for info in infos if info.node_name == 'dsr_node']
    assert len(mine) == 1, infos
    return mine[0].qos_profile


def test_standard_qos_overrides_apply(setup):
    graph = setup.probe.node
    subscription = wait_until(lambda: graph.get_subscriptions_info_by_topic(
        setup.topics['in_image']), what='the image subscription in the graph')
    # Defaults: best-effort input (sensor data QoS), reliable outputs.
    assert _endpoint(subscription).reliability == ReliabilityPolicy.RELIABLE
    publisher = graph.get_publishers_info_by_topic(setup.topics['out_image'])
    assert _endpoint(publisher).reliability == ReliabilityPolicy.BEST_EFFORT
    # Not overridden: the camera_info publisher keeps the default.
    info_publisher = graph.get_publishers_info_by_topic(setup.topics['out_info'])
    assert _endpoint(info_publisher).reliability == ReliabilityPolicy.RELIABLE


def test_diagnostics_report_latency_from_the_header_stamp_and_from_receipt(setup):
    setup.send(expect=('images',))
    name = f'/{setup.namespace}/dsr_node: depth super-resolution'

    def values():
        for array in reversed(setup.diagnostics.snapshot()):
            for status in array.status:
                found = {kv.key: kv.value for kv in status.values}
                if (status.name == name
                        and found.get('median_latency_from_stamp_ms', 'nan') != 'nan'):
                    return found
        return None

    found = wait_until(values, DDS_TIMEOUT, what='diagnostics with a stamp latency')
    from_stamp = float(found['median_latency_from_stamp_ms'])
    from_receipt = float(found['median_latency_ms'])
    assert STAMP_AGE_S * 1e3 <= from_stamp < STAMP_AGE_S * 1e3 + 30_000, found
    # Receipt -> publication is part of stamp -> publication (clocks agree to a few ms here).
    assert 0 <= from_receipt < from_stamp - STAMP_AGE_S * 1e3 + 50.0, found
