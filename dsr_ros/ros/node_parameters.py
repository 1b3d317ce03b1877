"""The node's parameters: their table, the settings read from them, and their one check.

Kept apart from the node so the whole parameter surface (names, defaults, ranges, the words a
refused value gets) reads in one place, and so start-up and a run-time change refuse a value
with the same check and the same one-line reason: building :class:`RuntimeSettings` is that
check, and it builds the frozen :class:`dsr_ros.run_options.RunOptions` the resolver runs each
frame with. config/dsr.yaml lists the same keys (a test checks it). No rclpy node lives here:
functions that need one take it as an argument and only call its parameter API.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, Optional, Tuple

import numpy as np

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException

from dsr_ros.depth_io import OUTPUT_ENCODINGS
from dsr_ros.frame_backend import BACKENDS
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.precision import PRECISIONS
from dsr_ros.run_options import NORMALIZATION_MODES, RunOptions
from dsr_ros.sampling_geometry import SAMPLING_MODES, SamplingGeometry
from dsr_ros.sampling_phase import parse_phase
from dsr_ros.self_ensemble import ENSEMBLE_PASSES
from dsr_ros.weights import DEFAULT_SCALE, MODEL_SIZES

__all__ = ['PARAMETERS', 'RELIABILITIES', 'RuntimeSettings', 'changed_settings',
           'declare_parameters', 'phase_problem', 'read_only_problem', 'read_settings',
           'requested_precision']

RELIABILITIES = ('auto', 'best_effort', 'reliable')


#: RunOptions fields whose node parameter has another name.
_PARAMETER_OF = {'input_normalization': 'normalization', 'max_value': 'normalization_range'}


@dataclass(frozen=True)
class RuntimeSettings:
    """The parameters a frame is run with, checked (building one raises ``ValueError`` with a
    one-line reason naming the parameter) and with the resolver's :attr:`options` built.

    Frozen so the worker thread reads one consistent set per frame while the parameter
    callback swaps in a new object. All but ``keep_samples`` and ``ensemble_passes``
    (read-only) may change while the node runs.
    """

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
    keep_samples: bool = True
    ensemble_passes: int = 1
    #: What the resolver takes per frame (built from the fields above).
    options: RunOptions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.output_encoding not in ('',) + OUTPUT_ENCODINGS:
            raise ValueError(f'output_encoding must be empty or one of {OUTPUT_ENCODINGS}, '
                             f'got {self.output_encoding!r}')
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f'sampling must be one of {SAMPLING_MODES}, got '
                             f'{self.sampling!r}')
        if len(self.sampling_phase) != 2:
            raise ValueError(f'sampling_phase must be [row, col] or [-1, -1], got '
                             f'{list(self.sampling_phase)}')
        object.__setattr__(self, 'sampling_phase', tuple(int(v) for v in self.sampling_phase))
        # The node passes each frame's geometry, so the options carry no sampling_phase.
        try:
            options = RunOptions(
                input_normalization=self.normalization, max_value=self.normalization_range,
                tile_size=self.tile_size, tile_overlap=self.tile_overlap,
                scaling_tile=self.scaling_tile, max_memory_mb=self.max_memory_mb,
                keep_samples=self.keep_samples, ensemble_passes=self.ensemble_passes)
        except ValueError as error:  # named as the parameter, not the option
            reason = str(error)
            for option, parameter in _PARAMETER_OF.items():
                reason = reason.replace(option, parameter)
            raise ValueError(reason) from None
        object.__setattr__(self, 'options', options)

    def max_depth_in(self, dtype: np.dtype) -> Optional[float]:
        """``max_depth`` in the unit of a frame of ``dtype`` (mm for uint16), None if unset."""
        if not self.max_depth > 0:
            return None
        return self.max_depth * (1000.0 if dtype == np.uint16 else 1.0)

    def output_dtype(self, input_encoding: str) -> Tuple[str, np.dtype]:
        """The output image's encoding name and dtype for a frame that came as
        ``input_encoding`` (``output_encoding`` empty: the input's; mono16 stays mono16)."""
        name = self.output_encoding or input_encoding
        return name, np.dtype(np.float32 if name == '32FC1' else np.uint16)


def _descriptor(description: str, *, read_only: bool = False, constraints: str = '',
                int_range: Optional[tuple] = None,
                float_range: Optional[tuple] = None) -> ParameterDescriptor:
    """A descriptor whose ranges ``ros2 param describe`` shows and rclpy enforces."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     additional_constraints=constraints)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1],
                                                 step=1)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
    return descriptor


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


def declare_parameters(node: Any) -> None:
    """Declare every parameter of :data:`PARAMETERS` on ``node`` (raises ValueError naming a
    parameter whose override rclpy refuses)."""
    for name, (default, descriptor) in PARAMETERS.items():
        descriptor.name = name
        try:
            node.declare_parameter(name, default, descriptor)
        except ParameterException as error:
            raise ValueError(f'parameter {name!r}: {error}') from error


def _value(node: Any, name: str) -> Any:
    return node.get_parameter(name).value


def read_settings(node: Any) -> RuntimeSettings:
    """The checked settings from ``node``'s declared parameters (``ValueError`` if refused)."""
    return RuntimeSettings(**{name: _value(node, name) for name in _SETTINGS})


#: The parameters :class:`RuntimeSettings` is built from.
_SETTINGS = tuple(name for name, spec in RuntimeSettings.__dataclass_fields__.items()
                  if spec.init)


def changed_settings(settings: RuntimeSettings,
                     parameters: Iterable[Any]) -> Optional[RuntimeSettings]:
    """``settings`` with the run-time ones among ``parameters`` (rclpy Parameters) applied
    and checked (``ValueError`` if refused), or None when none of them is a setting."""
    changes = {p.name: p.value for p in parameters if p.name in _SETTINGS}
    if not changes:
        return None
    return replace(settings, **changes)


def requested_precision(node: Any) -> str:
    """The precision asked for: ``half`` is a shorthand for fp16 that wins over ``precision``."""
    return 'fp16' if _value(node, 'half') else _value(node, 'precision')


def read_only_problem(node: Any) -> str:
    """Why the read-only string parameters the descriptors cannot restrict are refused, or ''
    (checked once, at start-up; precision already combined with half)."""
    reliability = _value(node, 'input_reliability')
    if reliability not in RELIABILITIES:
        return f'input_reliability must be one of {RELIABILITIES}, got {reliability!r}'
    backend = _value(node, 'backend')
    if backend not in BACKENDS:
        return f'backend must be one of {BACKENDS}, got {backend!r}'
    precision = requested_precision(node)
    if precision not in PRECISIONS:
        return f'precision must be one of {PRECISIONS}, got {precision!r}'
    return ''


def phase_problem(settings: RuntimeSettings, resolver: DepthSuperResolver) -> str:
    """Why a set ``sampling_phase`` cannot be served by this model, or ''."""
    try:
        phase = parse_phase(settings.sampling_phase, resolver.scale)
    except ValueError as error:
        return str(error)
    if phase is None:
        return ''
    return resolver.geometry_problem(SamplingGeometry('decimated', phase))
