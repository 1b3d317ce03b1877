"""ROS 2 node: super-resolve depth images from a camera with DSRNet.

Topics (relative, so namespaces and remaps place the node):

* in  ``depth/image_raw`` (sensor_msgs/Image, 16UC1 / mono16 mm or 32FC1 m),
  ``depth/camera_info`` (sensor_msgs/CameraInfo)
* out ``depth_sr/image_raw``, ``depth_sr/camera_info`` (REP 104, see dsr_ros.camera_info),
  ``depth_sr/points`` (PointCloud2, with ``publish_points``), ``/diagnostics``. camera_info and
  points follow the output image: a remapped image gets them beside it (image_transport and
  depth_image_proc expect the pair in one namespace) unless they are remapped themselves.

Runs on Humble, Jazzy and Kilted (APIs present in all three, or imported with a fallback).

The subscription callbacks only decode, validate and pair; inference runs in a worker thread
that takes the newest frame from a one-element slot, so a model slower than the camera drops
(and counts) old frames instead of building latency. A malformed frame or a failing inference is
logged (throttled) and skipped; the node keeps running. Bad weights at start-up print one error
line and exit with status 1.

This module wires the parts to topics and the worker thread: the parameters and their one
check are in :mod:`dsr_ros.node_parameters`, the model's loading in :mod:`dsr_ros.model_loading`,
input QoS following in :mod:`dsr_ros.qos_follow`, the /diagnostics message in
:mod:`dsr_ros.diagnostics`.
"""

from __future__ import annotations

import os
import posixpath
import signal
import sys
import threading
import time
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import dsr_ros.openmp_passive  # noqa: F401 - first: OMP_WAIT_POLICY before torch loads
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from dsr_ros.cpu_tuning import malloc_tuning_wanted, tune_malloc
from dsr_ros.camera_info import (CameraGeometry, check_camera_info, effective_intrinsics,
                                 output_camera_info)
from dsr_ros.depth_io import FrameError, convert_depth
from dsr_ros.diagnostics import DiagnosticsReporter, NodeState
from dsr_ros.inference import FrameTooLarge, InferenceStopped
from dsr_ros.messages import (camera_geometry_from_msg, camera_info_msg, depth_from_msg,
                              depth_to_msg, points_to_msg)
from dsr_ros.model_loading import ModelError, load_model
from dsr_ros.node_parameters import (PARAMETERS, RuntimeSettings, changed_settings,
                                     parameters_problem, phase_problem, read_only_values,
                                     read_settings)
from dsr_ros.pipeline import FlowStats, LatestFrameSlot, StampPairer
from dsr_ros.pointcloud import depth_to_points
from dsr_ros.qos_follow import FollowedInputs, incompatible_qos_callbacks
from dsr_ros.sampling_geometry import SamplingGeometry, geometry_for
from dsr_ros.sampling_phase import parse_phase

__all__ = ['DepthSuperResolutionNode', 'PARAMETERS', 'StartupError', 'main']

#: Seconds the worker may take to finish its current tile at shutdown.
WORKER_JOIN_S = 1.5
#: Seconds without a frame after which the heap is given back (a camera pausing, or one large
#: frame); shorter gaps keep it for the next frame, which spares the page faults.
IDLE_RELEASE_S = 2.0
#: Seconds between two log lines about the same kind of problem.
LOG_THROTTLE_S = 5.0
#: Unmatched images / camera_infos kept while waiting for a partner with the same stamp.
PAIRING_CAPACITY = 10
#: Seconds the first images wait for their camera_info (when a camera_info publisher exists and
#: none has arrived yet), so the first output frame has its camera_info too.
FIRST_INFO_WAIT_S = 1.0


class StartupError(RuntimeError):
    """The node cannot start (weights, device, parameter values); already logged."""


@dataclass
class _Frame:
    depth: np.ndarray
    header: Header
    encoding: str
    received: float


