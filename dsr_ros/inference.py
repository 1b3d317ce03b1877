"""Depth super-resolution on numpy arrays: the algorithm the node calls, without any ROS.

``DepthSuperResolver.run`` takes one depth frame, either ``uint16`` millimetres (0 = invalid,
the raw ``16UC1`` convention) or ``float32`` metres (NaN/inf/<=0 = invalid, ``32FC1``), and returns
the super-resolved frame in the same dtype and convention. Invalid pixels are filled from their
nearest valid neighbour before the net (so holes do not drag valid depth towards zero) and are
invalid again in the output (nearest-neighbour upsampled mask), so they never bleed into valid
depth. Frames of any size work (replicate padding, cropped back); large frames can be processed
in overlapping tiles blended with linear ramps so that a memory budget holds without seams.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy import ndimage

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_scaling import Affine, DepthScaling
from dsr_ros.frame_backend import configure_frames
from dsr_ros.memory_budget import FrameTooLarge, MemoryBudget
from dsr_ros.networks import DSRNet
from dsr_ros.precision import PRECISIONS, autocast_dtype, choose_precision
from dsr_ros.sampling_geometry import SamplingGeometry
from dsr_ros.sampling_phase import (checkpoint_alignment, checkpoint_native_alignment,
                                    keep_samples, move_output, parse_phase)
from dsr_ros.self_ensemble import average_over_flips, check_passes

__all__ = ['DepthSuperResolver', 'FrameTooLarge', 'InferenceStopped', 'fill_invalid',
           'make_net_input', 'prepare_net_input', 'resolve_device', 'valid_mask']

LOGGER = logging.getLogger(__name__)
#: ``checkpoint``: the scaling the net was trained with (the default); ``range``: robust
#: per-frame percentiles (1-99); ``minmax``: per-frame min-max; ``fixed``: metres / max_value.
NORMALIZATION_MODES = ('checkpoint', 'range', 'minmax', 'fixed')
#: Smallest depth a valid output pixel may hold, in metres: a valid pixel is never <= 0.
MIN_VALID_DEPTH_M = 0.001


class InferenceStopped(RuntimeError):
    """Raised between tiles when the resolver's ``stop_event`` is set (the node shuts down)."""


def resolve_device(device: str = 'auto') -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a torch device, refusing CUDA when there is none."""
    name = (device or 'auto').strip().lower()
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cpu':
        return torch.device('cpu')
    if name == 'cuda' or name.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available '
                             '(use device "auto" or "cpu")')
        parsed = torch.device(name)
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: only {torch.cuda.device_count()} CUDA '
                             'device(s) present')
        return parsed
    raise ValueError(f'unknown device {device!r}: expected auto, cpu, cuda or cuda:N')


def fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels by their nearest valid neighbour (values must have >= 1 valid)."""
    if valid.all():
        return values
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return values[rows, cols]


def make_net_input(normalised: np.ndarray, valid: np.ndarray, in_channels: int) -> np.ndarray:
    """The net's ``(C, h, w)`` input from hole-filled normalised depth and its validity mask.

    One definition for training patches, evaluation and the node: channel 0 is the depth,
    channel 1 (for ``in_channels == 2``) the mask as 1.0 (measured) / 0.0 (filled hole).
    """
    depth = np.asarray(normalised, dtype=np.float32)
    if in_channels == 1:
        return depth[None]
    if in_channels != 2:
        raise ValueError(f'DSRNet input has 1 or 2 channels, got {in_channels!r}')
    return np.stack([depth, np.asarray(valid, dtype=np.float32)])


def prepare_net_input(depth: np.ndarray, valid: np.ndarray, scaling: DepthScaling,
                      in_channels: int, unit: str = 'm') -> Tuple[np.ndarray, Affine]:
    """LR depth with holes -> the net's ``(C, h, w)`` input and the map back to ``unit``.

    The one path from a depth frame to the net, shared by the node (:meth:`DepthSuperResolver.
    run`), training patches and evaluation: the scaling is fitted on the valid pixels only,
    holes are filled from their nearest valid neighbour, and the mask rides along for
    mask-aware nets.
    """
    affine = scaling.fit(depth[valid], unit)
    return make_net_input(affine.forward(_fill_holes(depth, valid)), valid, in_channels), affine


