"""``DepthSuperResolver.run`` in torch, on the resolver's device: on a GPU the frame stays there.

Why: on an H100 the lite net takes 2-3 ms per 160x120 -> 640x480 frame and the numpy wrapper
around it 8-12 ms (issue 30): range fitting, hole filling, tiling, blending and encoding ran on
the host, on HR-sized arrays. Here every step after decoding runs in torch on the resolver's
device, with one host-to-device copy of the LR frame (pinned on CUDA) and one copy of the
encoded output back. The numpy path stays the CPU default; this one is its twin, step by step:

* validity: ``uint16`` > 0, float finite and > 0, and ``<= max_depth`` compared in the input's
  own dtype as numpy does (an integer frame against ``floor(max_depth)``, exact);
* hole filling by the nearest valid pixel, with the index scipy's ``distance_transform_edt``
  returns, ties included (:func:`nearest_valid_index`);
* the robust range of ``DepthScaling.fit_rows`` (numpy's linear percentiles, in float64), per
  tile with the frame's range for tiles without depth;
* the tiles, their ramps and blend (``_run_locally_scaled``, and ``_run_tiled`` when the memory
  budget tiles the frame); on CUDA a frame's tiles are one batch (a few for large frames and
  nets, :data:`TILE_BATCH_BYTES`) blended with one ``index_add_`` (per-tile Python loops cost
  more in kernel launches than the net itself);
* the self-ensemble, the geometry move and ``keep_samples`` (:mod:`dsr_ros.placement_torch`);
* the encoding (:func:`dsr_ros.frame_encoding.encode_t`): ``uint16`` mm (rint, clip to
  1..65535, 0 in invalid blocks) or float metres (floor ``MIN_VALID_DEPTH_M``, NaN in invalid
  blocks).

Validity, hole filling and range fits are in :mod:`dsr_ros.frame_ops_torch`; the tiles' starts
and ramps in :mod:`dsr_ros.tiling`, shared with the numpy path. The frame comes back with its
LR validity (downloaded beside it, an LR-sized mask) so no caller computes it again.

Between the two copies (:meth:`TorchFramePipeline.device_frame`) nothing waits for the host
and every shape follows from the frame's shape and the settings, so on CUDA a whole frame is
captured once as a CUDA graph and replayed (:mod:`dsr_ros.frame_backend`): about 150 small
kernels, each otherwise issued by Python, become one launch.

On a CPU the two paths give the same bits except for float rounding order (``test/
test_frame_pipeline_torch.py`` measures it). Where ties could differ: none known in the hole
filling (the tie rules of scipy's Voronoi feature transform are reproduced, and the test checks
them on random and tie-heavy masks); on CUDA, ``index_add_`` adds a pixel's (at most four)
tile contributions in any order, which moves the last bit of a float32 sum.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from dsr_ros.depth_io import convert_depth
from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.frame_encoding import SuperResolved, encode_t
from dsr_ros.frame_ops_torch import fill_invalid_t, fit_rows_t, valid_mask_t
from dsr_ros.memory_budget import PRECISION_FACTOR, TILE_BYTES_PER_HR_ELEMENT
from dsr_ros.placement_torch import average_over_flips_t, keep_samples_t, move_output_t
from dsr_ros.precision import autocast_dtype
from dsr_ros.run_options import RunOptions
from dsr_ros.tiling import blend_tiles, ramp_weights, tile_starts

__all__ = ['TILE_BATCH_BYTES', 'TorchFramePipeline']

#: Activation memory a batch of scaling tiles may take on CUDA (memory_budget's estimate).
TILE_BATCH_BYTES = 2 << 30

Forward = Any  # (N, C, h, w) padded net input on the device -> (N, 1, h s, w s) float32


class TorchFramePipeline:
    """The frame path of a :class:`dsr_ros.inference.DepthSuperResolver`, in torch.

    Args:
        resolver: the resolver whose settings (device, scaling, precision, geometry, memory
            budget, stop event) and model this runs with; the per-frame options come with
            each call.
        net_forward: ``(N, C, h, w)`` padded net input on the device -> ``(N, 1, h s, w s)``
            float32; default: the resolver's model eagerly (channels_last, autocast as the
            resolver chose). A CUDA graph runner or a TensorRT engine goes here.
        batch_all_tiles: run a frame's scaling tiles in as few batches as
            :data:`TILE_BATCH_BYTES` allows (default on CUDA); else one row of tiles per batch,
            as the numpy path, so that a stop request waits at most one row and the batches
            (and hence the bits) are the numpy path's.
    """

    def __init__(self, resolver: Any, net_forward: Optional[Forward] = None,
                 batch_all_tiles: Optional[bool] = None) -> None:
        self.resolver = resolver
        self.device: torch.device = resolver.device
        self.net_forward: Forward = net_forward or self.eager_forward
        self.batch_all_tiles = (self.device.type == 'cuda' if batch_all_tiles is None
                                else bool(batch_all_tiles))
        #: A :class:`dsr_ros.cuda_graphs.CudaGraphRunner` replaying :meth:`device_frame` per
        #: frame shape and settings (set by ``frame_backend`` on CUDA), or None.
        self.frame_graphs: Any = None
        self._plans: Dict[Tuple[int, ...], Dict[str, Any]] = {}
        self._ramps: Dict[Tuple[Any, ...], torch.Tensor] = {}

    # ------------------------------------------------------------------ public
    def run(self, depth: np.ndarray, max_depth: Optional[float] = None, geometry: Any = None,
            options: Optional[RunOptions] = None, dtype: Optional[np.dtype] = None
            ) -> np.ndarray:
        """What ``DepthSuperResolver.run`` returns for the same arguments."""
        return self.resolve(depth, max_depth, geometry, options, dtype).depth

    @torch.inference_mode()
    def resolve(self, depth: np.ndarray, max_depth: Optional[float] = None,
                geometry: Any = None, options: Optional[RunOptions] = None,
                dtype: Optional[np.dtype] = None) -> SuperResolved:
        """What ``DepthSuperResolver.resolve`` returns, computed in torch: the checks on the
        host, one copy in, :meth:`device_frame` (replayed from a CUDA graph per frame shape
        and settings when ``frame_graphs`` is set and no memory budget applies), one copy of
        the frame and its LR validity out."""
        res = self.resolver
        options = options or res.options
        depth, geometry = res.accept_frame(depth, geometry, options)
        wanted = depth.dtype if dtype is None else np.dtype(dtype)
        # A float frame asked for as uint16 is encoded as float, then dropped to 16UC1 on
        # the host (frame_encoding.encode's rule for that rare pairing).
        on_device = np.dtype(np.float32) if wanted == np.uint16 != depth.dtype else wanted
        move = res.output_move(geometry) if geometry is not None else None
        frame = self._upload(depth)

        def device_frame(frame: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            return self.device_frame(frame, depth.dtype, max_depth, geometry, move, options,
                                     on_device)
        if self.frame_graphs is not None and not options.max_memory_mb:
            self._check_stop()
            key = (str(depth.dtype), str(on_device), max_depth,
                   None if geometry is None else geometry.key(), move, options,
                   res.point_alignment, res.pad_multiple, res.precision, res.channels_last,
                   id(res.model), id(self.net_forward))
            encoded, valid = self.frame_graphs(frame, key=key, forward=device_frame)
        else:
            encoded, valid = device_frame(frame)
        out = self._download(encoded, valid)
        image = out[0].view(np.uint16) if on_device == np.uint16 else out[0]
        if on_device != wanted:
            image = convert_depth(image, '16UC1')
        return SuperResolved(image, out[1], res.scale)

    def device_frame(self, frame: torch.Tensor, dtype: np.dtype, max_depth: Optional[float],
                     geometry: Any, move: Optional[Tuple[float, float]], options: RunOptions,
                     out_dtype: Optional[np.dtype] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Everything between the two copies, with no host sync and only shapes fixed by the
        frame's shape and the settings, so that it can be captured as one CUDA graph. A frame
        without valid depth runs too (its every block is invalid in the output). Returns the
        encoded frame (``out_dtype``, default the input's) and the LR validity."""
        res = self.resolver
        height, width = frame.shape
        metres, valid = self._decode(frame, dtype, max_depth)
        scaling = options.input_scaling(res.scaling)
        tile = options.fit_tile(res.scaling)
        alignment = res.point_alignment if geometry is not None and geometry.decimated else None
        filled = fill_invalid_t(torch.where(valid, metres, 0.0), valid)
        masked = torch.where(valid, metres, math.nan).to(torch.float64)
        frame_offset, frame_span = fit_rows_t(scaling, masked.reshape(1, -1))
        if tile and (height > tile or width > tile):
            result = self._locally_scaled(filled, masked, valid, scaling, tile,
                                          (frame_offset, frame_span), alignment, options)
        else:
            offset, span = frame_offset.float(), frame_span.float()
            net_in = self._net_input((filled - offset) / span, valid)
            result = self._super_resolve(net_in, alignment, options) * span + offset
        if geometry is not None:
            result = move_output_t(result, *move)
            if geometry.decimated and options.keep_samples:
                result = keep_samples_t(result.contiguous(), metres, valid, geometry.phase)
        out_dtype = dtype if out_dtype is None else out_dtype
        return encode_t(result, valid, res.scale, out_dtype), valid

    def eager_forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The resolver's model on one padded batch, as ``_forward_tensor`` runs it."""
        res = self.resolver
        if res.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if res.precision == 'fp32':
            out = res.model(batch)
        else:
            # No autocast weight cache: it must not outlive a CUDA graph capture.
            with torch.autocast(self.device.type, dtype=autocast_dtype(res.precision),
                                cache_enabled=False):
                out = res.model(batch)
        return out.float()

    # ------------------------------------------------------------------ transfers
    def _upload(self, depth: np.ndarray) -> torch.Tensor:
        """The one host-to-device copy: the LR frame as it came (uint16 as its int16 bits,
        which every torch device copies), through pinned memory on CUDA."""
        array = np.ascontiguousarray(depth)
        if array.dtype == np.uint16:
            array = array.view(np.int16)
        host = torch.from_numpy(array)
        if self.device.type != 'cuda':
            return host.to(self.device)
        return host.pin_memory().to(self.device, non_blocking=True)

    def _download(self, *tensors: torch.Tensor) -> List[np.ndarray]:
        """The one device-to-host copy (of each tensor), into pinned memory on CUDA."""
        tensors = tuple(tensor.contiguous() for tensor in tensors)
        if self.device.type != 'cuda':
            return [tensor.numpy() for tensor in tensors]
        hosts = [torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                 for tensor in tensors]
        for host, tensor in zip(hosts, tensors):
            host.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return [host.numpy() for host in hosts]

    def _decode(self, frame: torch.Tensor, dtype: np.dtype, max_depth: Optional[float]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """float32 metres and validity, compared as numpy compares them (see the module)."""
        if dtype == np.uint16:
            millimetres = frame.to(torch.int32) & 0xFFFF
            valid = millimetres > 0
            if max_depth is not None and max_depth > 0:
                valid &= millimetres <= math.floor(max_depth)
            return millimetres.to(torch.float32) / 1000.0, valid
        valid = valid_mask_t(frame)
        if max_depth is not None and max_depth > 0:
            valid &= frame <= max_depth
        return frame.to(torch.float32), valid

    # ------------------------------------------------------------------ the net
    def _net_input(self, normalised: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """:func:`dsr_ros.net_input.make_net_input` for ``(..., h, w)``: channels on dim -3."""
        if self.resolver.in_channels == 1:
            return normalised.unsqueeze(-3)
        return torch.stack([normalised, valid.to(torch.float32)], dim=-3)

    def _forward_once(self, batch: torch.Tensor) -> torch.Tensor:
        """One pass, padded to ``pad_multiple`` (edge replicate) and cropped back."""
        res = self.resolver
        height, width = batch.shape[-2:]
        pad_h, pad_w = (-height) % res.pad_multiple, (-width) % res.pad_multiple
        if pad_h or pad_w:
            batch = F.pad(batch, (0, pad_w, 0, pad_h), mode='replicate')
        out = self.net_forward(batch.contiguous())
        return out[:, 0, :height * res.scale, :width * res.scale]

    def _forward_batch(self, batch: torch.Tensor, alignment: Optional[Tuple[int, int]],
                       passes: int) -> torch.Tensor:
        return average_over_flips_t(self._forward_once, batch, passes, self.resolver.scale,
                                    alignment)

    def _check_stop(self) -> None:
        self.resolver.check_stop()

    # ------------------------------------------------------------------ whole frame
    def _super_resolve(self, image: torch.Tensor, alignment: Optional[Tuple[int, int]],
                       options: RunOptions) -> torch.Tensor:
        """The numpy path's ``_super_resolve``: whole, or in the memory budget's tiles,
        one at a time, ramp-blended."""
        res = self.resolver
        height, width = image.shape[-2:]
        tile = res.memory_tile(height, width, options)

        def forward(part: torch.Tensor) -> torch.Tensor:
            return self._forward_batch(part[None], alignment, options.ensemble_passes)[0]
        if tile == (0, 0) or (height <= tile[0] and width <= tile[1]):
            return forward(image)
        accum = torch.zeros((height * res.scale, width * res.scale), dtype=torch.float32,
                            device=self.device)
        weight = torch.zeros_like(accum)
        blend_tiles(image, tile, res.scale, options.tile_overlap, forward, self._ramp, accum,
                    weight, self._check_stop)
        weight.clamp_(min=1e-12)
        return accum.div_(weight)

    def _ramp(self, shape: Tuple[int, int], ramp: int, inner: Tuple[bool, ...]) -> torch.Tensor:
        key = (shape, ramp, inner)
        if key not in self._ramps:
            self._ramps[key] = torch.from_numpy(ramp_weights(shape, ramp, inner)).to(
                self.device)
        return self._ramps[key]

    # ------------------------------------------------------------------ scaling tiles
    def _locally_scaled(self, filled: torch.Tensor, masked: torch.Tensor, valid: torch.Tensor,
                        scaling: DepthScaling, tile: int,
                        frame: Tuple[torch.Tensor, torch.Tensor],
                        alignment: Optional[Tuple[int, int]], options: RunOptions
                        ) -> torch.Tensor:
        """``local_scaling.run_locally_scaled``: the range fitted per LR tile, outputs blended
        in metres."""
        height, width = filled.shape
        plan = self._plan(height, width, tile, options.tile_overlap)
        lr_index = plan['lr_index']
        count = lr_index.shape[0]
        offsets, spans = fit_rows_t(scaling, masked.reshape(-1)[lr_index].reshape(count, -1))
        empty = torch.isnan(offsets)
        offsets = torch.where(empty, frame[0], offsets).float()[:, None, None]
        spans = torch.where(empty, frame[1], spans).float()[:, None, None]
        tiles = filled.reshape(-1)[lr_index]
        net_in = self._net_input((tiles - offsets) / spans, valid.reshape(-1)[lr_index])
        per_batch = self._tiles_per_batch(plan, count)
        outputs: List[torch.Tensor] = []
        for start in range(0, count, per_batch):
            self._check_stop()
            outputs.append(self._forward_batch(net_in[start:start + per_batch], alignment,
                                               options.ensemble_passes))
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        blended = (out * spans + offsets) * plan['ramps']
        accum = torch.zeros(plan['weight'].numel(), dtype=torch.float32, device=self.device)
        accum.index_add_(0, plan['hr_index'], blended.reshape(-1))
        return accum.view(plan['weight'].shape).div_(plan['weight'])

    def _tiles_per_batch(self, plan: Dict[str, Any], count: int) -> int:
        """Whole rows of tiles per net batch: one row on a CPU (as the numpy path); on CUDA as
        many rows as keep the batch's activations under :data:`TILE_BATCH_BYTES` (all of a
        640x480 frame's for the lite net; a few rows for the paper net at 1280x960)."""
        per_row = plan['per_row']
        if not self.batch_all_tiles:
            return per_row
        res = self.resolver
        tile_h, tile_w = plan['ramps'].shape[1:]
        pad = res.pad_multiple * res.scale
        tile_bytes = (TILE_BYTES_PER_HR_ELEMENT * PRECISION_FACTOR.get(res.precision, 1.0)
                      * res.model.num_channels * -(-tile_h // pad) * pad * -(-tile_w // pad) * pad)
        rows = max(1, int(TILE_BATCH_BYTES // (tile_bytes * per_row)))
        return min(count, rows * per_row)

    def _plan(self, height: int, width: int, tile: int, overlap: int) -> Dict[str, Any]:
        """Per frame shape, once: the tiles' LR gather indices, HR scatter indices, ramps and
        the blend's weight sum (added in the numpy path's tile order)."""
        res = self.resolver
        scale = res.scale
        key = (height, width, tile, scale, overlap)
        if key in self._plans:
            return self._plans[key]
        tile_h, tile_w = min(tile, height), min(tile, width)
        tops = tile_starts(height, tile_h, tile_h - overlap)
        lefts = tile_starts(width, tile_w, tile_w - overlap)
        lr_rows, lr_cols = np.arange(tile_h), np.arange(tile_w)
        hr_rows, hr_cols = np.arange(tile_h * scale), np.arange(tile_w * scale)
        lr_index, hr_index, ramps = [], [], []
        weight = np.zeros((height * scale, width * scale), np.float32)
        for top in tops:
            for left in lefts:
                lr_index.append((top + lr_rows)[:, None] * width + (left + lr_cols)[None, :])
                hr_index.append((top * scale + hr_rows)[:, None] * (width * scale)
                                + (left * scale + hr_cols)[None, :])
                inner = (top > 0, top + tile_h < height, left > 0, left + tile_w < width)
                ramp = ramp_weights((tile_h * scale, tile_w * scale), overlap * scale, inner)
                ramps.append(ramp)
                weight[top * scale:(top + tile_h) * scale,
                       left * scale:(left + tile_w) * scale] += ramp
        np.maximum(weight, 1e-12, out=weight)
        plan = {'lr_index': torch.from_numpy(np.stack(lr_index)).to(self.device),
                'hr_index': torch.from_numpy(np.stack(hr_index).ravel()).to(self.device),
                'ramps': torch.from_numpy(np.stack(ramps)).to(self.device),
                'weight': torch.from_numpy(weight).to(self.device),
                'per_row': len(lefts)}
        self._plans[key] = plan
        return plan
