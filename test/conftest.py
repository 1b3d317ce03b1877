"""Shared test helpers: DDS isolation, a tiny checkpoint, node processes, a ROS probe node.

DDS here must stay on loopback and away from other test runs: every process this session starts
inherits ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a random ``ROS_DOMAIN_ID`` chosen once
per session (set before anything initialises rclpy). Node processes are started with the same
``--ros-args`` line launch_ros would produce (:func:`dsr_ros.ros.ros_args.node_command`) and are
always stopped, first with SIGINT, then SIGKILL.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))

REPO = Path(__file__).resolve().parents[1]


def _training_dependencies_problem() -> str:
    """Why training/ cannot be imported here ('' if it can). On a robot, ``colcon test`` sees
    only the runtime and test dependencies of package.xml; training/ needs requirements.txt."""
    try:
        import training.data.readers  # noqa: F401
        import training.evaluation.paper  # noqa: F401
        import training.train  # noqa: F401
    except ModuleNotFoundError as error:
        return f'training/ needs {error.name!r} (pip install -r requirements.txt)'
    return ''


TRAINING_PROBLEM = _training_dependencies_problem()
#: Test modules of training/ are not collected where its dependencies are missing (see
#: pytest_report_header), instead of failing the whole `colcon test` at collection.
collect_ignore = sorted(
    path.name for path in Path(__file__).parent.glob('test_*.py')
    if TRAINING_PROBLEM and ('from training' in path.read_text()
                             or 'import training' in path.read_text()))


def pytest_report_header(config: Any) -> List[str]:
    """The ROS distribution under test, and the training tests left out (with the reason)."""
    from importlib import metadata
    try:
        lines = [f'rclpy {metadata.version("ros-rclpy")}']
    except metadata.PackageNotFoundError:
        lines = ['rclpy: not from PyPI wheels (a ROS installation) or absent']
    if collect_ignore:
        lines.append(f'not collected: {", ".join(collect_ignore)}: {TRAINING_PROBLEM}')
    return lines


CONFIG = REPO / 'config' / 'dsr.yaml'
#: Upper bound for any single wait on DDS traffic (the machine is small and shared).
DDS_TIMEOUT = 45.0


def unique_name(prefix: str) -> str:
    """A ROS-name-safe unique token, so parallel sessions never share topics."""
    return f'{prefix}_{uuid.uuid4().hex[:8]}'


def wait_until(predicate: Callable[[], Any], timeout: float = DDS_TIMEOUT,
               interval: float = 0.05, what: str = 'condition') -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}')
        time.sleep(interval)


def publish_until_answered(image_pub: Any, image: Any, info_pub: Any, info: Any,
                           inboxes: List[Any], what: str) -> None:
    """Publish camera_info then the image once a second until every inbox holds a message with
    the image's stamp: the first publications may go out before discovery has matched."""
    stamp = image.header.stamp

    def answered() -> bool:
        if all(inbox.with_stamp(stamp) for inbox in inboxes):
            return True
        info_pub.publish(info)
        image_pub.publish(image)
        return False

    wait_until(answered, interval=1.0, what=what)


# ---------------------------------------------------------------------- checkpoints
def write_checkpoint(path: Path, scale: int = 4, num_channels: int = 4, num_blocks: int = 1,
                     seed: int = 0) -> Path:
    """A random-weight DSRNet checkpoint (tests check plumbing, not quality)."""
    import torch

    from dsr_ros.checkpoint import save_checkpoint
    from dsr_ros.networks import DSRNet
    torch.manual_seed(seed)
    model = DSRNet(scale=scale, num_channels=num_channels, num_blocks=num_blocks)
    return save_checkpoint(path, model, provenance={'note': 'random weights for tests'})


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DSRNet(scale=4, num_channels=4, num_blocks=1) with random weights."""
    return write_checkpoint(tmp_path_factory.mktemp('weights') / 'tiny_x4.pt')


# ---------------------------------------------------------------------- colcon workspace
#: What a workspace copy of the checkout leaves out (venvs, build outputs, caches).
WORKSPACE_IGNORED = ('.venv', '.venv-*', '.git', 'build', 'install', 'log', 'out', 'runs',
                     '__pycache__', '*.egg-info', '.pytest_cache')


def copy_to_workspace(root: Path) -> Path:
    """``root/src/dsr_ros``: the sources copied (not linked), so builds never touch the
    checkout."""
    target = root / 'src' / 'dsr_ros'
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(*WORKSPACE_IGNORED))
    return target


@pytest.fixture(scope='session')
def colcon_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with dsr_ros built by this venv's colcon (``install/setup.sh`` to source)."""
    colcon = Path(sys.executable).parent / 'colcon'
    if not colcon.exists():
        pytest.skip(f'colcon is not installed next to {sys.executable}')
    root = tmp_path_factory.mktemp('colcon_ws')
    copy_to_workspace(root)
    result = subprocess.run([str(colcon), 'build', '--base-paths', 'src'], cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


# ---------------------------------------------------------------------- node processes
class NodeProcess:
    """A ``dsr_node`` child process whose combined stdout/stderr goes to a log file."""

    def __init__(self, argv: List[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, 'wb')
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=REPO, env=dict(os.environ))

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def wait_for_log(self, text: str, timeout: float = DDS_TIMEOUT) -> None:
        wait_until(lambda: text in self.log(), timeout, 0.1, f'{text!r} in the node log')

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGINT (clean shutdown), then SIGKILL if it does not exit; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


def start_node(log_path: Path, *, namespace: str = '', params_file: Optional[Path] = CONFIG,
               parameters: Optional[Dict[str, Any]] = None,
               remaps: Optional[Dict[str, str]] = None,
               executable: Optional[List[str]] = None) -> NodeProcess:
    """Start dsr_node as launch_ros would (see dsr_ros.ros.ros_args.node_command)."""
    from dsr_ros.ros.ros_args import node_command
    argv = node_command(executable or [sys.executable, '-m', 'dsr_ros.ros.node'], name='dsr_node',
                        namespace=namespace, params_file=params_file, parameters=parameters,
                        remaps=remaps)
    return NodeProcess(argv, log_path)


@pytest.fixture
def node_processes():
    """Collects NodeProcess objects and stops every one of them after the test."""
    started: List[NodeProcess] = []
    yield started
    for process in started:
        process.stop()


# ---------------------------------------------------------------------- ROS probe
class Inbox:
    """Messages received on one topic, with waiting helpers."""

    def __init__(self) -> None:
        self.messages: List[Any] = []
        self.times: List[float] = []  # time.monotonic() at receipt, one per message
        self._lock = threading.Lock()

    def add(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)
            self.times.append(time.monotonic())

    def snapshot(self) -> List[Any]:
        with self._lock:
            return list(self.messages)

    def find(self, predicate: Callable[[Any], bool]) -> Optional[Any]:
        for msg in reversed(self.snapshot()):
            if predicate(msg):
                return msg
        return None

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = DDS_TIMEOUT,
                 what: str = 'a message') -> Any:
        return wait_until(lambda: self.find(predicate), timeout, 0.02, what)

    def with_stamp(self, stamp: Any) -> Optional[Any]:
        return self.find(lambda msg: msg.header.stamp == stamp)


