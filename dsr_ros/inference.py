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
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from scipy import ndimage

from dsr_ros.checkpoint import DEFAULT_NORMALIZATION, load_checkpoint
from dsr_ros.memory_budget import FrameTooLarge, MemoryBudget
from dsr_ros.networks import DSRNet

__all__ = ['DepthSuperResolver', 'FrameTooLarge', 'InferenceStopped', 'fill_invalid',
           'resolve_device', 'valid_mask']

LOGGER = logging.getLogger(__name__)
PRECISIONS = ('fp32', 'fp16', 'bf16')
NORMALIZATION_MODES = ('checkpoint', 'minmax', 'fixed')


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


def valid_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels that carry a measurement: finite and strictly positive."""
    if depth.dtype.kind in 'ui':
        return depth > 0
    with np.errstate(invalid='ignore'):
        return np.isfinite(depth) & (depth > 0)


def fill_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels by their nearest valid neighbour (values must have >= 1 valid)."""
    if valid.all():
        return values
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return values[rows, cols]


@dataclass
class _Normalizer:
    """Maps depth in its own unit to the net's [0, 1] range and back."""

    offset: float
    span: float

    def forward(self, values: np.ndarray) -> np.ndarray:
        return (values - self.offset) / self.span

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.span + self.offset


class DepthSuperResolver:
    """Run a DSRNet on single depth frames.

    Args:
        model: a DSRNet (put in eval mode and moved to ``device``).
        normalization: how the net was trained to see depth, as stored in checkpoints
            (``{'mode': 'fixed'|'minmax', 'max_value': ...}``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; ``fp16`` (CUDA only); ``bf16`` (autocast, CUDA or CPUs with AMX /
            AVX-512-BF16).
        input_normalization: ``checkpoint`` (use ``normalization`` as is, for data in the
            training unit), ``minmax`` (map each frame's valid range to [0, 1]: unit-free, the
            right choice for metric cameras) or ``fixed`` (divide by ``max_value``).
        max_value: the divisor for ``fixed`` in the input's unit (mm for uint16, m for float).
        tile_size: LR tile edge in pixels; 0 = whole frame, or as large as ``max_memory_mb``
            allows. Tiles are never smaller than ``memory_budget.min_tile(tile_overlap)``.
        tile_overlap: LR pixels shared by neighbouring tiles (blended with linear ramps).
        channels_last: use the NHWC memory format (about 2x faster convolutions on x86 CPUs).
        pad_multiple: pad the LR frame to a multiple of this (replicate), crop the output back.
        max_memory_mb: peak resident memory of the process to stay under (tiles are sized for
            it, frames that cannot fit raise :class:`FrameTooLarge`); 0 = no limit.
        stop_event: when set, a running frame ends between two tiles with
            :class:`InferenceStopped`; CPU tiles are then kept short (see memory_budget).
    """

    def __init__(self, model: DSRNet, normalization: Optional[Dict[str, Any]] = None, *,
                 device: str = 'auto', precision: str = 'fp32',
                 input_normalization: str = 'minmax', max_value: float = 1.0,
                 tile_size: int = 0, tile_overlap: int = 8, channels_last: bool = True,
                 pad_multiple: int = 8, max_memory_mb: float = 0.0,
                 stop_event: Optional[threading.Event] = None) -> None:
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
        self.device = resolve_device(device)
        if precision == 'fp16' and self.device.type != 'cuda':
            raise ValueError('fp16 needs a CUDA device; use precision "fp32" or "bf16" on CPU')
        self.precision = precision
        self.normalization = dict(normalization or DEFAULT_NORMALIZATION)
        self.input_normalization = input_normalization
        self.max_value = float(max_value)
        self.tile_size = int(tile_size)
        self.tile_overlap = int(tile_overlap)
        self.pad_multiple = max(1, int(pad_multiple))
        self.channels_last = bool(channels_last)
        self.model = model.eval().to(self.device)
        if precision == 'fp16':
            self.model = self.model.half()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scale = int(model.scale)
        self.stop_event = stop_event
        self.memory = MemoryBudget(max_memory_mb, stop_latency=stop_event is not None)
        #: Checkpoint metadata when built by :meth:`from_checkpoint`.
        self.metadata: Dict[str, Any] = {}

    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike], **kwargs: Any
                        ) -> 'DepthSuperResolver':
        """Load a checkpoint (see :mod:`dsr_ros.checkpoint`) and wrap it."""
        model, metadata = load_checkpoint(path)
        resolver = cls(model, metadata.get('normalization'), **kwargs)
        resolver.metadata = metadata
        return resolver

    # ------------------------------------------------------------------ public API
    def run(self, depth: np.ndarray, max_depth: Optional[float] = None) -> np.ndarray:
        """Super-resolve one frame; returns ``(H*s, W*s)`` in the input's dtype and unit.

        ``max_depth`` (in the input's unit) marks farther pixels invalid, like a sensor's range.
        """
        depth = np.asarray(depth)
        if depth.ndim != 2 or depth.shape[0] < 1 or depth.shape[1] < 1:
            raise ValueError(f'expected a non-empty 2-D depth image, got shape {depth.shape}')
        if depth.dtype not in (np.uint16, np.float32, np.float64):
            raise ValueError(f'expected uint16 (mm) or float32 (m) depth, got {depth.dtype}')
        self._admit(depth.shape)
        valid = valid_mask(depth)
        if max_depth is not None and max_depth > 0:
            valid &= depth <= max_depth
        height, width = depth.shape
        out_shape = (height * self.scale, width * self.scale)
        if not valid.any():
            return self._invalid_output(depth.dtype, out_shape)
        values = depth.astype(np.float32)
        normalizer = self._normalizer(values[valid])
        filled = fill_invalid(values, valid)
        net_in = normalizer.forward(filled).astype(np.float32)
        net_out = self._super_resolve(net_in)
        result = normalizer.inverse(net_out)
        out_valid = np.repeat(np.repeat(valid, self.scale, axis=0), self.scale, axis=1)
        return self._encode(result, out_valid, depth.dtype)

    def run_normalized(self, depth_lr: np.ndarray) -> np.ndarray:
        """Run the net on an already normalised, hole-free LR array (evaluation harness)."""
        return self._super_resolve(np.asarray(depth_lr, dtype=np.float32))

    # ------------------------------------------------------------------ internals
    def _normalizer(self, valid_values: np.ndarray) -> _Normalizer:
        mode = self.input_normalization
        if mode == 'checkpoint':
            mode = self.normalization.get('mode', 'fixed')
            max_value = float(self.normalization.get('max_value', 1.0))
        else:
            max_value = self.max_value
        if mode == 'fixed':
            return _Normalizer(0.0, max_value)
        low, high = float(valid_values.min()), float(valid_values.max())
        return _Normalizer(low, high - low if high > low else max(abs(high), 1e-6))

    def _admit(self, shape: Tuple[int, int]) -> None:
        """Refuse a frame that cannot fit the memory budget, before anything HR is allocated."""
        self.memory.observe(shape)
        problem = self.memory.frame_problem(
            shape[0], shape[1], scale=self.scale, channels=self.model.num_channels,
            precision=self.precision, overlap=self.tile_overlap)
        if problem:
            raise FrameTooLarge(problem)

    def _super_resolve(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        tile = self.memory.tile_shape(
            height, width, scale=self.scale, channels=self.model.num_channels,
            blocks=self.model.num_blocks, precision=self.precision, overlap=self.tile_overlap,
            requested=self.tile_size, cpu=self.device.type == 'cpu')
        if tile != (0, 0) and (height > tile[0] or width > tile[1]):
            return self._run_tiled(image, tile)
        return self._forward_padded(image)

    def _forward_padded(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape
        pad_h = (-height) % self.pad_multiple
        pad_w = (-width) % self.pad_multiple
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w)), mode='edge')
        out = self._forward(image)
        return out[:height * self.scale, :width * self.scale]

    @torch.inference_mode()
    def _forward(self, image: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        if self.device.type == 'cuda':
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        if self.precision == 'fp16':
            tensor = tensor.half()
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        if self.precision == 'bf16':
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = self.model(tensor)
        else:
            out = self.model(tensor)
        return out.float()[0, 0].cpu().numpy()

    def _run_tiled(self, image: np.ndarray, tile: Tuple[int, int]) -> np.ndarray:
        """Process overlapping LR tiles, blending their HR outputs with linear ramp weights."""
        height, width = image.shape
        scale, overlap = self.scale, self.tile_overlap
        (tile_h, tile_w) = tile
        accum = np.zeros((height * scale, width * scale), np.float32)
        weight = np.zeros_like(accum)
        for top in _tile_starts(height, tile_h, tile_h - overlap):
            for left in _tile_starts(width, tile_w, tile_w - overlap):
                if self.stop_event is not None and self.stop_event.is_set():
                    raise InferenceStopped('stopped between tiles')
                bottom, right = min(top + tile_h, height), min(left + tile_w, width)
                out = self._forward_padded(image[top:bottom, left:right])
                ramp = _ramp_weights(out.shape, overlap * scale,
                                     (top > 0, bottom < height, left > 0, right < width))
                rows = slice(top * scale, bottom * scale)
                cols = slice(left * scale, right * scale)
                accum[rows, cols] += out * ramp
                weight[rows, cols] += ramp
        np.maximum(weight, 1e-12, out=weight)
        accum /= weight  # in place: no third and fourth HR-sized array
        return accum

    def _encode(self, result: np.ndarray, out_valid: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if dtype == np.uint16:
            out = np.clip(np.rint(result), 1, 65535).astype(np.uint16)
            out[~out_valid] = 0
            return out
        out = result.astype(dtype)
        out[~out_valid] = np.nan
        return out

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
