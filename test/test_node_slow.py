"""A model slower than the camera: dsr_node drops old frames instead of queueing them.

The node runs a wider net, forced onto the CPU in fp32 on one thread, while the test publishes
at 20 Hz through a *reliable* publisher (like a driver) to a node with
input_reliability=reliable. The frame size is chosen by measuring this machine first: the test
times the same net on one thread and grows the frame until one frame takes at least
SLOW_FRAME_S (four camera periods), so the node is slower than the camera on any CPU.
A queue would let latency grow to ~10 s over the run; the latest-frame slot keeps it near one
inference time, processes the newest frame, and reports the drops in /diagnostics. A second,
best-effort publisher on the same topic must raise the incompatible-QoS event, which is logged.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from conftest import (DDS_TIMEOUT, header, image_msg, make_depth, start_node, unique_name,
                      wait_until, write_checkpoint)

pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

RATE_HZ = 20.0
DURATION_S = 3.0
#: Seconds one frame must take on this machine (measured before the node starts).
SLOW_FRAME_S = 4.0 / RATE_HZ
#: The largest frame tried; at 640x480 the net takes seconds on any CPU this runs on.
MAX_SIDE = 640


def _slow_frame_size(weights) -> tuple:
    """(height, width) of the smallest 4:3 frame, doubling from 60x80, on which the net in
    ``weights`` takes at least SLOW_FRAME_S on one thread here (fp32, as the node runs it)."""
    import torch

    from dsr_ros.inference import DepthSuperResolver
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resolver = DepthSuperResolver.from_checkpoint(weights, device='cpu', precision='fp32')
        height, width = 60, 80
        while True:
            depth = make_depth('16UC1', height, width)
            resolver.run(depth)  # warm-up
            start = time.perf_counter()
            resolver.run(depth)
            if time.perf_counter() - start >= SLOW_FRAME_S or width >= MAX_SIDE:
                return height, width
            height, width = height * 2, width * 2
    finally:
        torch.set_num_threads(threads)


def _dropped_reported(diagnostics, namespace: str) -> int:
    best = 0
    for array in diagnostics.snapshot():
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == f'/{namespace}/dsr_node: depth super-resolution':
                best = max(best, int(values['dropped_frames']))
    return best


def test_slow_model_drops_frames_and_keeps_latency_bounded(ros_probe, tmp_path,
                                                           node_processes):
    namespace = unique_name('dsr_slow')
    weights = write_checkpoint(tmp_path / f'{namespace}.pt', num_channels=32, num_blocks=2)
    height, width = _slow_frame_size(weights)
    process = start_node(tmp_path / 'node.log', namespace=namespace, parameters={
        'weights_path': str(weights), 'torch_threads': 1, 'device': 'cpu', 'precision': 'fp32',
        'input_reliability': 'reliable',
        'diagnostics_period': 0.5})
    node_processes.append(process)
    image_pub = ros_probe.publisher(Image, f'/{namespace}/depth/image_raw', reliable=True)
    best_effort_pub = ros_probe.publisher(Image, f'/{namespace}/depth/image_raw',
                                          reliable=False)
    outputs = ros_probe.subscribe(Image, f'/{namespace}/depth_sr/image_raw')
    infos = ros_probe.subscribe(CameraInfo, f'/{namespace}/depth_sr/camera_info')
    diagnostics = ros_probe.subscribe(DiagnosticArray, '/diagnostics', depth=200)
    wait_until(lambda: (image_pub.get_subscription_count() >= 1
                        and outputs.subscription.get_publisher_count() >= 1)
               or not process.alive(), what='the node to match the test topics')
    assert process.alive(), process.log()

    process.wait_for_log('incompatible QoS on a subscription: policy RELIABILITY')
    assert best_effort_pub.get_subscription_count() == 0

    depth = make_depth('16UC1', height, width)
    sent = {}
    start = time.monotonic()
    for index in range(int(RATE_HZ * DURATION_S)):
        time.sleep(max(0.0, start + index / RATE_HZ - time.monotonic()))
        msg_header = header(index)
        sent[index] = time.monotonic()
        image_pub.publish(image_msg(depth, msg_header))
    last = index

    def newest_done():
        return any(msg.header.stamp.sec - 1_000 == last for msg in outputs.snapshot())

    wait_until(newest_done, DDS_TIMEOUT, what='the newest frame to come out')
    messages, times = outputs.snapshot(), list(outputs.times)
    indices = [msg.header.stamp.sec - 1_000 for msg in messages]
    latencies = [received - sent[i] for i, received in zip(indices, times)]
    intervals = np.diff(times)
    inference_s = float(np.median(intervals)) if len(intervals) else latencies[0]

    assert indices == sorted(indices)
    assert len(messages) < len(sent), f'{len(messages)} of {len(sent)} came out'
    assert max(latencies) < 4 * inference_s + 1.0, (latencies, inference_s)
    assert statistics.median(latencies) < 3 * inference_s + 0.5, (latencies, inference_s)
    wait_until(lambda: _dropped_reported(diagnostics, namespace) > 0,
               what='dropped_frames > 0 in /diagnostics')
    assert _dropped_reported(diagnostics, namespace) + len(messages) <= len(sent)
    assert 'dropped' in process.log()
    assert infos.snapshot() == []  # no camera_info in, none out
    assert process.alive()
