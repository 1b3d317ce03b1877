"""The node's frame flow without ROS: latest-frame slot, stamp pairing, statistics, argv."""

from __future__ import annotations

import math
import sys
import threading
import time

import pytest

from dsr_ros.ros.pipeline import FlowStats, LatestFrameSlot, StampPairer
from dsr_ros.ros.ros_args import default_params_file, format_parameter, node_command


def test_slot_keeps_only_the_newest_and_reports_what_it_dropped():
    slot = LatestFrameSlot()
    assert slot.put(1) is None
    assert slot.put(2) == 1
    assert slot.put(3) == 2
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0.01) is None


def test_slot_take_wakes_on_put_and_on_close():
    slot = LatestFrameSlot()
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    consumer.start()
    time.sleep(0.05)
    slot.put('frame')
    consumer.join(5)
    assert got == ['frame']

    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    start = time.monotonic()
    waiter.start()
    time.sleep(0.05)
    slot.close()
    waiter.join(5)
    assert got[-1] is None and time.monotonic() - start < 5


def test_pairer_matches_exact_stamps_in_either_order():
    pairer = StampPairer(capacity=3)
    assert pairer.add_image((1, 0), 'image1') is None
    assert pairer.add_info((1, 0), 'info1') == ('image1', 'info1')
    assert pairer.add_info((2, 5), 'info2') is None
    assert pairer.add_image((2, 6), 'image2b') is None  # 1 ns apart: no match
    assert pairer.add_image((2, 5), 'image2') == ('image2', 'info2')
    assert pairer.latest_info == 'info2'


def test_pairer_is_bounded_and_counts_images_without_info():
    pairer = StampPairer(capacity=2)
    for sec in range(5):
        pairer.add_image((sec, 0), f'image{sec}')
    assert pairer.evicted_images == 3
    assert pairer.add_info((0, 0), 'late info') is None  # image 0 was evicted
    assert pairer.add_info((4, 0), 'info4') == ('image4', 'info4')


def test_pairer_info_for_prefers_the_exact_stamp():
    pairer = StampPairer()
    assert pairer.info_for((1, 0)) is None
    pairer.add_info((1, 0), 'info1')
    pairer.add_info((2, 0), 'info2')
    assert pairer.info_for((1, 0)) == 'info1'
    assert pairer.info_for((9, 0)) == 'info2'
    with pytest.raises(ValueError):
        StampPairer(capacity=0)


def test_flow_stats_rates_latency_and_counters():
    stats = FlowStats(window_s=2.0)
    start = stats._start
    for i in range(20):  # 10 Hz for 2 s
        stats.input(now=start + 0.1 * i)
    for latency in (0.05, 0.3, 0.1):
        stats.output(latency, now=start + 1.9)
    stats.count('dropped')
    stats.count('rejected', 'encoding: unsupported encoding')
    snap = stats.snapshot(now=start + 2.0)
    assert snap['input_rate_hz'] == pytest.approx(10.0)
    assert snap['output_rate_hz'] == pytest.approx(1.5)
    assert snap['median_latency_s'] == pytest.approx(0.1)
    assert (snap['received'], snap['published'], snap['dropped'], snap['rejected']) == (
        20, 3, 1, 1)
    assert snap['last_error'] == 'encoding: unsupported encoding'
    later = stats.snapshot(now=start + 10.0)
    assert later['input_rate_hz'] == 0 and later['received'] == 20
    assert math.isnan(FlowStats().snapshot()['median_latency_s'])


def test_node_command_matches_launch_ros_form(tmp_path):
    params = tmp_path / 'p.yaml'
    argv = node_command(['dsr_node'], name='dsr_node', namespace='/robot/cam',
                        params_file=params,
                        parameters={'weights_path': '', 'half': True, 'max_depth': 4.5,
                                    'tile_size': 64, 'device': 'true'},
                        remaps={'depth/image_raw': '/camera/depth/image_rect_raw'},
                        log_level='debug')
    assert argv == ['dsr_node', '--ros-args', '-r', '__node:=dsr_node',
                    '-r', '__ns:=/robot/cam', '--params-file', str(params),
                    '-p', "weights_path:=''", '-p', 'half:=true', '-p', 'max_depth:=4.5',
                    '-p', 'tile_size:=64', '-p', "device:='true'",
                    '-r', 'depth/image_raw:=/camera/depth/image_rect_raw',
                    '--log-level', 'debug']
    assert node_command()[:3] == [sys.executable, '-m', 'dsr_ros.ros.node']
    assert format_parameter("it's") == "'it''s'"
    assert default_params_file().name == 'dsr.yaml' and default_params_file().is_file()