def _fill_holes(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 depth with each invalid pixel (NaN, 0, anything) set to its nearest valid one."""
    return fill_invalid(np.where(valid, depth, 0.0).astype(np.float32), valid)


class DepthSuperResolver:
    """Run a DSRNet on single depth frames.

    Args:
        model: a DSRNet (put in eval mode and moved to ``device``).
        normalization: how the net was trained to see depth, as stored in checkpoints
            (``DepthScaling.to_dict()``; older ``minmax`` / ``fixed`` entries are understood).
            ``None`` means per-frame min-max, what the first models were trained with.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16`` (see :mod:`dsr_ros.precision`:
            reduced precision is autocast, the residual and the output stay fp32; bf16 on a CPU
            without native bf16 and fp16 off CUDA raise ``PrecisionError``).
        input_normalization: ``checkpoint`` (the training scaling, the default), ``range``
            (robust per-frame percentiles), ``minmax`` (per-frame min-max) or ``fixed``
            (metres / ``max_value``); see :mod:`dsr_ros.depth_scaling`.
        max_value: the divisor of ``fixed``, in metres.
        tile_size: LR tile edge in pixels; 0 = whole frame, or as large as ``max_memory_mb``
            allows. Tiles are never smaller than ``memory_budget.min_tile(tile_overlap)``.
        tile_overlap: LR pixels shared by neighbouring tiles (blended with linear ramps).
        scaling_tile: LR tile edge a ``range`` scaling is fitted over, tiles blended in metres
            (-1: the checkpoint scaling's ``fit_tile``; 0: the whole frame).
        channels_last: use the NHWC memory format (about 2x faster convolutions on x86 CPUs).
        pad_multiple: pad the LR frame to a multiple of this (replicate), crop the output back.
        max_memory_mb: peak resident memory of the process to stay under (tiles are sized for
            it, frames that cannot fit raise :class:`FrameTooLarge`); 0 = no limit.
        stop_event: when set, a running frame ends between two tiles with
            :class:`InferenceStopped`; CPU tiles are then kept short (see memory_budget).
        sampling_phase: ``(row, col)`` at which the LR frames were point-sampled (e.g. ``(0, 0)``
            for ``image_proc`` decimation), or ``None`` / ``(-1, -1)`` when not known; when
            known, the output is moved to it (:mod:`dsr_ros.sampling_phase`).
        point_alignment: the net's own sample alignment (default: the checkpoint's
            ``sampling.point_alignment``); a known ``sampling_phase`` needs it.
        native_alignment: where the net places a native (centred-footprint) sample, in HR
            pixels within the block (default: the checkpoint's ``sampling.native_alignment``;
            None = centred, no move).
        keep_samples: with a known ``sampling_phase``, write each valid LR pixel back at its
            HR position (it is the camera's own measurement there); ignored when unknown.
        ensemble_passes: 1, or 2 / 4 / 8 forward passes over flipped copies of the input,
            averaged (:mod:`dsr_ros.self_ensemble`; that many times the work).
        backend: ``torch``, ``tensorrt`` or ``auto``: what runs the net inside the torch frame
            pipeline (:mod:`dsr_ros.frame_backend`; TensorRT falls back to torch with one line).
        frame_pipeline: ``numpy``, ``torch`` (every step of a frame on the device) or ``auto``
            (torch on CUDA, numpy elsewhere).
        cuda_graphs: on CUDA with the torch net, replay each whole frame of the torch
            pipeline from one CUDA graph per frame shape and settings.
    """

    def __init__(self, model: DSRNet, normalization: Optional[Dict[str, Any]] = None, *,
                 device: str = 'auto', precision: str = 'fp32',
                 input_normalization: str = 'checkpoint', max_value: float = 10.0,
                 tile_size: int = 0, tile_overlap: int = 8, channels_last: bool = True,
                 pad_multiple: int = 8, max_memory_mb: float = 0.0,
                 stop_event: Optional[threading.Event] = None,
                 scaling_tile: int = -1, sampling_phase: Optional[Sequence[int]] = None,
                 point_alignment: Optional[Sequence[int]] = None,
                 keep_samples: bool = True, ensemble_passes: int = 1,
                 native_alignment: Optional[Sequence[float]] = None, backend: str = 'torch',
                 frame_pipeline: str = 'auto', cuda_graphs: bool = True) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        if input_normalization not in NORMALIZATION_MODES:
            raise ValueError(f'input_normalization must be one of {NORMALIZATION_MODES}, '
                             f'got {input_normalization!r}')
        if tile_size < 0 or tile_overlap < 0 or (tile_size and tile_overlap * 2 >= tile_size):
            raise ValueError(f'tile_size {tile_size} must be 0 or more than twice tile_overlap '
                             f'{tile_overlap}')
        if not (math.isfinite(max_value) and max_value > 0):
            raise ValueError(f'max_value must be positive, got {max_value!r}')
        if scaling_tile > 0 and scaling_tile <= 2 * tile_overlap:
            raise ValueError(f'scaling_tile {scaling_tile} must be -1, 0 or more than twice '
                             f'tile_overlap {tile_overlap}')
        self.device = resolve_device(device)
        #: How the net was trained to see depth (the checkpoint's ``normalization``).
        self.scaling = DepthScaling.from_dict(normalization)
        self.input_normalization = input_normalization
        self.max_value = float(max_value)
        self.tile_size = int(tile_size)
        self.tile_overlap = int(tile_overlap)
        #: LR tile edge a ``range`` scaling is fitted over: -1 = the scaling's ``fit_tile``
        #: (the checkpoint's choice), 0 = the whole frame.
        self.scaling_tile = int(scaling_tile)
        self.pad_multiple = max(1, int(pad_multiple))
        self.channels_last = bool(channels_last)
        self.model = model.eval().to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        choice = choose_precision(precision, self.device, self.model,
                                  channels_last=self.channels_last)
        #: The precision in use (``auto`` resolved) and why it was chosen.
        self.precision, self.precision_reason = choice.precision, choice.reason
        self.scale = int(model.scale)
        self.in_channels = int(getattr(model, 'in_channels', 1))
        #: Known point-sampling phase of the input (None: unknown, the output is not moved).
        self.sampling_phase = parse_phase(sampling_phase, self.scale)
        self.point_alignment = parse_phase(point_alignment, self.scale, 'point_alignment')
        if self.sampling_phase is not None and self.point_alignment is None:
            raise ValueError('a known sampling_phase needs the net\'s point alignment, and this '
                             'checkpoint records none: measure it with tools/calibrate_phase.py '
                             'or leave sampling_phase unknown ([-1, -1])')
        #: Where the net places a native sample (None: centred, the output is not moved).
        self.native_alignment = (None if native_alignment is None else
                                 (float(native_alignment[0]), float(native_alignment[1])))
        #: With a known phase, put the LR samples back at their HR positions.
        self.keep_samples = bool(keep_samples)
        #: Forward passes per frame over flipped copies of the input (1: no self-ensemble).
        self.ensemble_passes = check_passes(ensemble_passes)
        self.stop_event = stop_event
        self.memory = MemoryBudget(max_memory_mb, stop_latency=stop_event is not None)
        #: Checkpoint metadata when built by :meth:`from_checkpoint`.
        self.metadata: Dict[str, Any] = {}
        #: How frames run (numpy or torch pipeline; torch, CUDA graphs or TensorRT for the
        #: net); ``frames.line`` says so for the log.
        self.frames = configure_frames(self, frame_pipeline, backend, cuda_graphs)

    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike], **kwargs: Any
                        ) -> 'DepthSuperResolver':
        """Load a checkpoint (see :mod:`dsr_ros.checkpoint`) and wrap it."""
        model, metadata = load_checkpoint(path)
        kwargs.setdefault('point_alignment', checkpoint_alignment(metadata))
        kwargs.setdefault('native_alignment', checkpoint_native_alignment(metadata))
        resolver = cls(model, metadata.get('normalization'), **kwargs)
        resolver.metadata = metadata
        return resolver

    # ------------------------------------------------------------------ public API
    def run(self, depth: np.ndarray, max_depth: Optional[float] = None,
            geometry: Optional[SamplingGeometry] = None) -> np.ndarray:
        """Super-resolve one frame; returns ``(H*s, W*s)`` in the input's dtype and unit.

        ``max_depth`` (in the input's unit) marks farther pixels invalid, like a sensor's range.
        An invalid input pixel makes its ``s x s`` output block invalid and a valid one never
        gives an invalid or non-positive output: validity passes through unchanged.
        ``geometry``: where each LR sample sits (:mod:`dsr_ros.sampling_geometry`); the output
        is moved so the sample lands at ``s * u + geometry.position(s)``. None: decimated at
        ``sampling_phase`` when that is known, else the output as the net places it.
        """
        if self.frames.pipeline == 'torch':
            try:
                return self.frames.run(depth, max_depth, geometry)
            except (FrameTooLarge, InferenceStopped, ValueError):
                raise
            except Exception as error:  # noqa: BLE001 - a device path must not stop frames
                self.frames = self.frames.numpy_fallback(error)
                LOGGER.error(self.frames.line)
        depth, geometry = self.accept_frame(depth, geometry)
        valid = valid_mask(depth)
        if max_depth is not None and max_depth > 0:
            valid &= depth <= max_depth
        height, width = depth.shape
        out_shape = (height * self.scale, width * self.scale)
        if not valid.any():
            return self._invalid_output(depth.dtype, out_shape)
        metres = depth.astype(np.float32)
        if depth.dtype == np.uint16:
            metres /= np.float32(1000.0)
        scaling = self.input_scaling()
        tile = self.fit_tile()
        alignment = self.point_alignment if geometry is not None and geometry.decimated else None
        if tile and (height > tile or width > tile):
            result = self._run_locally_scaled(metres, valid, scaling, tile, alignment)
        else:
            net_in, affine = prepare_net_input(metres, valid, scaling, self.in_channels)
            result = affine.inverse(self._super_resolve(net_in, alignment))
        if geometry is not None:
            result = move_output(result, *self.output_move(geometry))
            if geometry.decimated and self.keep_samples:
                result = keep_samples(result, metres, valid, geometry.phase)
        return self._encode(result, valid, depth.dtype)

    def accept_frame(self, depth: np.ndarray, geometry: Optional[SamplingGeometry]
                     ) -> Tuple[np.ndarray, Optional[SamplingGeometry]]:
        """The host-side checks every frame pipeline (numpy or torch) starts with: a non-empty
        2-D uint16 or float frame that fits the memory budget, and the geometry it is run in
        (``geometry``, or what ``sampling_phase`` implies)."""
        depth = np.asarray(depth)
        if depth.ndim != 2 or depth.shape[0] < 1 or depth.shape[1] < 1:
            raise ValueError(f'expected a non-empty 2-D depth image, got shape {depth.shape}')
        if depth.dtype not in (np.uint16, np.float32, np.float64):
            raise ValueError(f'expected uint16 (mm) or float32 (m) depth, got {depth.dtype}')
        self._admit(depth.shape)
        return depth, self._geometry(geometry)

    def geometry_problem(self, geometry: SamplingGeometry) -> str:
        """Why this net cannot serve ``geometry`` (its output would be misplaced), or ''."""
        if geometry.decimated and self.point_alignment is None:
            return ('the checkpoint records no point alignment (sampling.point_alignment); '
                    'measure it with tools/calibrate_phase.py --write')
        if geometry.decimated and not all(0 <= v < self.scale for v in geometry.phase):
            return f'phase {geometry.phase} lies outside the {self.scale}x{self.scale} block'
        return ''

    def output_move(self, geometry: SamplingGeometry) -> Tuple[float, float]:
        """HR pixels ``(rows, cols)`` the net's output is moved by for ``geometry``: from
        where the net places a sample of that kind to where the geometry says it is."""
        problem = self.geometry_problem(geometry)
        if problem:
            raise ValueError(problem)
        target = geometry.position(self.scale)
        if geometry.decimated:
            placed = self.point_alignment
        else:
            placed = self.native_alignment if self.native_alignment is not None else target
        return target[0] - placed[0], target[1] - placed[1]

    def _geometry(self, geometry: Optional[SamplingGeometry]) -> Optional[SamplingGeometry]:
        """``geometry``, or the one ``sampling_phase`` implies, or None (no move)."""
        if geometry is not None or self.sampling_phase is None:
            return geometry
        return SamplingGeometry('decimated', self.sampling_phase, 'sampling_phase')

    def run_normalized(self, depth_lr: np.ndarray,
                       valid: Optional[np.ndarray] = None) -> np.ndarray:
        """Run the net on already normalised, hole-filled LR depth (evaluation harness).

        ``valid`` is the LR validity mask (all valid when omitted) for mask-aware nets.
        """
        depth_lr = np.asarray(depth_lr, dtype=np.float32)
        if valid is None:
            valid = np.ones(depth_lr.shape, bool)
        return self._super_resolve(make_net_input(depth_lr, valid, self.in_channels))

    def run_prepared(self, net_input: np.ndarray) -> np.ndarray:
        """Run the net on a ``(C, h, w)`` input from :func:`prepare_net_input`."""
        return self._super_resolve(np.asarray(net_input, dtype=np.float32))

    def input_scaling(self) -> DepthScaling:
        """The scaling applied to frames given to :meth:`run` (in metres)."""
        mode = self.input_normalization
        if mode == 'checkpoint':
            return self.scaling
        if mode == 'range':
            return DepthScaling('range', low_percentile=1.0, high_percentile=99.0,
                                min_relative_span=0.1)
        if mode == 'minmax':
            return DepthScaling('range')
        return DepthScaling('fixed', max_value=self.max_value, unit='m')

    def fit_tile(self) -> int:
        """LR tile edge the input scaling is fitted over (0 = the whole frame)."""
        scaling = self.input_scaling()
        if scaling.mode != 'range':
            return 0
        tile = scaling.fit_tile if self.scaling_tile < 0 else self.scaling_tile
        return max(tile, 2 * self.tile_overlap + 1) if tile else 0

    # ------------------------------------------------------------------ internals
    def _admit(self, shape: Tuple[int, int]) -> None:
        """Refuse a frame that cannot fit the memory budget, before anything HR is allocated."""
        self.memory.observe(shape)
        problem = self.memory.frame_problem(
            shape[0], shape[1], scale=self.scale, channels=self.model.num_channels,
            precision=self.precision, overlap=self.tile_overlap)
        if problem:
            raise FrameTooLarge(problem)

    def _super_resolve(self, image: np.ndarray,
                       alignment: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """``(C, h, w)`` net input -> ``(h*s, w*s)`` net output (``alignment``: see
        :meth:`_forward_batch`)."""
        height, width = image.shape[-2:]
        tile = self.memory.tile_shape(
            height, width, scale=self.scale, channels=self.model.num_channels,
            blocks=self.model.num_blocks, precision=self.precision, overlap=self.tile_overlap,
            requested=self.tile_size, cpu=self.device.type == 'cpu')
        if tile != (0, 0) and (height > tile[0] or width > tile[1]):
            return self._run_tiled(image, tile, alignment)
        return self._forward_padded(image, alignment)

    def _forward_padded(self, image: np.ndarray,
                        alignment: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """One ``(C, h, w)`` net input -> ``(h*s, w*s)``: a batch of one."""
        return self._forward_batch(image[None], alignment)[0]

    def _forward_batch(self, batch: np.ndarray,
                       alignment: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """``(N, C, h, w)`` net inputs -> ``(N, h*s, w*s)``, averaged over ``ensemble_passes``
        flipped copies; for point-sampled input at a known phase (``alignment``: the net's point
        alignment) each copy is put back there first (:mod:`dsr_ros.self_ensemble`)."""
        return average_over_flips(self._forward_once, batch, self.ensemble_passes, self.scale,
                                  alignment)

    def _forward_batch_on_device(self, batch: np.ndarray,
                                 alignment: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """:meth:`_forward_batch` as a float32 tensor left on the device (the tiles' blend runs
        there); one pass stays on the device, a self-ensemble is averaged on the host."""
        if self.ensemble_passes == 1:
            return self._forward_once(batch, on_device=True)
        return torch.from_numpy(self._forward_batch(batch, alignment)).to(self.device)

    def _forward_once(self, batch: np.ndarray, on_device: bool = False
                      ) -> Union[np.ndarray, torch.Tensor]:
        """One pass of ``(N, C, h, w)`` inputs, padded to ``pad_multiple`` (edge replicate)
        and cropped back; a numpy array, or a device tensor with ``on_device``."""
        height, width = batch.shape[-2:]
        pad_h, pad_w = (-height) % self.pad_multiple, (-width) % self.pad_multiple
        if pad_h or pad_w:
            batch = np.pad(batch, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode='edge')
        out = self._forward_tensor(batch)[:, :height * self.scale, :width * self.scale]
        return out if on_device else out.cpu().numpy()

    @torch.inference_mode()
    def _forward_tensor(self, batch: np.ndarray) -> torch.Tensor:
        """``(N, C, h, w)`` -> ``(N, h*s, w*s)`` float32 on the device, in the chosen
        precision."""
        tensor = torch.from_numpy(np.ascontiguousarray(batch))
        if self.device.type == 'cuda':
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        if self.precision == 'fp32':
            out = self.model(tensor)
        else:
            with torch.autocast(self.device.type, dtype=autocast_dtype(self.precision)):
                out = self.model(tensor)
        return out.float()[:, 0]

    def _run_tiled(self, image: np.ndarray, tile: Tuple[int, int],
                   alignment: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Process overlapping LR tiles, blending their HR outputs with linear ramp weights."""
        height, width = image.shape[-2:]
        scale, overlap = self.scale, self.tile_overlap
        (tile_h, tile_w) = tile
        accum = np.zeros((height * scale, width * scale), np.float32)
        weight = np.zeros_like(accum)
        for top in _tile_starts(height, tile_h, tile_h - overlap):
            for left in _tile_starts(width, tile_w, tile_w - overlap):
                if self.stop_event is not None and self.stop_event.is_set():
                    raise InferenceStopped('stopped between tiles')
                bottom, right = min(top + tile_h, height), min(left + tile_w, width)
                out = self._forward_padded(image[:, top:bottom, left:right], alignment)
                ramp = _ramp_weights(out.shape, overlap * scale,
                                     (top > 0, bottom < height, left > 0, right < width))
                rows = slice(top * scale, bottom * scale)
                cols = slice(left * scale, right * scale)
                accum[rows, cols] += out * ramp
                weight[rows, cols] += ramp
        np.maximum(weight, 1e-12, out=weight)
        accum /= weight  # in place: no third and fourth HR-sized array
        return accum

    @torch.inference_mode()
    def _run_locally_scaled(self, metres: np.ndarray, valid: np.ndarray,
                            scaling: DepthScaling, tile: int,
                            alignment: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Super-resolve with the range fitted per ``tile`` x ``tile`` LR tile, blended in metres.

        Why: the sensor models learn on 96-px HR patches, whose depth range is a patch's, not a
        room's; fitted over a whole frame the same scaling squeezes a wall's detail into a small
        part of the net's input range, which costs 3-10 % MAD (measured on the sensor suite's
        validation split). Holes are filled once over the frame; the tiles' ranges are fitted
        in one vectorised pass (per-tile ``np.percentile`` calls were most of a GPU frame's
        time); a tile without a valid pixel (its output is invalid anyway) takes the frame's
        scaling. Each row of equal tiles is one batch; the tiles are blended on the resolver's
        device (on a GPU no tile comes back to the host); the stop event is checked between
        rows.
        """
        height, width = metres.shape
        scale, overlap = self.scale, self.tile_overlap
        tile_h, tile_w = min(tile, height), min(tile, width)
        filled = _fill_holes(metres, valid)
        frame_affine = scaling.fit(metres[valid], 'm')
        tops = _tile_starts(height, tile_h, tile_h - overlap)
        lefts = _tile_starts(width, tile_w, tile_w - overlap)
        offsets, spans = _tile_affines(metres, valid, scaling, tops, lefts, (tile_h, tile_w),
                                       frame_affine)
        ramps: Dict[Tuple[bool, ...], torch.Tensor] = {}  # at most 9 kinds of tile position
        accum = torch.zeros((height * scale, width * scale), dtype=torch.float32,
                            device=self.device)
        weight = torch.zeros_like(accum)
        for row, top in enumerate(tops):
            if self.stop_event is not None and self.stop_event.is_set():
                raise InferenceStopped('stopped between tiles')
            rows = slice(top, top + tile_h)
            affines = [Affine(float(offsets[row, col]), float(spans[row, col]))
                       for col in range(len(lefts))]
            inputs = [make_net_input(affine.forward(filled[rows, left:left + tile_w]),
                                     valid[rows, left:left + tile_w], self.in_channels)
                      for affine, left in zip(affines, lefts)]
            outputs = self._forward_batch_on_device(np.stack(inputs), alignment)
            for left, affine, out in zip(lefts, affines, outputs):
                inner = (top > 0, top + tile_h < height, left > 0, left + tile_w < width)
                if inner not in ramps:
                    ramps[inner] = torch.from_numpy(
                        _ramp_weights(tuple(out.shape), overlap * scale, inner)).to(self.device)
                ramp = ramps[inner]
                hr_rows = slice(top * scale, (top + tile_h) * scale)
                hr_cols = slice(left * scale, (left + tile_w) * scale)
                # affine.inverse and the ramp, in place, then into the frame
                accum[hr_rows, hr_cols] += out.mul_(affine.span).add_(affine.offset).mul_(ramp)
                weight[hr_rows, hr_cols] += ramp
        weight.clamp_(min=1e-12)
        accum /= weight
        return accum.cpu().numpy()

    def _encode(self, result: np.ndarray, valid: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Metres -> the input's dtype and unit; each invalid LR pixel's ``s x s`` block invalid.

        In place on HR-sized arrays and with the blocks addressed through a ``(h, s, w, s)``
        view rather than a repeated HR mask: at 640x480 x4 these few passes over 4.9 M pixels
        were a third of a GPU frame."""
        blocks = ~valid[:, None, :, None]
        if dtype == np.uint16:
            scaled = np.multiply(result, np.float32(1000.0), dtype=np.float32)
            np.rint(scaled, out=scaled)
            np.clip(scaled, 1, 65535, out=scaled)
            out = scaled.astype(np.uint16)
            np.copyto(self._blocks_view(out), 0, where=blocks)
            return out
        out = np.maximum(result, MIN_VALID_DEPTH_M).astype(dtype)
        np.copyto(self._blocks_view(out), np.nan, where=blocks)
        return out

    def _blocks_view(self, hr: np.ndarray) -> np.ndarray:
        """``(H*s, W*s)`` -> its ``(H, s, W, s)`` view: output pixel blocks by LR pixel."""
        scale = self.scale
        return hr.reshape(hr.shape[0] // scale, scale, hr.shape[1] // scale, scale)

    @staticmethod
    def _invalid_output(dtype: np.dtype, shape: Tuple[int, int]) -> np.ndarray:
        if dtype == np.uint16:
            return np.zeros(shape, np.uint16)
        return np.full(shape, np.nan, dtype)


def _tile_starts(length: int, tile: int, step: int) -> list:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _tile_affines(metres: np.ndarray, valid: np.ndarray, scaling: DepthScaling,
                  tops: list, lefts: list, tile: Tuple[int, int], fallback: Affine
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """``(offsets, spans)``, each ``(len(tops), len(lefts))``: the scaling fitted over each LR
    tile's valid depth in one vectorised pass; a tile without valid depth takes ``fallback``."""
    masked = np.where(valid, metres, np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(masked, tile)[np.ix_(tops, lefts)]
    offsets, spans = scaling.fit_rows(windows.reshape(len(tops) * len(lefts), -1), 'm')
    empty = np.isnan(offsets)
    offsets[empty], spans[empty] = fallback.offset, fallback.span
    shape = (len(tops), len(lefts))
    return offsets.reshape(shape), spans.reshape(shape)


def _ramp_weights(shape: Tuple[int, int], ramp: int, inner: Tuple[bool, bool, bool, bool]
                  ) -> np.ndarray:
    """Blending weights of one tile's output.

    On each side that overlaps a neighbour, the outermost ``ramp // 4`` pixels get weight 0
    (a tile's last pixels see a truncated receptive field and differ visibly from the whole
    frame) and the weight then rises linearly to 1 over the rest of the overlap, so the
    neighbour's interior covers the seam.
    """
    height, width = shape
    top, bottom, left, right = inner
    dead = ramp // 4
    rise = max(ramp - dead, 1)

    def profile(length: int, low: bool, high: bool) -> np.ndarray:
        distance = np.arange(length, dtype=np.float32)
        weights = np.ones(length, np.float32)
        if ramp > 0:
            for enabled, d in ((low, distance), (high, distance[::-1])):
                if enabled:
                    weights = np.minimum(weights, np.clip((d - dead + 0.5) / rise, 0.0, 1.0))
        return weights

    return profile(height, top, bottom)[:, None] * profile(width, left, right)[None, :]
