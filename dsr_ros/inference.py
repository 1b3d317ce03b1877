"""Depth super-resolution on numpy arrays: the algorithm the node calls, without any ROS.

``DepthSuperResolver.run`` takes one depth frame, either ``uint16`` millimetres (0 = invalid,
the raw ``16UC1`` convention) or ``float32`` metres (NaN/inf/<=0 = invalid, ``32FC1``), and returns
the super-resolved frame in the same dtype and convention (or the one asked for).
``DepthSuperResolver.resolve`` returns it with the LR validity it was computed with, which is
all a caller needs besides (the node's point cloud). How a frame runs (``options``, a
:class:`dsr_ros.run_options.RunOptions`) is given per call; the resolver keeps its
constructor's choice as the default.

Invalid pixels are filled from their nearest valid neighbour before the net
(:mod:`dsr_ros.net_input`) and are invalid again in the output (:mod:`dsr_ros.frame_encoding`),
so they never bleed into valid depth. Frames of any size work (replicate padding, cropped
back); large frames can be processed in overlapping tiles blended with linear ramps
(:mod:`dsr_ros.tiling`) so that a memory budget holds without seams. This module holds the
resolver and its numpy frame path; :mod:`dsr_ros.frame_pipeline_torch` is the torch twin.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.device import resolve_device
from dsr_ros.frame_backend import configure_frames
from dsr_ros.frame_encoding import SuperResolved, encode, invalid_output
from dsr_ros.local_scaling import run_locally_scaled
from dsr_ros.memory_budget import FrameTooLarge, MemoryBudget
from dsr_ros.net_input import make_net_input, prepare_net_input
from dsr_ros.networks import DSRNet
from dsr_ros.precision import PRECISIONS, autocast_dtype, choose_precision
from dsr_ros.run_options import RunOptions
from dsr_ros.sampling_geometry import SamplingGeometry
from dsr_ros.sampling_phase import (checkpoint_alignment, checkpoint_native_alignment,
                                    keep_samples, move_output, parse_phase)
from dsr_ros.self_ensemble import average_over_flips
from dsr_ros.tiling import blend_tiles, ramp_weights

__all__ = ['DepthSuperResolver', 'InferenceStopped']

LOGGER = logging.getLogger(__name__)


class InferenceStopped(RuntimeError):
    """Raised between tiles when the resolver's ``stop_event`` is set (the node shuts down)."""


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
        channels_last: use the NHWC memory format (about 2x faster convolutions on x86 CPUs).
        pad_multiple: pad the LR frame to a multiple of this (replicate), crop the output back.
        stop_event: when set, a running frame ends between two tiles with
            :class:`InferenceStopped`; CPU tiles are then kept short (see memory_budget).
        point_alignment: the net's own sample alignment (default: the checkpoint's
            ``sampling.point_alignment``); a known ``sampling_phase`` needs it.
        native_alignment: where the net places a native (centred-footprint) sample, in HR
            pixels within the block (default: the checkpoint's ``sampling.native_alignment``;
            None = centred, no move).
        backend: ``torch``, ``tensorrt`` or ``auto``: what runs the net inside the torch frame
            pipeline (:mod:`dsr_ros.frame_backend`; TensorRT falls back to torch with one line).
        frame_pipeline: ``numpy``, ``torch`` (every step of a frame on the device) or ``auto``
            (torch on CUDA, numpy elsewhere).
        cuda_graphs: on CUDA with the torch net, replay each whole frame of the torch
            pipeline from one CUDA graph per frame shape and settings.
        input_normalization, max_value, tile_size, tile_overlap, scaling_tile, max_memory_mb,
        sampling_phase, keep_samples, ensemble_passes: the default per-frame options
            (:class:`dsr_ros.run_options.RunOptions`, kept as :attr:`options`); ``run`` and
            ``resolve`` take another set per call. Frames that cannot fit ``max_memory_mb``
            raise :class:`FrameTooLarge`.
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
        options = RunOptions(
            input_normalization=input_normalization, max_value=max_value, tile_size=tile_size,
            tile_overlap=tile_overlap, scaling_tile=scaling_tile, max_memory_mb=max_memory_mb,
            sampling_phase=None if sampling_phase is None else tuple(sampling_phase),
            keep_samples=keep_samples, ensemble_passes=ensemble_passes)
        self.device = resolve_device(device)
        #: How the net was trained to see depth (the checkpoint's ``normalization``).
        self.scaling = DepthScaling.from_dict(normalization)
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
        self.point_alignment = parse_phase(point_alignment, self.scale, 'point_alignment')
        #: Where the net places a native sample (None: centred, the output is not moved).
        self.native_alignment = (None if native_alignment is None else
                                 (float(native_alignment[0]), float(native_alignment[1])))
        self.stop_event = stop_event
        self.memory = MemoryBudget(max_memory_mb, stop_latency=stop_event is not None)
        #: The per-frame options ``run`` uses when given none.
        self.options = self.check_options(options)
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
    def check_options(self, options: RunOptions) -> RunOptions:
        """``options`` if this net can run with them (a known ``sampling_phase`` needs its
        point alignment and must lie in its block); else ``ValueError``."""
        if options.sampling_phase is not None:
            parse_phase(options.sampling_phase, self.scale)
            if self.point_alignment is None:
                raise ValueError('a known sampling_phase needs the net\'s point alignment, and '
                                 'this checkpoint records none: measure it with python -m '
                                 'training.checkpoints calibrate-phase or leave sampling_phase '
                                 'unknown ([-1, -1])')
        return options

    def run(self, depth: np.ndarray, max_depth: Optional[float] = None,
            geometry: Optional[SamplingGeometry] = None, options: Optional[RunOptions] = None,
            dtype: Optional[np.dtype] = None) -> np.ndarray:
        """Super-resolve one frame; returns ``(H*s, W*s)`` in the input's dtype and unit (or
        ``dtype``: ``uint16`` mm or float metres). See :meth:`resolve`."""
        return self.resolve(depth, max_depth, geometry, options, dtype).depth

    def resolve(self, depth: np.ndarray, max_depth: Optional[float] = None,
                geometry: Optional[SamplingGeometry] = None,
                options: Optional[RunOptions] = None,
                dtype: Optional[np.dtype] = None) -> SuperResolved:
        """Super-resolve one frame, encoded once in ``dtype`` (default: the input's), with
        the LR validity it was computed with.

        ``max_depth`` (in the input's unit) marks farther pixels invalid, like a sensor's range.
        An invalid input pixel makes its ``s x s`` output block invalid and a valid one never
        gives an invalid or non-positive output: validity passes through unchanged.
        ``geometry``: where each LR sample sits (:mod:`dsr_ros.sampling_geometry`); the output
        is moved so the sample lands at ``s * u + geometry.position(s)``. None: decimated at
        ``options.sampling_phase`` when that is known, else the output as the net places it.
        ``options``: how the frame runs (default :attr:`options`).
        """
        options = self.options if options is None else self.check_options(options)
        dtype = np.asarray(depth).dtype if dtype is None else np.dtype(dtype)
        if self.frames.pipeline == 'torch':
            try:
                return self.frames.run(depth, max_depth, geometry, options, dtype)
            except (FrameTooLarge, InferenceStopped, ValueError):
                raise
            except Exception as error:  # noqa: BLE001 - a device path must not stop frames
                self.frames = self.frames.numpy_fallback(error)
                LOGGER.error(self.frames.line)
        depth, geometry = self.accept_frame(depth, geometry, options)
        valid = valid_mask(depth)
        if max_depth is not None and max_depth > 0:
            valid &= depth <= max_depth
        height, width = depth.shape
        if not valid.any():
            return SuperResolved(invalid_output(dtype, (height * self.scale, width * self.scale)),
                                 valid, self.scale)
        metres = depth.astype(np.float32)
        if depth.dtype == np.uint16:
            metres /= np.float32(1000.0)
        scaling = options.input_scaling(self.scaling)
        tile = options.fit_tile(self.scaling)
        alignment = self.point_alignment if geometry is not None and geometry.decimated else None
        if tile and (height > tile or width > tile):
            result = run_locally_scaled(self, metres, valid, scaling, tile, alignment, options)
        else:
            net_in, affine = prepare_net_input(metres, valid, scaling, self.in_channels)
            result = affine.inverse(self._super_resolve(net_in, alignment, options))
        if geometry is not None:
            result = move_output(result, *self.output_move(geometry))
            if geometry.decimated and options.keep_samples:
                result = keep_samples(result, metres, valid, geometry.phase)
        return SuperResolved(encode(result, valid, self.scale, dtype, depth.dtype), valid,
                             self.scale)

    def accept_frame(self, depth: np.ndarray, geometry: Optional[SamplingGeometry],
                     options: RunOptions) -> Tuple[np.ndarray, Optional[SamplingGeometry]]:
        """The host-side checks every frame pipeline (numpy or torch) starts with: a non-empty
        2-D uint16 or float frame that fits the memory budget, and the geometry it is run in
        (``geometry``, or what ``options.sampling_phase`` implies)."""
        depth = np.asarray(depth)
        if depth.ndim != 2 or depth.shape[0] < 1 or depth.shape[1] < 1:
            raise ValueError(f'expected a non-empty 2-D depth image, got shape {depth.shape}')
        if depth.dtype not in (np.uint16, np.float32, np.float64):
            raise ValueError(f'expected uint16 (mm) or float32 (m) depth, got {depth.dtype}')
        self.memory.max_memory_mb = options.max_memory_mb
        self._admit(depth.shape, options)
        if geometry is None and options.sampling_phase is not None:
            geometry = SamplingGeometry('decimated', options.sampling_phase, 'sampling_phase')
        return depth, geometry

    def geometry_problem(self, geometry: SamplingGeometry) -> str:
        """Why this net cannot serve ``geometry`` (its output would be misplaced), or ''."""
        if geometry.decimated and self.point_alignment is None:
            return ('the checkpoint records no point alignment (sampling.point_alignment); '
                    'measure it with python -m training.checkpoints calibrate-phase --write')
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

    def input_scaling(self, options: Optional[RunOptions] = None) -> DepthScaling:
        """The scaling applied to frames given to :meth:`run` (in metres)."""
        return (options or self.options).input_scaling(self.scaling)

    def fit_tile(self, options: Optional[RunOptions] = None) -> int:
        """LR tile edge the input scaling is fitted over (0 = the whole frame)."""
        return (options or self.options).fit_tile(self.scaling)

    # ------------------------------------------------------------------ internals
    def _admit(self, shape: Tuple[int, int], options: RunOptions) -> None:
        """Refuse a frame that cannot fit the memory budget, before anything HR is allocated."""
        self.memory.observe(shape)
        problem = self.memory.frame_problem(
            shape[0], shape[1], scale=self.scale, channels=self.model.num_channels,
            precision=self.precision, overlap=options.tile_overlap)
        if problem:
            raise FrameTooLarge(problem)

    def _super_resolve(self, image: np.ndarray, alignment: Optional[Tuple[int, int]] = None,
                       options: Optional[RunOptions] = None) -> np.ndarray:
        """``(C, h, w)`` net input -> ``(h*s, w*s)`` net output (``alignment``: see
        :meth:`_forward_batch`), whole or in the memory budget's tiles."""
        options = options or self.options
        height, width = image.shape[-2:]
        tile = self.memory_tile(height, width, options)
        passes = options.ensemble_passes

        def forward(part: np.ndarray) -> np.ndarray:
            return self._forward_batch(part[None], alignment, passes)[0]
        if tile == (0, 0) or (height <= tile[0] and width <= tile[1]):
            return forward(image)
        accum = np.zeros((height * self.scale, width * self.scale), np.float32)
        weight = np.zeros_like(accum)
        blend_tiles(image, tile, self.scale, options.tile_overlap, forward, ramp_weights,
                    accum, weight, self.check_stop)
        np.maximum(weight, 1e-12, out=weight)
        accum /= weight  # in place: no third and fourth HR-sized array
        return accum

    def memory_tile(self, height: int, width: int, options: RunOptions) -> Tuple[int, int]:
        """The memory budget's LR tile for a ``height`` x ``width`` net input ((0, 0): whole)."""
        return self.memory.tile_shape(
            height, width, scale=self.scale, channels=self.model.num_channels,
            blocks=self.model.num_blocks, precision=self.precision,
            overlap=options.tile_overlap, requested=options.tile_size,
            cpu=self.device.type == 'cpu')

    def check_stop(self) -> None:
        """Raise :class:`InferenceStopped` once the stop event is set (between tiles)."""
        if self.stop_event is not None and self.stop_event.is_set():
            raise InferenceStopped('stopped between tiles')

    def _forward_batch(self, batch: np.ndarray, alignment: Optional[Tuple[int, int]],
                       passes: int) -> np.ndarray:
        """``(N, C, h, w)`` net inputs -> ``(N, h*s, w*s)``, averaged over ``passes``
        flipped copies; for point-sampled input at a known phase (``alignment``: the net's point
        alignment) each copy is put back there first (:mod:`dsr_ros.self_ensemble`)."""
        return average_over_flips(self._forward_once, batch, passes, self.scale, alignment)

    def forward_batch_on_device(self, batch: np.ndarray, alignment: Optional[Tuple[int, int]],
                                passes: int) -> torch.Tensor:
        """:meth:`_forward_batch` as a float32 tensor left on the device (the tiles' blend runs
        there); one pass stays on the device, a self-ensemble is averaged on the host."""
        if passes == 1:
            return self._forward_once(batch, on_device=True)
        return torch.from_numpy(self._forward_batch(batch, alignment, passes)).to(self.device)

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


def _default_option(name: str) -> property:
    """``resolver.<name>``: the default option, read-only (a run with another value passes
    ``options=resolver.options.replace(<name>=...)``, so setting it raises AttributeError)."""
    return property(lambda self: getattr(self.options, name),
                    doc=f'The default ``{name}`` of :attr:`DepthSuperResolver.options`.')


for _name in RunOptions.__dataclass_fields__:
    setattr(DepthSuperResolver, _name, _default_option(_name))
