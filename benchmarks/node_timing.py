"""The node through DDS: a publisher in this process -> a ``dsr_ros.ros.node`` process -> a
subscriber in this process.

``lockstep`` publishes the next frame only after the previous result came back (pure per-frame
latency); ``flood`` publishes twice as fast as the node can go, so its keep-the-newest-frame
policy is exercised and the sustained output rate is measured, with latency from the input
header stamp to receipt. Every run starts a fresh node process with the variant's parameters
and process settings and stops it (SIGINT, then SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from benchmarks.memory import read_peak_rss_mb
from benchmarks.model_timing import Case, Settings, record as make_record
from benchmarks.timing import summarize
from benchmarks.variants import Variant

__all__ = ['NodeBench', 'isolate_dds']

REPO = Path(__file__).resolve().parents[1]
NODE_OUTPUT_TOPIC = 'depth_sr/image_raw'
NODE_INPUT_TOPIC = 'depth/image_raw'
NODE_INFO_TOPIC = 'depth/camera_info'


def isolate_dds(domain_id: Optional[int] = None) -> int:
    """Keep DDS on loopback and in a domain of its own (docs/ros.md) before rclpy starts."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    domain = domain_id if domain_id is not None else random.randint(101, 200)
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    return domain


def process_env(variant: Variant) -> Dict[str, str]:
    """The environment of a node process for the variant's process settings."""
    env = os.environ.copy()
    if variant.process == 'no-malloc':
        env['DSR_ROS_MALLOC_TUNING'] = '0'
    elif variant.process == 'omp-spin':
        env['DSR_ROS_OMP_PASSIVE'] = '0'
        env.pop('OMP_WAIT_POLICY', None)
    elif variant.process:
        raise ValueError(f'unknown process setting {variant.process!r}')
    return env


def node_command(case: Case, variant: Variant) -> List[str]:
    """``python -m dsr_ros.ros.node`` with the case's checkpoint and the variant's parameters."""
    command = [sys.executable, '-m', 'dsr_ros.ros.node', '--ros-args', '-r', '__node:=dsr_node']
    params_file = REPO / 'config' / 'dsr.yaml'
    if params_file.is_file():
        command += ['--params-file', str(params_file)]
    params = {'weights_path': case.weights_path, 'device': str(case.device),
              'precision': variant.precision, 'channels_last': variant.channels_last,
              'torch_threads': variant.threads or torch.get_num_threads(),
              'tile_size': variant.tile_size, 'input_reliability': 'reliable'}
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ['-p', f'{name}:={text}']
    return command