class RosProbe:
    """An rclpy node in its own context, spun by a background thread, for publishing and
    receiving in tests."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(unique_name('dsr_test_probe'), context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.inboxes: Dict[str, Inbox] = defaultdict(Inbox)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down while spinning
                if self.context.ok():
                    raise

    def subscribe(self, msg_type: type, topic: str, reliable: bool = True,
                  depth: int = 100) -> Inbox:
        """Collect messages on ``topic``; returns the Inbox (one per topic)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=depth, reliability=(ReliabilityPolicy.RELIABLE if reliable
                                                   else ReliabilityPolicy.BEST_EFFORT))
        inbox = self.inboxes[topic]
        subscription = self.node.create_subscription(msg_type, topic, inbox.add, qos)
        inbox.subscription = subscription
        return inbox

    def publisher(self, msg_type: type, topic: str, reliable: bool = True, depth: int = 10):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=depth, reliability=(ReliabilityPolicy.RELIABLE if reliable
                                                   else ReliabilityPolicy.BEST_EFFORT))
        return self.node.create_publisher(msg_type, topic, qos)

    def close(self) -> None:
        import rclpy
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope='session')
def ros_probe():
    """One probe node for the whole session (DDS participants are expensive here)."""
    probe = RosProbe()
    yield probe
    probe.close()


# ---------------------------------------------------------------------- test frames
def make_depth(encoding: str, height: int = 16, width: int = 24, seed: int = 0) -> np.ndarray:
    """A random room (:func:`dsr_ros.scene.random_room`) with a 2x3 hole at rows 4-5, cols 6-8
    and one at (0, 0): fixed holes, unlike sensor_frame_mm's random blobs, so that even the
    smallest test frame has some and tests can name where they are."""
    from dsr_ros.scene import random_room
    metres = random_room(np.random.default_rng(seed), width, height)
    metres[4:6, 6:9] = np.nan
    metres[0, 0] = np.nan
    if encoding == '32FC1':
        return metres
    return np.where(np.isnan(metres), 0, np.rint(metres * 1000)).astype(np.uint16)


def camera_info_msg(header: Any, width: int, height: int) -> Any:
    """A plausible calibrated CameraInfo for a width x height image."""
    from sensor_msgs.msg import CameraInfo
    info = CameraInfo()
    info.header = header
    info.width, info.height = width, height
    fx, fy, cx, cy = 20.0, 21.0, (width - 1) / 2 + 0.3, (height - 1) / 2 - 0.2
    info.distortion_model = 'plumb_bob'
    info.d = [0.01, -0.02, 0.0, 0.0, 0.0]
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, -1.5, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def header(stamp_index: int, frame_id: str = 'camera_depth_optical_frame') -> Any:
    """A header with a unique, exactly comparable stamp."""
    from std_msgs.msg import Header
    msg = Header(frame_id=frame_id)
    msg.stamp.sec = 1_000 + stamp_index
    msg.stamp.nanosec = 123_456_789
    return msg


def image_msg(depth: np.ndarray, msg_header: Any, *, bigendian: bool = False, pad: int = 0,
              encoding: Optional[str] = None) -> Any:
    """An Image built by hand (independently of depth_io) with optional byte order / padding."""
    from sensor_msgs.msg import Image
    order = '>' if bigendian else '<'
    typed = depth.astype(depth.dtype.newbyteorder(order))
    rows = typed.view(np.uint8).reshape(depth.shape[0], -1)
    if pad:
        rows = np.hstack([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)])
    msg = Image()
    msg.header = msg_header
    msg.height, msg.width = depth.shape
    msg.encoding = encoding or ('16UC1' if depth.dtype == np.uint16 else '32FC1')
    msg.is_bigendian = int(bigendian)
    msg.step = rows.shape[1]
    msg.data = np.ascontiguousarray(rows).tobytes()
    return msg
