"""End-to-end demo: a synthetic depth camera -> dsr_node (separate process) -> metrics and a PNG.

``dsr_demo`` (or ``python -m dsr_ros.ros.demo``) renders a procedural scene (dsr_ros.scene),
publishes its LR depth and camera_info at camera rate through real ROS 2 publishers, starts
``dsr_node`` as its own process with the ``--ros-args`` line a launch file would produce, receives
the super-resolved output, and prints frames in/out, drops, latency and the error of the SR
output and of plain bicubic upsampling against the HR truth. Without ``--weights`` and without a
shipped model it runs an UNTRAINED network and says so: the numbers then show the pipeline works,
not that the method does.

DDS stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE defaults to LOCALHOST and, when
ROS_DOMAIN_ID is unset, a random domain is used.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from dsr_ros.baselines import upsample_bicubic_masked
from dsr_ros.checkpoint import CheckpointError, read_checkpoint
from dsr_ros.depth_io import to_metres, valid_mask
from dsr_ros.depth_metrics import depth_errors_mm
from dsr_ros.ros.ros_args import default_params_file, node_command
from dsr_ros.scene import DepthScene, SceneConfig
from dsr_ros.weights import DEFAULT_WEIGHTS_NAME, default_weights_path

__all__ = ['main', 'stop_node_process']

NAMESPACE = 'dsr_demo'
#: Width/depth of the random network used when no trained model is available: small, so the
#: demo stays real-time on a 2-core CPU.
UNTRAINED_ARCH = {'num_channels': 4, 'num_blocks': 1}


@dataclass
class _Run:
    sent: Dict[int, float] = field(default_factory=dict)       # frame index -> publish time
    received: Dict[int, object] = field(default_factory=dict)  # frame index -> SR Image
    latency_s: Dict[int, float] = field(default_factory=dict)
    diagnostics: Dict[str, str] = field(default_factory=dict)
    got_info: int = 0


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='dsr_demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', type=Path, default=None,
                        help='DSRNet checkpoint; default: the shipped model, else an UNTRAINED '
                             'random network')
    parser.add_argument('--out', type=Path, default=Path('out/demo'),
                        help='directory for demo.png and node.log (default: out/demo)')
    parser.add_argument('--width', type=int, default=160, help='LR width (default 160)')
    parser.add_argument('--height', type=int, default=120, help='LR height (default 120)')
    parser.add_argument('--frames', type=int, default=20, help='frames to publish (20)')
    parser.add_argument('--rate', type=float, default=10.0, help='camera rate in Hz (10)')
    parser.add_argument('--encoding', choices=('16UC1', '32FC1'), default='16UC1',
                        help='input encoding: 16UC1 mm or 32FC1 m (default 16UC1)')
    parser.add_argument('--device', default='auto', help='node device: auto|cpu|cuda|cuda:N')
    parser.add_argument('--seed', type=int, default=0, help='scene noise/holes seed')
    parser.add_argument('--timeout', type=float, default=45.0,
                        help='seconds to wait for the node to start (default 45)')
    args = parser.parse_args(argv)
    if args.frames < 1 or args.rate <= 0:
        parser.error('--frames must be >= 1 and --rate > 0')
    return args


def _weights(args: argparse.Namespace, workdir: Path) -> tuple:
    """(checkpoint path, description); writes a random-weight checkpoint if none exists."""
    if args.weights is not None:
        return args.weights, str(args.weights)
    shipped = default_weights_path()
    if shipped is not None:
        return shipped, f'{shipped} (shipped default)'
    import torch

    from dsr_ros.checkpoint import save_checkpoint
    from dsr_ros.networks import DSRNet
    torch.manual_seed(args.seed)
    path = save_checkpoint(workdir / 'untrained_x4.pt', DSRNet(scale=4, **UNTRAINED_ARCH),
                           normalization={'mode': 'minmax', 'max_value': 1.0, 'unit': 'm'},
                           provenance={'note': 'dsr_demo: random weights, never trained'})
    print('WARNING: no --weights given and no trained model is shipped '
          f'(dsr_ros/weights/{DEFAULT_WEIGHTS_NAME}): running an UNTRAINED network with random '
          'weights.\n         Its SR numbers show the pipeline runs, not that the method works.',
          flush=True)
    return path, 'UNTRAINED random network ' + str(UNTRAINED_ARCH)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns 0 when SR frames came back, 1 otherwise."""
    args = _parse(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='dsr_demo_') as workdir:
        weights, weights_text = _weights(args, Path(workdir))
        try:
            scale = int(read_checkpoint(weights)['scale'])
        except CheckpointError as error:
            print(f'error: {error}', file=sys.stderr)
            return 1
        scene = DepthScene(SceneConfig(lr_width=args.width, lr_height=args.height,
                                       scale=scale, encoding=args.encoding,
                                       rate_hz=args.rate, seed=args.seed))
        frames = [scene.frame(index) for index in range(args.frames)]
        hr_width, hr_height = scene.config.hr_size
        print(f'dsr_ros demo: {args.width}x{args.height} -> {hr_width}x{hr_height} (x{scale}), '
              f'{args.encoding}, {args.frames} frames at {args.rate:g} Hz; weights: '
              f'{weights_text}; DDS domain {os.environ["ROS_DOMAIN_ID"]} '
              f'({os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]})', flush=True)
        run = _run_ros(args, scene, frames, weights)
    if run is None:
        return 1
    _report(args, scene, frames, run, scale)
    return 0 if run.received else 1


