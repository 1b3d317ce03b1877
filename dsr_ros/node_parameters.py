"""The node's parameters: their table, the settings read from them, and their one check.

Kept apart from the node so the whole parameter surface (names, defaults, ranges, the words a
refused value gets) reads in one place, and so start-up and a run-time change refuse a value
with the same check and the same one-line reason. config/dsr.yaml lists the same keys (a test
checks it). No rclpy node lives here: functions that need one take it as an argument and only
call its parameter API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Iterable, Mapping, Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from dsr_ros.depth_io import OUTPUT_ENCODINGS
from dsr_ros.frame_backend import BACKENDS
from dsr_ros.inference import NORMALIZATION_MODES, DepthSuperResolver
from dsr_ros.precision import PRECISIONS
from dsr_ros.sampling_geometry import SAMPLING_MODES, SamplingGeometry
from dsr_ros.sampling_phase import parse_phase
from dsr_ros.self_ensemble import ENSEMBLE_PASSES, check_passes
from dsr_ros.weights import DEFAULT_SCALE, MODEL_SIZES

__all__ = ['PARAMETERS', 'RELIABILITIES', 'RuntimeSettings', 'changed_settings',
           'parameters_problem', 'phase_problem', 'read_only_values', 'read_settings',
           'requested_precision']

RELIABILITIES = ('auto', 'best_effort', 'reliable')


@dataclass(frozen=True)
class RuntimeSettings:
    """Parameters that may change while the node runs (applied to the next frame).

    Frozen so the worker thread reads one consistent set per frame while the parameter
    callback swaps in a new object.
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


def _value(node: Any, name: str) -> Any:
    return node.get_parameter(name).value


def read_settings(node: Any) -> RuntimeSettings:
    """The run-time settings from ``node``'s declared parameters."""
    values = {name: _value(node, name) for name in RuntimeSettings.__dataclass_fields__}
    values['sampling_phase'] = tuple(int(v) for v in values['sampling_phase'])
    return RuntimeSettings(**values)


def changed_settings(settings: RuntimeSettings,
                     parameters: Iterable[Any]) -> Optional[RuntimeSettings]:
    """``settings`` with the run-time ones among ``parameters`` (rclpy Parameters) applied,
    or None when none of them is a run-time setting (nothing to check or apply)."""
    changes = {p.name: p.value for p in parameters
               if p.name in RuntimeSettings.__dataclass_fields__}
    if not changes:
        return None
    if 'sampling_phase' in changes:
        changes['sampling_phase'] = tuple(int(v) for v in changes['sampling_phase'])
    return replace(settings, **changes)


def requested_precision(node: Any) -> str:
    """The precision asked for: ``half`` is a shorthand for fp16 that wins over ``precision``."""
    return 'fp16' if _value(node, 'half') else _value(node, 'precision')


def read_only_values(node: Any) -> Dict[str, Any]:
    """The read-only parameters :func:`parameters_problem` checks at start-up (the descriptors
    cannot say which strings and ints are allowed), precision already combined with half."""
    return {'input_reliability': _value(node, 'input_reliability'),
            'backend': _value(node, 'backend'),
            'precision': requested_precision(node),
            'ensemble_passes': _value(node, 'ensemble_passes')}


def parameters_problem(settings: RuntimeSettings,
                       read_only: Optional[Mapping[str, Any]] = None) -> str:
    """Why these parameter values cannot be used, or '' (one line, naming the parameter).

    The one check of the values themselves, for start-up and for run-time changes alike.
    Start-up passes ``read_only`` (:func:`read_only_values`) too; a run-time change passes
    only ``settings``, as read-only parameters cannot change. What depends on the device or
    the model (fp16 on a CPU, a phase the model cannot serve) is checked once they are known.
    """
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
    if read_only is None:
        return ''
    reliability = read_only['input_reliability']
    if reliability not in RELIABILITIES:
        return f'input_reliability must be one of {RELIABILITIES}, got {reliability!r}'
    if read_only['backend'] not in BACKENDS:
        return f'backend must be one of {BACKENDS}, got {read_only["backend"]!r}'
    if read_only['precision'] not in PRECISIONS:
        return f'precision must be one of {PRECISIONS}, got {read_only["precision"]!r}'
    try:
        check_passes(read_only['ensemble_passes'])
    except ValueError as error:
        return str(error)
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