class NodeBench:
    """Publisher and subscriber around a ``dsr_ros.ros.node`` process, in this process.

    Images are published reliable (a reliable writer matches best-effort and reliable
    readers) with their CameraInfo of the same stamp; the output subscription takes the
    reliability the node actually offers, found by graph introspection. Latency is receipt
    time minus the input header stamp (both from this process's clock).
    """

    def __init__(self, settings: Settings, *, rate_hz: float = 30.0,
                 startup_timeout_s: float = 90.0) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self._rclpy = rclpy
        self._qos = (QoSProfile, ReliabilityPolicy, HistoryPolicy)
        self._msgs = (Image, CameraInfo)
        self.settings = settings
        self.rate_hz = rate_hz
        self.startup_timeout_s = startup_timeout_s
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('dsr_benchmark_client', context=self.context)
        reliable = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, NODE_INPUT_TOPIC, reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, NODE_INFO_TOPIC, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinning = threading.Event()
        self._spin: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._arrivals: Dict[int, int] = {}
        self._event = threading.Event()
        self._subscription = None

    def _spin_loop(self) -> None:
        while self._spinning.is_set() and self._rclpy.ok(context=self.context):
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down mid-spin
                if not self._rclpy.ok(context=self.context):
                    return
                raise

    def _start_spinning(self) -> None:
        """Spin only while a node case runs: an idle executor thread would wake up 20 times
        a second and steal time from the model measurements on a 2-core CPU."""
        self._spinning.set()
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _stop_spinning(self) -> None:
        self._spinning.clear()
        if self._spin is not None:
            self._spin.join(timeout=2.0)
            self._spin = None

    def close(self) -> None:
        self._stop_spinning()
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)

    def _on_output(self, msg: Any) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self._arrivals[stamp] = now
        self._event.set()

    def _subscribe_output(self, timeout_s: float) -> str:
        QoSProfile, ReliabilityPolicy, HistoryPolicy = self._qos
        deadline = time.monotonic() + timeout_s
        reliability = ReliabilityPolicy.BEST_EFFORT
        while time.monotonic() < deadline:
            infos = self.node.get_publishers_info_by_topic('/' + NODE_OUTPUT_TOPIC)
            if infos:
                reliability = infos[0].qos_profile.reliability
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f'no publisher of {NODE_OUTPUT_TOPIC} within {timeout_s:.0f} s')
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
        qos = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        self._subscription = self.node.create_subscription(
            self._msgs[0], NODE_OUTPUT_TOPIC, self._on_output, qos)
        while time.monotonic() < deadline:
            if self.image_pub.get_subscription_count() > 0:
                return reliability.name.lower()
            time.sleep(0.1)
        raise TimeoutError(f'the node did not subscribe to {NODE_INPUT_TOPIC}')

    def _messages(self, frame: np.ndarray) -> Tuple[Any, Any]:
        Image, CameraInfo = self._msgs
        height, width = frame.shape
        image = Image()
        image.header.frame_id = 'benchmark_depth'
        image.height, image.width = height, width
        image.encoding = '16UC1'
        image.is_bigendian = int(sys.byteorder == 'big')
        image.step = width * 2
        image.data = frame.tobytes()  # bytes, not an ndarray: ~300x faster (docs/ros.md)
        info = CameraInfo()
        info.header.frame_id = image.header.frame_id
        info.height, info.width = height, width
        focal = 0.8 * width
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        info.k = [focal, 0.0, (width - 1) / 2.0, 0.0, focal, (height - 1) / 2.0, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [focal, 0.0, (width - 1) / 2.0, 0.0, 0.0, focal, (height - 1) / 2.0, 0.0,
                  0.0, 0.0, 1.0, 0.0]
        return image, info

    def _publish(self, image: Any, info: Any) -> int:
        stamp = time.time_ns()
        for msg in (info, image):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.info_pub.publish(info)
        self.image_pub.publish(image)
        return stamp

    def _wait_for(self, stamp: int, timeout_s: float) -> Optional[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if stamp in self._arrivals:
                    return self._arrivals[stamp]
            self._event.wait(0.05)
            self._event.clear()
        return None

    def run_case(self, case: Case, variant: Variant, frame: np.ndarray,
                 expected_s: float, log_dir: Path) -> List[Dict[str, Any]]:
        """Start a node for ``case``, measure lockstep and flood, stop it; return records."""
        command = node_command(case, variant)
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / (f'node_{case.key}_{variant.label()}.log').replace(' ', '_')
        image, info = self._messages(frame)
        with open(log_path, 'w', encoding='utf-8') as log:
            env = process_env(variant)
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            self._start_spinning()
            try:
                return self._measure(case, variant, process, image, info, expected_s,
                                     log_path)
            finally:
                _stop(process)
                self._stop_spinning()

    def _measure(self, case: Case, variant: Variant, process: subprocess.Popen,
                 image: Any, info: Any, expected_s: float, log_path: Path
                 ) -> List[Dict[str, Any]]:
        started = time.monotonic()
        try:
            reliability = self._subscribe_output(self.startup_timeout_s)
        except TimeoutError as error:
            if process.poll() is not None:
                raise RuntimeError(f'node exited with {process.returncode}; see '
                                   f'{log_path}') from error
            raise
        startup_s = time.monotonic() - started
        per_frame_timeout = 10.0 * expected_s + 10.0
        with self._lock:
            self._arrivals.clear()
        for _ in range(max(self.settings.warmup, 1)):  # first frames build the oneDNN kernels
            if self._wait_for(self._publish(image, info), per_frame_timeout + 20.0) is None:
                raise RuntimeError(f'no output for a warm-up frame; see {log_path}')
        latencies: List[float] = []
        lost = 0
        begin = time.monotonic()
        while len(latencies) < self.settings.frames:
            stamp = self._publish(image, info)
            arrival = self._wait_for(stamp, per_frame_timeout)
            if arrival is None:
                lost += 1
                if lost > 2:
                    break
            else:
                latencies.append((arrival - stamp) / 1e9)
            if len(latencies) >= 2 and time.monotonic() - begin > self.settings.budget_s:
                break
        if not latencies:
            raise RuntimeError(f'the node returned no frames; see {log_path}')
        lockstep = make_record(case, 'node_lockstep', variant, summarize(latencies), None)
        lockstep.update({'lost': lost, 'startup_s': startup_s, 'output_reliability':
                         reliability})
        flood = self._flood(case, variant, image, info, float(np.median(latencies)))
        node_peak = read_peak_rss_mb(process.pid)
        for record in (lockstep, flood):
            record['peak_mem_mb'] = node_peak
            record['mem_kind'] = 'node_process_rss_peak' if case.device.type == 'cpu' \
                else 'node_process_rss_peak (host)'
        return [lockstep, flood]

    def _flood(self, case: Case, variant: Variant, image: Any, info: Any,
               latency_s: float) -> Dict[str, Any]:
        """Publish at twice the lockstep rate (capped) so the node must drop stale frames."""
        rate = min(self.rate_hz, 2.0 / max(latency_s, 1e-3))
        duration = max(self.settings.budget_s, 3.0 * latency_s)
        with self._lock:
            self._arrivals.clear()
        sent: List[int] = []
        begin = time.monotonic()
        next_time = begin
        while time.monotonic() - begin < duration:
            sent.append(self._publish(image, info))
            next_time += 1.0 / rate
            time.sleep(max(0.0, next_time - time.monotonic()))
        self._wait_for(sent[-1], 3.0 * latency_s + 2.0)
        published = set(sent)
        with self._lock:
            arrivals = {stamp: t for stamp, t in self._arrivals.items() if stamp in published}
        received = sorted(arrivals.items(), key=lambda item: item[1])
        latencies = [(arrival - stamp) / 1e9 for stamp, arrival in received]
        if len(received) >= 2:
            span = (received[-1][1] - received[0][1]) / 1e9
            fps = (len(received) - 1) / span if span > 0 else float('nan')
        else:
            fps = len(received) / duration
        stats = summarize(latencies) if latencies else {'frames': 0}
        record = make_record(case, 'node_flood', variant, stats, None)
        record.update({'fps': fps, 'published': len(sent), 'received': len(received),
                       'publish_rate_hz': rate, 'duration_s': duration})
        record['achieved_gflop_s'] = 2 * case.macs / 1e9 * fps
        return record


def _stop(process: subprocess.Popen) -> None:
    """Stop the node we started: SIGINT (clean rclpy shutdown), then SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        process.send_signal(sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