def _run_ros(args: argparse.Namespace, scene: DepthScene, frames: list,
             weights: Path) -> Optional[_Run]:
    """Publish the frames through dsr_node and collect what comes back."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from dsr_ros.ros.messages import depth_to_msg

    camera = f'/{NAMESPACE}/camera'
    argv = node_command(namespace=NAMESPACE, params_file=default_params_file(), parameters={
        'weights_path': str(weights), 'device': args.device, 'require_camera_info': True,
        'diagnostics_period': 0.5},
        remaps={'depth/image_raw': f'{camera}/depth/image_raw',
                'depth/camera_info': f'{camera}/depth/camera_info'})
    log_path = args.out / 'node.log'
    run = _Run()
    rclpy.init()
    node = rclpy.create_node('dsr_demo_camera')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, f'{camera}/depth/image_raw', reliable)
    info_pub = node.create_publisher(CameraInfo, f'{camera}/depth/camera_info', reliable)

    def on_image(msg: Image) -> None:
        index = msg.header.stamp.sec - 1_000
        run.received[index] = msg
        run.latency_s[index] = time.monotonic() - run.sent.get(index, float('nan'))

    def on_info(msg: CameraInfo) -> None:
        run.got_info += 1

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f'/{NAMESPACE}/dsr_node:'):
                run.diagnostics = {kv.key: kv.value for kv in status.values}

    sr_sub = node.create_subscription(Image, f'/{NAMESPACE}/depth_sr/image_raw', on_image,
                                      reliable)
    node.create_subscription(CameraInfo, f'/{NAMESPACE}/depth_sr/camera_info', on_info,
                             reliable)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + args.timeout
            while not (image_pub.get_subscription_count() and info_pub.get_subscription_count()
                       and sr_sub.get_publisher_count()):
                executor.spin_once(timeout_sec=0.05)
                if process.poll() is not None or time.monotonic() > deadline:
                    print(f'error: dsr_node did not come up (exit status {process.poll()}); '
                          f'its log ({log_path}):', file=sys.stderr)
                    print(log_path.read_text(errors='replace')[-2000:], file=sys.stderr)
                    return None
            start = time.monotonic()
            for frame in frames:
                due = start + frame.index / args.rate
                while time.monotonic() < due:
                    executor.spin_once(timeout_sec=max(0.0, due - time.monotonic()))
                header = Header(frame_id='camera_depth_optical_frame')
                header.stamp.sec, header.stamp.nanosec = 1_000 + frame.index, 0
                info_pub.publish(_camera_info(header, scene))
                run.sent[frame.index] = time.monotonic()
                image_pub.publish(depth_to_msg(frame.lr, header))
            # The newest frame always comes out (latest-frame slot) unless DDS lost it.
            last = frames[-1].index
            quiet_until = time.monotonic() + 3.0
            while last not in run.received and time.monotonic() < quiet_until:
                before = len(run.received)
                executor.spin_once(timeout_sec=0.1)
                if len(run.received) > before:
                    quiet_until = time.monotonic() + 3.0
            end = time.monotonic() + 0.6  # one more diagnostics period for the final counts
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
        finally:
            stop_node_process(process)
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    return run


def stop_node_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGINT a node process started by a demo (its clean shutdown), SIGKILL it if it has
    not exited within ``timeout`` seconds, and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _camera_info(header, scene: DepthScene):
    from sensor_msgs.msg import CameraInfo
    k = scene.k_lr
    info = CameraInfo(header=header, width=scene.config.lr_width,
                      height=scene.config.lr_height, distortion_model='plumb_bob')
    info.d = [0.0] * 5
    info.k = k.ravel().tolist()
    info.r = np.eye(3).ravel().tolist()
    info.p = np.hstack([k, np.zeros((3, 1))]).ravel().tolist()
    return info


def _report(args: argparse.Namespace, scene: DepthScene, frames: list, run: _Run,
            scale: int) -> None:
    from dsr_ros.ros.messages import depth_from_msg
    indices = sorted(run.received)
    sr = [to_metres(depth_from_msg(run.received[i])) for i in indices]
    bicubic = [upsample_bicubic_masked(to_metres(frames[i].lr), scale) for i in indices]
    truth = [frames[i].hr_metres for i in indices]
    masks = [valid_mask(s) & valid_mask(b) & valid_mask(t) for s, b, t in zip(sr, bicubic, truth)]
    sr_metrics = depth_errors_mm(sr, truth, masks)
    bicubic_metrics = depth_errors_mm(bicubic, truth, masks)
    latencies = [run.latency_s[i] for i in indices]
    dropped = run.diagnostics.get('dropped_frames', 'n/a')
    median_ms = f'{np.median(latencies) * 1e3:.1f} ms' if latencies else 'n/a'
    rows = [('frames in (published)', str(len(run.sent))),
            ('frames out (received)', str(len(indices))),
            ('dropped by the node', str(dropped)),
            ('lost otherwise', str(len(run.sent) - len(indices) - _int(dropped))),
            ('camera_info out', str(run.got_info)),
            ('median latency (publish -> SR received)', median_ms)]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f'{name:<{width}}  {value}')
    print()
    print(f'{"error vs HR truth":<22}{"MAD [mm]":>10}{"RMSE [mm]":>11}   over valid pixels')
    for name, metrics in (('bicubic (OpenCV)', bicubic_metrics), ('SR (dsr_node)', sr_metrics)):
        print(f'{name:<22}{metrics.mad_mm:>10.2f}{metrics.rmse_mm:>11.2f}   '
              f'{metrics.pixels} px')
    if indices:
        png = _figure(args.out / 'demo.png', frames[indices[-1]], bicubic[-1], sr[-1],
                      truth[-1], scale)
        print(f'\nwrote {png} (frame {indices[-1]}) and {args.out / "node.log"}')


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _figure(path: Path, frame, bicubic: np.ndarray, sr: np.ndarray, truth: np.ndarray,
            scale: int) -> Path:
    """LR | bicubic | SR | truth | |SR - truth|, one colour scale for all depth panels."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    lr = to_metres(frame.lr)
    low, high = float(np.nanmin(truth)), float(np.nanmax(truth))
    error_mm = np.abs(sr - truth) * 1000.0
    finite_error = error_mm[np.isfinite(error_mm)]
    error_top = float(np.percentile(finite_error, 99)) if finite_error.size else 1.0
    panels = [(f'LR input {lr.shape[1]}x{lr.shape[0]}', lr, 'turbo', low, high),
              (f'bicubic x{scale}', bicubic, 'turbo', low, high),
              (f'SR x{scale} (dsr_node)', sr, 'turbo', low, high),
              (f'HR truth {truth.shape[1]}x{truth.shape[0]}', truth, 'turbo', low, high),
              ('|SR - truth| [mm]', error_mm, 'magma', 0.0, max(error_top, 1e-3))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for axis, (title, image, cmap, vmin, vmax) in zip(axes, panels):
        shown = axis.imshow(np.ma.masked_invalid(image), cmap=cmap, vmin=vmin, vmax=vmax,
                            interpolation='nearest')
        axis.set_title(title)
        axis.set_axis_off()
        fig.colorbar(shown, ax=axis, fraction=0.046, pad=0.02,
                     label='mm' if cmap == 'magma' else 'm')
    fig.suptitle('dsr_ros demo (invalid pixels blank)')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


if __name__ == '__main__':
    sys.exit(main())