class DepthSuperResolutionNode(Node):
    """Subscribe to a depth camera, publish its super-resolved depth, info, points, diagnostics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('dsr_node', **kwargs)
        self._throttle: Dict[str, List[float]] = {}
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        try:
            self._declare_parameters()
            self._settings = read_settings(self)
            problem = parameters_problem(self._settings, read_only_values(self))
            if problem:
                raise StartupError(problem)
            try:
                self._weights, self._resolver = load_model(self, self._settings, self._stop)
            except ModelError as error:
                raise StartupError(str(error)) from error
        except StartupError as error:
            self.get_logger().error(str(error))
            self.destroy_node()
            raise
        self._scale = self._resolver.scale
        self._require_info = self._param('require_camera_info')
        self._geometry_key: Optional[tuple] = None
        self._first_image_at: Optional[float] = None
        self._info_wait_over = False
        self._stats = FlowStats()
        self._slot: LatestFrameSlot = LatestFrameSlot()
        self._pairer = StampPairer(PAIRING_CAPACITY)
        self._reported_unpaired = 0
        self._diagnostics = DiagnosticsReporter()
        self._create_topics()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._note_geometry(self._frame_geometry(self._settings, None))
        self._worker = threading.Thread(target=self._work, name='dsr_inference', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'super-resolving x{self._scale} on {self._resolver.device} '
            f'({self._resolver.precision}: {self._resolver.precision_reason}) with '
            f'{self._weights}'
            + (f' ({self._resolver.ensemble_passes}-pass self-ensemble)'
               if self._resolver.ensemble_passes > 1 else '')
            + '; input reliability '
            f'{self._param("input_reliability")}, camera_info '
            f'{"required" if self._require_info else "optional"}; {self._resolver.frames.line}')

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self) -> None:
        for name, (default, descriptor) in PARAMETERS.items():
            descriptor.name = name
            try:
                self.declare_parameter(name, default, descriptor)
            except ParameterException as error:
                raise StartupError(f'parameter {name!r}: {error}') from error

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _create_topics(self) -> None:
        output_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        reliability = self._param('input_reliability')
        sub_events, pub_events = incompatible_qos_callbacks(self, reliability)
        # Standard QoS overrides (qos_overrides.<topic>.<publisher|subscription>.<policy>
        # parameters) on top of the profiles above. Each entity gets its own copy of its
        # profile: rclpy writes the overrides into the profile object it is given (and
        # qos_profile_sensor_data is rclpy's global).
        overrides = QoSOverridingOptions.with_default_policies()
        self._image_pub = self.create_publisher(Image, 'depth_sr/image_raw', copy(output_qos),
                                                event_callbacks=pub_events,
                                                qos_overriding_options=overrides)
        self._info_pub = self.create_publisher(
            CameraInfo, self._beside_output('depth_sr/camera_info'), copy(output_qos),
            event_callbacks=pub_events, qos_overriding_options=overrides)
        self._points_pub = None
        if self._param('publish_points'):
            self._points_pub = self.create_publisher(
                PointCloud2, self._beside_output('depth_sr/points'), copy(output_qos),
                event_callbacks=pub_events, qos_overriding_options=overrides)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._inputs = FollowedInputs(
            self, (('depth/image_raw', Image, self._on_image, 5),
                   ('depth/camera_info', CameraInfo, self._on_info, PAIRING_CAPACITY)),
            reliability, sub_events, overrides)
        self.create_timer(self._param('diagnostics_period'), self._publish_diagnostics)
        self._inputs.follow()

    def _beside_output(self, topic: str) -> str:
        """``topic`` (a sibling of ``depth_sr/image_raw``) in the namespace the output image
        resolves to, unless ``topic`` itself is remapped: remapping only the image moves its
        camera_info and points with it, as image_transport consumers expect."""
        if self.resolve_topic_name(topic) != self.resolve_topic_name(topic, only_expand=True):
            return topic
        image = self.resolve_topic_name('depth_sr/image_raw')
        return posixpath.join(posixpath.dirname(image), posixpath.basename(topic))

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Image) -> None:
        received = time.monotonic()
        self._stats.input(received)
        try:
            depth = depth_from_msg(msg)
        except FrameError as error:
            self._reject(error)
            return
        frame = _Frame(depth, msg.header, msg.encoding, received)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if self._require_info or self._awaiting_first_info(received):
            pair = self._pairer.add_image(stamp, frame)
            if pair is not None:
                self._submit(*pair)
            self._report_unpaired()
        else:
            self._submit(frame, self._pairer.info_for(stamp))

    def _awaiting_first_info(self, now: float) -> bool:
        """True while no camera_info has arrived, a publisher of one exists and the first
        image came less than FIRST_INFO_WAIT_S ago: the image waits for its camera_info (so
        the first output has one too) instead of going out without."""
        if self._info_wait_over or self._pairer.latest_info is not None:
            return False
        if self._first_image_at is None:
            self._first_image_at = now
        topic = self._inputs.topic_name('depth/camera_info')
        if now - self._first_image_at < FIRST_INFO_WAIT_S and self.count_publishers(topic):
            return True
        self._info_wait_over = True
        return False

    def _on_info(self, msg: CameraInfo) -> None:
        pair = self._pairer.add_info((msg.header.stamp.sec, msg.header.stamp.nanosec), msg)
        if pair is not None:  # an image waited for it (require_camera_info, or the first one)
            self._submit(*pair)

    def _submit(self, frame: _Frame, info: Optional[CameraInfo]) -> None:
        camera = None if info is None else camera_geometry_from_msg(info)
        if camera is not None:
            try:
                check_camera_info(camera, frame.depth.shape[1], frame.depth.shape[0])
            except FrameError as error:
                if self._require_info:
                    self._reject(error)
                    return
                self._log_throttled('camera_info', f'{error}; publishing without camera_info')
                info = camera = None
        if self._slot.put((frame, info, camera)) is not None:
            self._stats.count('dropped')
            dropped = self._stats.counters['dropped']
            self._log_throttled('dropped', f'inference is slower than the input: dropped '
                                           f'{dropped} frame(s) so far, keeping the newest')

    def _reject(self, error: FrameError) -> None:
        self._stats.count('rejected', f'{error.kind}: {error.reason}')
        self._log_throttled(f'frame_{error.kind}', f'skipping frame: {error.reason}')

    def _report_unpaired(self) -> None:
        evicted = self._pairer.evicted_images
        if evicted > self._reported_unpaired:
            self._reported_unpaired = evicted
            self._log_throttled('unpaired', f'{evicted} depth image(s) got no camera_info with '
                                            'the same stamp (require_camera_info is true)')

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        settings = changed_settings(self._settings, parameters)
        if settings is None:
            return SetParametersResult(successful=True)
        problem = parameters_problem(settings) or phase_problem(settings, self._resolver)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        self._settings = settings
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ sampling geometry
    def _frame_geometry(self, settings: RuntimeSettings,
                        info: Optional[CameraInfo]) -> SamplingGeometry:
        """The geometry of a frame: the parameters, then the frame's camera_info."""
        phase = parse_phase(settings.sampling_phase, self._scale)
        binning = None if info is None else (info.binning_x, info.binning_y)
        return geometry_for(settings.sampling, phase, binning)

    def _note_geometry(self, geometry: SamplingGeometry) -> str:
        """Log the geometry when it changes (and at start); return why the model cannot
        serve it, or ''."""
        problem = self._resolver.geometry_problem(geometry)
        self._geometry = geometry  # its source, for /diagnostics, even when the kind is the same
        if geometry.key() != self._geometry_key:
            self._geometry_key = geometry.key()
            self.get_logger().info(f'sampling geometry: {geometry.describe()}')
            if problem:
                self.get_logger().warning(
                    f'{Path(self._weights).name} cannot serve {geometry.kind} input: {problem}; '
                    'its output is published where the net places it')
        return problem

    # ------------------------------------------------------------------ inference thread
    def _work(self) -> None:
        last_frame = time.monotonic()
        while not self._stop.is_set():
            item = self._slot.take(timeout=0.25)
            if item is None:
                if time.monotonic() - last_frame > IDLE_RELEASE_S:
                    self._resolver.memory.release()  # give a large frame's heap back
                continue
            last_frame = time.monotonic()
            try:
                self._process(*item)
            except InferenceStopped:
                return
            except FrameTooLarge as error:
                self._stats.count('rejected', f'too_large: {error}')
                self._log_throttled('frame_memory', f'skipping frame: {error}')
            except Exception as error:  # noqa: BLE001 - one bad frame must not stop the node
                if self._stop.is_set():
                    return  # shutting down: publishers may already be gone
                reason = f'{type(error).__name__}: {error}'
                self._stats.count('failed', reason)
                self._log_throttled('inference', f'inference failed, frame skipped: {reason}',
                                    error=True)

    def _process(self, frame: _Frame, info: Optional[CameraInfo],
                 camera: Optional[CameraGeometry]) -> None:
        """One frame: ``info`` is its camera_info message, ``camera`` the geometry read from it
        (and checked) in :meth:`_submit`."""
        settings, resolver = self._settings, self._resolver
        geometry = self._frame_geometry(settings, info)
        served = not self._note_geometry(geometry)
        unit = 1000.0 if frame.depth.dtype == np.uint16 else 1.0
        resolver.input_normalization = settings.normalization
        resolver.max_value = settings.normalization_range
        resolver.tile_size, resolver.tile_overlap = settings.tile_size, settings.tile_overlap
        resolver.scaling_tile = settings.scaling_tile
        resolver.memory.max_memory_mb = float(settings.max_memory_mb)
        max_depth = settings.max_depth * unit if settings.max_depth > 0 else None
        depth = resolver.run(frame.depth, max_depth=max_depth,
                             geometry=geometry if served else None)
        name = settings.output_encoding or frame.encoding
        depth = convert_depth(depth, '32FC1' if name == '32FC1' else '16UC1')
        self._image_pub.publish(depth_to_msg(depth, frame.header, name))
        if info is not None:
            out = output_camera_info(camera, self._scale,
                                     frame.depth.shape[1], frame.depth.shape[0],
                                     geometry.position(self._scale))
            self._info_pub.publish(camera_info_msg(out, info, frame.header))
            if self._points_pub is not None:
                self._publish_points(depth, effective_intrinsics(out)[0], frame.header)
        stamp = Time.from_msg(frame.header.stamp, clock_type=self.get_clock().clock_type)
        from_stamp = (self.get_clock().now() - stamp).nanoseconds * 1e-9
        self._stats.output(time.monotonic() - frame.received,
                           stamp_latency_s=from_stamp if frame.header.stamp.sec else None)

    def _publish_points(self, depth: np.ndarray, k: np.ndarray, header: Header) -> None:
        """Points from the output depth and the output image's own K (binning, roi applied)."""
        if not (k[0, 0] > 0 and k[1, 1] > 0):
            self._log_throttled('uncalibrated', 'camera_info has no focal length (K is zero: '
                                                'uncalibrated camera); no point cloud')
            return
        self._points_pub.publish(points_to_msg(depth_to_points(depth, k.ravel()), header))

    def _publish_diagnostics(self) -> None:
        snap = self._stats.snapshot()
        state = NodeState(
            name=self.get_fully_qualified_name(), hardware_id=str(self._resolver.device),
            unpaired_images=self._pairer.evicted_images, scale=self._scale,
            sampling=self._geometry.describe(),
            sampling_served=not self._resolver.geometry_problem(self._geometry),
            precision=self._resolver.precision, weights=self._weights)
        self._diag_pub.publish(
            self._diagnostics.array(snap, state, self.get_clock().now().to_msg()))

    # ------------------------------------------------------------------ helpers
    def _log_throttled(self, key: str, message: str, error: bool = False) -> None:
        """Log at most once per LOG_THROTTLE_S per key, saying how many lines were held back."""
        now = time.monotonic()
        last, held = self._throttle.get(key, (-float('inf'), 0))
        if now - last < LOG_THROTTLE_S:
            self._throttle[key] = [last, held + 1]
            return
        self._throttle[key] = [now, 0]
        if held:
            message += f' ({held} similar message(s) suppressed)'
        if error:
            self.get_logger().error(message)
        else:
            self.get_logger().warning(message)

    def stop_worker(self) -> bool:
        """Stop the inference thread (it ends between two tiles); True once it has ended.

        Must run before rclpy shuts down: the thread uses the publishers, and a thread still
        inside torch at interpreter exit aborts the process ("terminate called without an
        active exception").
        """
        self._stop.set()
        slot = getattr(self, '_slot', None)
        if slot is not None:
            slot.close()
        if self._worker is not None:
            self._worker.join(timeout=WORKER_JOIN_S)
            return not self._worker.is_alive()
        return True

    def destroy_node(self) -> None:
        """Stop the inference thread before the publishers it uses go away."""
        self.stop_worker()
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """Console entry point ``dsr_node``: spin until Ctrl-C; exit status 1 if start-up fails."""
    if malloc_tuning_wanted(os.environ.get('DSR_ROS_MALLOC_TUNING', ''),
                            torch.cuda.is_available()):
        # Before any thread allocates: keeps freed activations for the next frame instead of
        # page-faulting them in again (1.2-1.9x per frame on CPU, see dsr_ros.cpu_tuning).
        tune_malloc()
    rclpy.init(args=args)
    node = None
    try:
        node = DepthSuperResolutionNode()
        rclpy.spin(node)
    except StartupError:
        node = None  # logged and destroyed by the node itself
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C under `ros2 launch` signals the node twice (the terminal's SIGINT to the
        # process group, then launch's own): the second must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stuck = node is not None and not node.stop_worker()
        if node is not None and not stuck:
            node.destroy_node()
        rclpy.try_shutdown()
    if stuck:
        # A single op (one tile) outlived WORKER_JOIN_S: leave without running the interpreter's
        # teardown under a live torch thread, which would abort instead of exiting cleanly.
        print(f'[dsr_node] inference did not stop within {WORKER_JOIN_S} s; exiting anyway',
              file=sys.stderr, flush=True)
        os._exit(0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
