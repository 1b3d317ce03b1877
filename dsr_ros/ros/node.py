"""ROS 2 node: super-resolve depth images from a camera with DSRNet.

Topics (relative, so namespaces and remaps place the node):

* in  ``depth/image_raw`` (sensor_msgs/Image, 16UC1 / mono16 mm or 32FC1 m),
  ``depth/camera_info`` (sensor_msgs/CameraInfo)
* out ``depth_sr/image_raw``, ``depth_sr/camera_info`` (REP 104, see dsr_ros.camera_info),
  ``depth_sr/points`` (PointCloud2, with ``publish_points``), ``/diagnostics``. camera_info and
  points follow the output image: a remapped image gets them beside it (image_transport and
  depth_image_proc expect the pair in one namespace) unless they are remapped themselves.

Runs on Humble, Jazzy and Kilted (APIs present in all three, or imported with a fallback).

The callbacks only decode, validate and pair; inference runs in a worker thread that takes the
newest frame from a one-element slot, so a model slower than the camera drops (and counts) old
frames instead of building latency. A malformed frame or a failing inference is logged
(throttled) and skipped; the node keeps running. Bad weights at start-up print one error line
and exit with status 1. The parameters and their one check are in
:mod:`dsr_ros.ros.node_parameters`, the model's loading in :mod:`dsr_ros.ros.model_loading`,
input QoS following in :mod:`dsr_ros.ros.qos_follow`, /diagnostics and throttled logs in
:mod:`dsr_ros.ros.diagnostics`.

A frame's walk through the node touches six files (callback -> decode -> resolver -> encode ->
publish):

1. ``ros/frame_inputs.py``: the subscription callbacks; pairing with camera_info, the slot;
2. ``ros/messages.py``: decodes the Image (and, in 6, wraps the outputs in messages);
3. ``ros/node.py``: the worker thread takes the frame and picks its geometry and settings;
4. ``inference.py``: the resolver (its steps: net_input, tiling, ... or frame_pipeline_torch);
5. ``frame_encoding.py``: the output encoded once, returned with its LR validity;
6. ``ros/frame_outputs.py``: publishes the image, its camera_info (computed by camera_info.py)
   and points (pointcloud.py) from the same values and validity (no unit round trip).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, List, Optional

import dsr_ros.openmp_passive  # noqa: F401 - first: OMP_WAIT_POLICY before torch loads
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image

from dsr_ros.cpu_tuning import malloc_tuning_wanted, tune_malloc
from dsr_ros.camera_info import CameraGeometry
from dsr_ros.ros.diagnostics import DiagnosticsReporter, NodeState, ThrottledLog
from dsr_ros.ros.frame_inputs import PAIRING_CAPACITY, FrameInputs, InputFrame
from dsr_ros.ros.frame_outputs import FrameOutputs
from dsr_ros.inference import InferenceStopped
from dsr_ros.memory_budget import FrameTooLarge
from dsr_ros.ros.model_loading import ModelError, load_model
from dsr_ros.ros.node_parameters import (PARAMETERS, RuntimeSettings, changed_settings,
                                         declare_parameters, phase_problem, read_only_problem,
                                         read_settings)
from dsr_ros.ros.pipeline import FlowStats
from dsr_ros.ros.qos_follow import FollowedInputs, incompatible_qos_callbacks
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


class StartupError(RuntimeError):
    """The node cannot start (weights, device, parameter values); already logged."""


class DepthSuperResolutionNode(Node):
    """Subscribe to a depth camera, publish its super-resolved depth, info, points, diagnostics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('dsr_node', **kwargs)
        self._log_throttled = ThrottledLog(self.get_logger(), LOG_THROTTLE_S)
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        try:
            try:
                declare_parameters(self)
                self._settings = read_settings(self)
            except ValueError as error:
                raise StartupError(str(error)) from error
            problem = read_only_problem(self)
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
        self._stats = FlowStats()
        self._intake = FrameInputs(
            self._require_info,
            lambda: self.count_publishers(self._inputs.topic_name('depth/camera_info')),
            self._stats, self._log_throttled)
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
    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _create_topics(self) -> None:
        reliability = self._param('input_reliability')
        sub_events, pub_events = incompatible_qos_callbacks(self, reliability)
        # Standard QoS overrides (qos_overrides.<topic>.<publisher|subscription>.<policy>
        # parameters) on top of the profiles. Each entity gets its own copy of its profile:
        # rclpy writes the overrides into the profile object it is given (and
        # qos_profile_sensor_data is rclpy's global).
        overrides = QoSOverridingOptions.with_default_policies()
        self._outputs = FrameOutputs(
            self, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE), pub_events,
            overrides, self._param('publish_points'), self._log_throttled)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._inputs = FollowedInputs(
            self, (('depth/image_raw', Image, self._intake.on_image, 5),
                   ('depth/camera_info', CameraInfo, self._intake.on_info, PAIRING_CAPACITY)),
            reliability, sub_events, overrides)
        self.create_timer(self._param('diagnostics_period'), self._publish_diagnostics)
        self._inputs.follow()

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        try:
            settings = changed_settings(self._settings, parameters)
        except ValueError as error:  # the same check as at start-up
            return SetParametersResult(successful=False, reason=str(error))
        if settings is None:
            return SetParametersResult(successful=True)
        problem = phase_problem(settings, self._resolver)
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
            item = self._intake.slot.take(timeout=0.25)
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

    def _process(self, frame: InputFrame, info: Optional[CameraInfo],
                 camera: Optional[CameraGeometry]) -> None:
        """One frame: ``info`` is its camera_info message, ``camera`` the geometry read from it
        (and checked) on its way in (:mod:`dsr_ros.ros.frame_inputs`)."""
        settings = self._settings
        geometry = self._frame_geometry(settings, info)
        served = not self._note_geometry(geometry)
        name, dtype = settings.output_dtype(frame.encoding)
        resolved = self._resolver.resolve(
            frame.depth, max_depth=settings.max_depth_in(frame.depth.dtype),
            geometry=geometry if served else None, options=settings.options, dtype=dtype)
        self._outputs.publish(frame, resolved, name, info, camera, geometry)
        stamp = Time.from_msg(frame.header.stamp, clock_type=self.get_clock().clock_type)
        from_stamp = (self.get_clock().now() - stamp).nanoseconds * 1e-9
        self._stats.output(time.monotonic() - frame.received,
                           stamp_latency_s=from_stamp if frame.header.stamp.sec else None)

    def _publish_diagnostics(self) -> None:
        snap = self._stats.snapshot()
        state = NodeState(
            name=self.get_fully_qualified_name(), hardware_id=str(self._resolver.device),
            unpaired_images=self._intake.pairer.evicted_images, scale=self._scale,
            sampling=self._geometry.describe(),
            sampling_served=not self._resolver.geometry_problem(self._geometry),
            precision=self._resolver.precision, weights=self._weights)
        self._diag_pub.publish(
            self._diagnostics.array(snap, state, self.get_clock().now().to_msg()))

    # ------------------------------------------------------------------ shutdown
    def stop_worker(self) -> bool:
        """Stop the inference thread (it ends between two tiles); True once it has ended.

        Must run before rclpy shuts down: the thread uses the publishers, and a thread still
        inside torch at interpreter exit aborts the process ("terminate called without an
        active exception").
        """
        self._stop.set()
        inputs = getattr(self, '_intake', None)
        if inputs is not None:
            inputs.slot.close()
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
