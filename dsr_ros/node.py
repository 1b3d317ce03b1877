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
"""

from __future__ import annotations

import os
import posixpath
import signal
import sys
import threading
import time
from copy import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import dsr_ros.openmp_passive  # noqa: F401 - first: OMP_WAIT_POLICY before torch loads
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time
from rclpy.qos import QoSPolicyKind, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from dsr_ros.checkpoint import CheckpointError
from dsr_ros.cpu_tuning import malloc_tuning_wanted, tune_malloc
from dsr_ros.camera_info import check_camera_info, effective_intrinsics, output_camera_info
from dsr_ros.depth_io import OUTPUT_ENCODINGS, FrameError, convert_depth
from dsr_ros.frame_backend import BACKENDS
from dsr_ros.inference import (NORMALIZATION_MODES, DepthSuperResolver, FrameTooLarge,
                               InferenceStopped, resolve_device)
from dsr_ros.messages import (camera_geometry_from_msg, camera_info_msg, depth_from_msg,
                              depth_to_msg, points_to_msg)
from dsr_ros.model_selection import choose_model
from dsr_ros.pipeline import FlowStats, LatestFrameSlot, StampPairer
from dsr_ros.pointcloud import depth_to_points
from dsr_ros.precision import PRECISIONS, PrecisionError, check_precision
from dsr_ros.sampling_geometry import SAMPLING_MODES, SamplingGeometry, geometry_for
from dsr_ros.sampling_phase import parse_phase
from dsr_ros.self_ensemble import ENSEMBLE_PASSES, check_passes
from dsr_ros.weights import DEFAULT_SCALE, MODEL_SIZES, shipped_models, shipped_weights

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

__all__ = ['DepthSuperResolutionNode', 'StartupError', 'main']

RELIABILITIES = ('auto', 'best_effort', 'reliable')
#: Seconds between two looks at the graph for input_reliability auto.
RELIABILITY_CHECK_S = 1.0
#: Longest string value in /diagnostics (a hostile encoding name can be 100,000 characters).
DIAGNOSTIC_VALUE_CHARS = 256
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


@dataclass(frozen=True)
class RuntimeSettings:
    """Parameters that may change while the node runs (applied to the next frame)."""

    output_encoding: str
    max_depth: float
    normalization: str
    normalization_range: float
    tile_size: int
    tile_overlap: int
    scaling_tile: int
    max_memory_mb: int
    sampling: str
    sampling_phase: tuple


@dataclass
class _Frame:
    depth: np.ndarray
    header: Header
    encoding: str
    received: float


def _descriptor(description: str, *, read_only: bool = False, constraints: str = '',
                int_range: Optional[tuple] = None,
                float_range: Optional[tuple] = None) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     additional_constraints=constraints)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1],
                                                 step=1)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
    return descriptor


def _matching_reliability(publishers: List[Any]) -> str:
    """``reliable`` when there are publishers and all offer reliable delivery, else
    ``best_effort`` (which also receives from reliable publishers)."""
    if publishers and all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                          for info in publishers):
        return 'reliable'
    return 'best_effort'


def _truncated(value: Any, limit: int = DIAGNOSTIC_VALUE_CHARS) -> str:
    """A diagnostics value of at most ``limit`` characters, saying how much was cut."""
    text = str(value)
    if len(text) <= limit:
        return text
    note = f'... ({len(text)} characters)'
    return text[:limit - len(note)] + note


#: name -> (default, descriptor). config/dsr.yaml lists the same keys (a test checks it).
PARAMETERS: Dict[str, tuple] = {
    'weights_path': ('', _descriptor(
        'DSRNet checkpoint (.pt). Empty: the shipped sensor model chosen by model and scale.',
        read_only=True)),
    'model': ('auto', _descriptor(
        'Shipped model when weights_path is empty: tiny (real time on CPUs), lite, paper (GPU), '
        'or auto: the largest that keeps up with expected_rate_hz, timed at start-up.',
        read_only=True, constraints='auto | ' + ' | '.join(MODEL_SIZES))),
    'scale': (DEFAULT_SCALE, _descriptor(
        'Upscale factor of the shipped model when weights_path is empty (2, 4 or 8).',
        read_only=True, int_range=(2, 16))),
    'expected_rate_hz': (15.0, _descriptor(
        'Camera frame rate model auto must keep up with.', read_only=True,
        float_range=(0.0, 1000.0))),
    'expected_input_width': (160, _descriptor(
        'Input width model auto times the candidates at.', read_only=True,
        int_range=(8, 8192))),
    'expected_input_height': (120, _descriptor(
        'Input height model auto times the candidates at.', read_only=True,
        int_range=(8, 8192))),
    'device': ('auto', _descriptor(
        'Torch device; auto picks CUDA when available.', read_only=True,
        constraints='auto | cpu | cuda | cuda:N')),
    'half': (False, _descriptor(
        'Shorthand for precision fp16 (CUDA only; on CPU a warning is logged and fp32 used).',
        read_only=True)),
    'precision': ('auto', _descriptor(
        'Inference precision. auto: fp16 on CUDA, bf16 on CPUs with native bf16 (AMX or '
        'AVX512-BF16), each when measured at least 1.2x faster than fp32 at start-up, else '
        'fp32. fp16 needs CUDA; bf16 on a CPU without '
        'native bf16 is refused. The residual and the output stay fp32.',
        read_only=True, constraints=' | '.join(PRECISIONS))),
    'backend': ('torch', _descriptor(
        'What runs the net on CUDA, inside the torch frame pipeline (every step of a frame on '
        'the GPU): torch (CUDA graphs per frame shape), tensorrt (an engine built from the '
        'ONNX export for the camera\'s shape, cached on disk; falls back to torch with one '
        'line when TensorRT is missing or the build fails) or auto (tensorrt where it '
        'imports). On a CPU frames run the numpy pipeline with the torch net.',
        read_only=True, constraints=' | '.join(BACKENDS))),
    'channels_last': (True, _descriptor(
        'NHWC memory format (about 2x faster convolutions on x86 CPUs).', read_only=True)),
    'torch_threads': (0, _descriptor(
        'Torch intra-op CPU threads; 0 keeps the torch default.', read_only=True,
        int_range=(0, 256))),
    'input_reliability': ('auto', _descriptor(
        'QoS reliability of the input subscriptions. auto matches the publishers found in the '
        'graph (reliable when all of them are, re-checked every second), so large frames from '
        'a reliable driver are not lost; best_effort (sensor data QoS) receives from both kinds '
        'of publishers but may lose large frames; reliable receives nothing from a best-effort '
        'publisher.', read_only=True, constraints=' | '.join(RELIABILITIES))),
    'output_encoding': ('', _descriptor(
        'Encoding of depth_sr/image_raw: empty = same as the input, 16UC1 (mm, 0 invalid) or '
        '32FC1 (m, NaN invalid).', constraints="'' | 16UC1 | 32FC1")),
    'max_depth': (0.0, _descriptor(
        'Depth beyond this (metres) is treated as invalid; 0 = no limit.',
        float_range=(0.0, 1000.0))),
    'normalization': ('checkpoint', _descriptor(
        'How depth is mapped to the net\'s input: checkpoint (the scaling the model was trained '
        'with, recorded in the checkpoint), range (robust per-frame 1-99 percentiles), minmax '
        '(per-frame min-max) or fixed (metres / normalization_range).',
        constraints=' | '.join(NORMALIZATION_MODES))),
    'normalization_range': (10.0, _descriptor(
        'Depth (metres) that maps to 1.0 with normalization fixed.',
        float_range=(0.001, 1000.0))),
    'tile_size': (0, _descriptor(
        'Largest low-resolution tile edge; 0 = as large as max_memory_mb allows. Tiles smaller '
        'than about 6x tile_overlap are rounded up (they would cost several times the work).',
        int_range=(0, 8192))),
    'tile_overlap': (8, _descriptor(
        'Low-resolution pixels shared by neighbouring tiles; tile_size must exceed twice this.',
        int_range=(0, 4096))),
    'scaling_tile': (-1, _descriptor(
        'Low-resolution tile edge over which a range scaling is fitted (tiles blended, no '
        'seams): -1 = the checkpoint\'s choice (32 for the shipped sensor models, as they were '
        'trained on patches), 0 = the whole frame (about 1.35x less work); must exceed twice '
        'tile_overlap.', int_range=(-1, 8192))),
    'sampling': ('auto', _descriptor(
        'Where each low-resolution sample sits. auto: from the camera_info (binning > 1: '
        'decimated, the top-left pixel of each block as image_proc keeps it; binning 0/1: a '
        'native camera whose footprint is centred on its pixel; no camera_info yet: native); '
        'native or decimated force one. The output is moved to the samples\' true positions '
        'and its camera_info says so. Logged at start and whenever it changes.',
        constraints=' | '.join(SAMPLING_MODES))),
    'sampling_phase': ([-1, -1], _descriptor(
        'Override: the input is decimated, each low-resolution pixel sampled at [row, col] '
        'within its block (e.g. [0, 0] for image_proc crop_decimate); [-1, -1] = not set '
        '(sampling decides).')),
    'keep_samples': (True, _descriptor(
        'With a known sampling_phase, write each valid low-resolution pixel back at the '
        'high-resolution pixel it was sampled from: it is the camera\'s own measurement there '
        '(a net smooths a structured-light frame\'s quantised terraces). Ignored when the '
        'phase is unknown.', read_only=True)),
    'ensemble_passes': (1, _descriptor(
        'Forward passes per frame over flipped copies of the input, averaged (self-ensemble): '
        '1 = off, 2, 4 or 8 = that many times the work for a lower error (docs/evaluation.md, '
        '"Self-ensemble": best on area-averaging ToF cameras and with a known sampling_phase; '
        'with an unknown phase it costs decimated frames accuracy).', read_only=True,
        constraints=' | '.join(str(n) for n in ENSEMBLE_PASSES))),
    'max_memory_mb': (1024, _descriptor(
        'Peak resident memory (MiB) the node stays under: frames are processed in tiles sized '
        'for it, and frames that cannot fit are refused (counted as rejected); 0 = no limit.',
        int_range=(0, 1 << 20))),
    'require_camera_info': (False, _descriptor(
        'Process only images with a depth/camera_info of exactly the same stamp. When false, '
        'images are processed at once and paired with the newest camera_info if any.',
        read_only=True)),
    'publish_points': (False, _descriptor(
        'Also publish depth_sr/points (PointCloud2 xyz) from the SR depth and scaled '
        'intrinsics.', read_only=True)),
    'diagnostics_period': (1.0, _descriptor(
        'Seconds between two /diagnostics messages.', read_only=True,
        float_range=(0.05, 60.0))),
}


class DepthSuperResolutionNode(Node):
    """Subscribe to a depth camera, publish its super-resolved depth, info, points, diagnostics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('dsr_node', **kwargs)
        self._throttle: Dict[str, List[float]] = {}
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        try:
            self._declare_parameters()
            self._settings = self._read_settings()
            problem = self._settings_problem(self._settings)
            if problem:
                raise StartupError(problem)
            self._resolver = self._load_model()
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
        self._last_counters: Dict[str, int] = {}
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

    def _read_settings(self) -> RuntimeSettings:
        values = {name: self._param(name) for name in RuntimeSettings.__dataclass_fields__}
        values['sampling_phase'] = tuple(int(v) for v in values['sampling_phase'])
        return RuntimeSettings(**values)

    @staticmethod
    def _settings_problem(settings: RuntimeSettings) -> str:
        """Why ``settings`` cannot be used, or '' (shared by start-up and run-time changes)."""
        if settings.output_encoding not in ('',) + OUTPUT_ENCODINGS:
            return (f'output_encoding must be empty or one of {OUTPUT_ENCODINGS}, got '
                    f'{settings.output_encoding!r}')
        if settings.normalization not in NORMALIZATION_MODES:
            return (f'normalization must be one of {NORMALIZATION_MODES}, got '
                    f'{settings.normalization!r}')
        if settings.tile_size and settings.tile_size <= 2 * settings.tile_overlap:
            return (f'tile_size {settings.tile_size} must be 0 or more than twice tile_overlap '
                    f'{settings.tile_overlap}')
        if settings.scaling_tile > 0 and settings.scaling_tile <= 2 * settings.tile_overlap:
            return (f'scaling_tile {settings.scaling_tile} must be -1, 0 or more than twice '
                    f'tile_overlap {settings.tile_overlap}')
        if settings.sampling not in SAMPLING_MODES:
            return f'sampling must be one of {SAMPLING_MODES}, got {settings.sampling!r}'
        if len(settings.sampling_phase) != 2:
            return (f'sampling_phase must be [row, col] or [-1, -1], got '
                    f'{list(settings.sampling_phase)}')
        return ''

    def _load_model(self) -> DepthSuperResolver:
        reliability = self._param('input_reliability')
        if reliability not in RELIABILITIES:
            raise StartupError(f'input_reliability must be one of {RELIABILITIES}, got '
                               f'{reliability!r}')
        if self._param('backend') not in BACKENDS:
            raise StartupError(f'backend must be one of {BACKENDS}, got '
                               f'{self._param("backend")!r}')
        precision = 'fp16' if self._param('half') else self._param('precision')
        if precision not in PRECISIONS:
            raise StartupError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        try:
            device = resolve_device(self._param('device'))
        except ValueError as error:
            raise StartupError(str(error)) from error
        if precision == 'fp16' and device.type != 'cuda':
            self.get_logger().warning(f'fp16 (half) needs CUDA but the device is {device}; '
                                      'running in fp32')
            precision = 'fp32'
        try:
            check_precision(precision, device)
        except PrecisionError as error:
            raise StartupError(str(error)) from error
        try:
            ensemble_passes = check_passes(self._param('ensemble_passes'))
        except ValueError as error:
            raise StartupError(str(error)) from error
        threads = self._param('torch_threads')
        if threads > 0:
            torch.set_num_threads(threads)
        settings = self._settings

        def build(path: Path) -> DepthSuperResolver:
            try:
                resolver = DepthSuperResolver.from_checkpoint(
                    path, device=str(device), precision=precision,
                    input_normalization=settings.normalization,
                    tile_size=settings.tile_size, tile_overlap=settings.tile_overlap,
                    scaling_tile=settings.scaling_tile, channels_last=self._param('channels_last'),
                    keep_samples=self._param('keep_samples'), ensemble_passes=ensemble_passes,
                    backend=self._param('backend'),
                    max_memory_mb=settings.max_memory_mb, stop_event=self._stop)
                if not resolver.input_scaling().accepts('m'):
                    raise ValueError(f'its scaling ({resolver.input_scaling().describe()}) '
                                     'cannot take depth in metres; set normalization to '
                                     'range, minmax or fixed')
            except CheckpointError as error:
                raise StartupError(str(error)) from error
            except (RuntimeError, ValueError) as error:
                raise StartupError(f'cannot use checkpoint {str(path)!r} on {device} '
                                   f'({precision}): {error}') from error
            if not resolver.metadata.get('weights_verified', True):
                self.get_logger().warning(
                    f'{path} stores no weights SHA-256 (an older checkpoint): corruption '
                    'cannot be detected; re-save it to add one')
            return resolver

        path, resolver = self._select_model(build)
        self._weights = str(path)
        problem = self._phase_problem(self._settings, resolver)
        if problem:
            raise StartupError(f'cannot use checkpoint {str(path)!r}: {problem}')
        return resolver

    @staticmethod
    def _phase_problem(settings: RuntimeSettings, resolver: DepthSuperResolver) -> str:
        """Why a set ``sampling_phase`` cannot be served by this model, or ''."""
        try:
            phase = parse_phase(settings.sampling_phase, resolver.scale)
        except ValueError as error:
            return str(error)
        if phase is None:
            return ''
        return resolver.geometry_problem(SamplingGeometry('decimated', phase))

    def _select_model(self, build) -> tuple:
        """``weights_path`` if set, else the shipped model named by ``model`` and ``scale``.

        ``model: auto`` times the shipped sensor models of that scale on a frame of the
        expected size and keeps the largest that keeps up with ``expected_rate_hz``
        (:mod:`dsr_ros.model_selection`); the measurement is logged.
        """
        weights = self._param('weights_path')
        if weights:
            path = Path(weights).expanduser()
            return path, build(path)
        size, scale = self._param('model'), self._param('scale')
        if size != 'auto':
            try:
                path = shipped_weights(size, scale)
            except ValueError as error:
                raise StartupError(str(error)) from error
            return path, build(path)
        candidates = shipped_models().get(scale, {})
        if not candidates:
            raise StartupError(f'no model: weights_path is empty and no sensor model is shipped '
                               f'for x{scale} (shipped scales: {sorted(shipped_models())}); '
                               'set weights_path to a DSRNet checkpoint')
        shape = (self._param('expected_input_height'), self._param('expected_input_width'))
        rate = self._param('expected_rate_hz')
        choice, resolver = choose_model(candidates, build, shape, rate)
        log = self.get_logger().info if choice.keeps_up else self.get_logger().warning
        log(choice.describe(rate) + f' at {shape[1]}x{shape[0]} input')
        return choice.path, resolver

    def _create_topics(self) -> None:
        output_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        sub_events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_sub)
        pub_events = PublisherEventCallbacks(incompatible_qos=self._on_incompatible_pub)
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
        self._inputs: Dict[str, Any] = {}
        self._input_reliability: Dict[str, str] = {}
        self._pinned_inputs: set = set()
        self._subscribe_inputs(sub_events, overrides)
        self.create_timer(self._param('diagnostics_period'), self._publish_diagnostics)
        if self._param('input_reliability') == 'auto':
            self.create_timer(RELIABILITY_CHECK_S,
                              lambda: self._subscribe_inputs(sub_events, overrides))

    def _subscribe_inputs(self, sub_events: SubscriptionEventCallbacks,
                          overrides: QoSOverridingOptions) -> None:
        """(Re-)create the input subscriptions whose reliability should change.

        With ``input_reliability: auto`` each input follows its publishers, as rosbag2 and RViz
        do: reliable when every publisher found in the graph is reliable (a best-effort
        subscription drops fragments of large frames under load, and lost frames never reach
        the node, so they cannot even be counted), best effort otherwise or when there is none.

        Standard QoS overrides are read when a subscription is first created; a user override
        of an input's reliability pins it (auto leaves that input alone). Re-created
        subscriptions take no overrides: rclpy would re-apply the first creation's value.
        """
        wanted = self._param('input_reliability')
        for topic, msg_type, callback, depth in (
                ('depth/image_raw', Image, self._on_image, 5),
                ('depth/camera_info', CameraInfo, self._on_info, PAIRING_CAPACITY)):
            current = self._inputs.get(topic)
            if topic in self._pinned_inputs:
                continue
            reliability = wanted
            if wanted == 'auto':
                name = current.topic_name if current is not None else self.resolve_topic_name(
                    topic)
                reliability = _matching_reliability(self.get_publishers_info_by_topic(name))
            if current is not None and reliability == self._input_reliability[topic]:
                continue
            if current is not None:
                self.destroy_subscription(current)
            qos = QoSProfile(depth=depth, reliability=(
                ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                else qos_profile_sensor_data.reliability))
            requested = qos.reliability
            self._inputs[topic] = self.create_subscription(
                msg_type, topic, callback, qos, event_callbacks=sub_events,
                **({'qos_overriding_options': overrides} if current is None else {}))
            self._input_reliability[topic] = reliability
            if wanted == 'auto' and current is None and qos.reliability != requested:
                # rclpy wrote a user's qos_overrides value into ``qos``: it wins over auto.
                self._pinned_inputs.add(topic)
                self.get_logger().info(
                    f'input_reliability auto: {self._inputs[topic].topic_name} pinned to '
                    f'{qos.reliability.name.lower()} by its qos_overrides parameter')
                continue
            if wanted == 'auto':
                self.get_logger().info(
                    f'input_reliability auto: subscribing to {self._inputs[topic].topic_name} '
                    f'{reliability.replace("_", "-")} '
                    f'({"matching its publishers" if current is None else "publishers changed"})')

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
        topic = self._inputs['depth/camera_info'].topic_name
        if now - self._first_image_at < FIRST_INFO_WAIT_S and self.count_publishers(topic):
            return True
        self._info_wait_over = True
        return False

    def _on_info(self, msg: CameraInfo) -> None:
        pair = self._pairer.add_info((msg.header.stamp.sec, msg.header.stamp.nanosec), msg)
        if pair is not None:  # an image waited for it (require_camera_info, or the first one)
            self._submit(*pair)

    def _submit(self, frame: _Frame, info: Optional[CameraInfo]) -> None:
        if info is not None:
            try:
                check_camera_info(camera_geometry_from_msg(info), frame.depth.shape[1],
                                  frame.depth.shape[0])
            except FrameError as error:
                if self._require_info:
                    self._reject(error)
                    return
                self._log_throttled('camera_info', f'{error}; publishing without camera_info')
                info = None
        if self._slot.put((frame, info)) is not None:
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

    def _on_incompatible_sub(self, event: Any) -> None:
        self._log_incompatible('subscription', event)

    def _on_incompatible_pub(self, event: Any) -> None:
        self._log_incompatible('publisher', event)

    def _log_incompatible(self, side: str, event: Any) -> None:
        try:
            policy = QoSPolicyKind(event.last_policy_kind).name
        except ValueError:
            policy = str(event.last_policy_kind)
        if (side == 'subscription' and policy == 'RELIABILITY'
                and self._param('input_reliability') == 'auto'):
            return  # a best-effort publisher appeared: the next graph check switches (logged)
        hint = (' (input_reliability is reliable but the publisher is best effort?)'
                if side == 'subscription' and policy == 'RELIABILITY' else '')
        self.get_logger().warning(f'incompatible QoS on a {side}: policy {policy}, '
                                  f'{event.total_count} time(s){hint}')

    def _on_set_parameters(self, parameters: List[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters
                   if p.name in RuntimeSettings.__dataclass_fields__}
        if not changes:
            return SetParametersResult(successful=True)
        if 'sampling_phase' in changes:
            changes['sampling_phase'] = tuple(int(v) for v in changes['sampling_phase'])
        settings = replace(self._settings, **changes)
        problem = (self._settings_problem(settings)
                   or self._phase_problem(settings, self._resolver))
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

    def _process(self, frame: _Frame, info: Optional[CameraInfo]) -> None:
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
            out = output_camera_info(camera_geometry_from_msg(info), self._scale,
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

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        snap = self._stats.snapshot()
        new = {name: snap[name] - self._last_counters.get(name, 0)
               for name in ('dropped', 'rejected', 'failed')}
        self._last_counters = {name: snap[name] for name in new}
        status = DiagnosticStatus(
            name=f'{self.get_fully_qualified_name()}: depth super-resolution',
            hardware_id=str(self._resolver.device))
        if new['failed']:
            status.level, status.message = DiagnosticStatus.ERROR, 'inference failing'
        elif new['rejected']:
            status.level, status.message = DiagnosticStatus.WARN, 'malformed frames rejected'
        elif new['dropped']:
            status.level, status.message = DiagnosticStatus.WARN, 'dropping frames (too slow)'
        elif snap['input_rate_hz'] == 0:
            status.level, status.message = DiagnosticStatus.WARN, 'no input'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'ok'

        def milliseconds(seconds: float) -> str:
            return 'nan' if seconds != seconds else f'{seconds * 1e3:.1f}'

        values = {
            'input_rate_hz': f'{snap["input_rate_hz"]:.2f}',
            'output_rate_hz': f'{snap["output_rate_hz"]:.2f}',
            # From receipt by the node to publication (the node's own cost) ...
            'median_latency_ms': milliseconds(snap['median_latency_s']),
            # ... and from the image's header stamp (capture) on the node's clock: includes
            # the driver and the transport; meaningless if the camera's clock is not synced.
            'median_latency_from_stamp_ms': milliseconds(snap['median_stamp_latency_s']),
            'frames_received': snap['received'],
            'frames_published': snap['published'],
            'dropped_frames': snap['dropped'],
            'rejected_frames': snap['rejected'],
            'failed_frames': snap['failed'],
            'unpaired_images': self._pairer.evicted_images,
            'last_error': snap['last_error'],
            'scale': self._scale,
            'sampling': self._geometry.describe(),
            'sampling_served': str(not self._resolver.geometry_problem(self._geometry)),
            'precision': self._resolver.precision,
            'weights': self._weights,
        }
        status.values = [KeyValue(key=key, value=_truncated(value))
                         for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

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
