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
* the self-ensemble (:func:`average_over_flips_t`), the geometry move (:func:`move_output_t`,
  the twin of ``sampling_phase.move_output``) and ``keep_samples``;
* the encoding: ``uint16`` mm (rint, clip to 1..65535, 0 in invalid blocks) or float metres
  (floor ``MIN_VALID_DEPTH_M``, NaN in invalid blocks).

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

import functools
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.self_ensemble import MEMBERS, _placement, check_passes

__all__ = ['TorchFramePipeline', 'average_over_flips_t', 'fill_invalid_t', 'fit_rows_t',
           'row_percentile_t',
           'keep_samples_t', 'move_output_t', 'nearest_valid_index', 'shift_output_t',
           'valid_mask_t']

#: Squared distance standing for "no valid pixel in this column" (int32 arithmetic: with LR
#: frames up to 8192 px wide a real cost stays below it and the sum below 2**31).
_NO_PIXEL = 1 << 30
#: Most int32 elements one chunk of the hole filling's row search allocates (64 MiB).
EDT_CHUNK_ELEMENTS = 1 << 24
#: Activation memory a batch of scaling tiles may take on CUDA (memory_budget's estimate).
TILE_BATCH_BYTES = 2 << 30
#: Smallest depth a valid output pixel may hold, in metres (as ``inference.MIN_VALID_DEPTH_M``).
MIN_VALID_DEPTH_M = 0.001

Forward = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------- building blocks
def valid_mask_t(depth: torch.Tensor) -> torch.Tensor:
    """``dsr_ros.depth_io.valid_mask`` in torch: integers > 0, floats finite and > 0."""
    if not depth.is_floating_point():
        return depth > 0
    return torch.isfinite(depth) & (depth > 0)


def nearest_valid_index(valid: torch.Tensor) -> torch.Tensor:
    """Flat index (``row * W + col``) of each pixel's nearest valid pixel; ``(..., H, W)``.

    The same index as ``scipy.ndimage.distance_transform_edt(~valid, return_indices=True)``,
    ties included, so hole filling matches the numpy path bit for bit. scipy's feature
    transform is separable: along each column it takes the nearest valid row (the upper one on
    a tie), then along each row the column whose candidate is nearest (the leftmost on a tie;
    its Voronoi construction keeps every candidate that can be nearest and stops at the first
    of equals). Here the first stage is two cumulative scans and the second an exact
    ``argmin`` over all columns (``argmin`` returns the first minimum), in row chunks of at
    most :data:`EDT_CHUNK_ELEMENTS`: ``H W^2`` work, a few million for an LR camera frame and
    no data-dependent shapes (no host sync). An image without a valid pixel gets
    in-range indices of no meaning.
    """
    *lead, height, width = valid.shape
    flat = valid.reshape(-1, height, width)
    device = flat.device
    rows = torch.arange(height, device=device, dtype=torch.int32).view(1, height, 1)
    above = torch.where(flat, rows, -1).cummax(dim=1).values
    below = torch.where(flat, rows, _NO_PIXEL).flip(1).cummin(dim=1).values.flip(1)
    has_above, has_below = above >= 0, below < _NO_PIXEL
    use_above = has_above & (~has_below | (rows - above <= below - rows))
    nearest_row = torch.where(use_above, above, below)
    gap = nearest_row - rows
    cost_rows = torch.where(has_above | has_below, gap * gap, _NO_PIXEL).reshape(-1, width)
    cols = torch.arange(width, device=device, dtype=torch.int32)
    across = (cols.view(-1, 1) - cols.view(1, -1)) ** 2  # (pixel column, candidate column)
    best = torch.empty(cost_rows.shape, dtype=torch.long, device=device)
    chunk = max(1, EDT_CHUNK_ELEMENTS // (width * width))
    for start in range(0, cost_rows.shape[0], chunk):
        part = cost_rows[start:start + chunk]
        best[start:start + chunk] = (part[:, None, :] + across[None]).argmin(dim=-1)
    best = best.view(flat.shape)
    best_row = nearest_row.gather(2, best).long().clamp_(0, height - 1)  # in range: no pixel
    return (best_row * width + best).reshape(*lead, height, width)


def fill_invalid_t(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``inference.fill_invalid`` in torch: invalid pixels take their nearest valid one."""
    *lead, height, width = values.shape
    index = nearest_valid_index(valid).reshape(-1, height * width)
    return values.reshape(-1, height * width).gather(1, index).reshape(*lead, height, width)


def fit_rows_t(scaling: DepthScaling, values: torch.Tensor, unit: str = 'm'
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``DepthScaling.fit_rows`` in torch: float64 ``(offsets, spans)`` per row of ``values``
    (``(N, K)``, NaN where invalid; NaN out for a row without a valid value).

    The same float64 operations as numpy's linear percentile, so the fitted ranges agree to
    the bit (a fused multiply-add on a GPU may move the last one).
    """
    if not scaling.accepts(unit):
        raise ValueError(f'this scaling divides {scaling.unit} by {scaling.max_value}; '
                         f'it cannot scale depth in {unit}')
    values = values.to(torch.float64)
    rows = values.shape[0]
    if scaling.mode == 'fixed':
        return (torch.zeros(rows, dtype=torch.float64, device=values.device),
                torch.full((rows,), scaling.max_value, dtype=torch.float64,
                           device=values.device))
    missing = torch.isnan(values)
    ordered = torch.where(missing, math.inf, values).sort(dim=1).values  # invalid last
    count = (~missing).sum(dim=1)
    empty = count == 0
    last = (count - 1).clamp(min=0)
    low = row_percentile_t(ordered, last, scaling.low_percentile)
    high = row_percentile_t(ordered, last, scaling.high_percentile)
    span = torch.maximum(high - low, scaling.min_relative_span * high.abs())
    degenerate = ~(span > 1e-6 * high.abs().clamp(min=1e-6))
    span = torch.where(degenerate, high.abs().clamp(min=1e-6), span)
    nan = torch.full_like(low, math.nan)
    return torch.where(empty, nan, low), torch.where(empty, nan, span)


def row_percentile_t(ordered: torch.Tensor, last: torch.Tensor,
                     percentile: Union[float, torch.Tensor]) -> torch.Tensor:
    """``depth_scaling._row_percentile`` in torch (numpy's linear method, same formula) of each
    row of ``ordered`` (sorted, ``last + 1`` valid values first); ``percentile`` one number
    or one per row."""
    percentile = torch.as_tensor(percentile, dtype=torch.float64, device=ordered.device)
    position = last.to(torch.float64) * (percentile / 100.0)
    below = torch.floor(position)
    gamma = position - below
    index = below.long()
    lower = ordered.gather(1, index[:, None])[:, 0]
    upper = ordered.gather(1, torch.minimum(index + 1, last)[:, None])[:, 0]
    difference = upper - lower
    return torch.where(gamma >= 0.5, upper - difference * (1 - gamma),
                       lower + difference * gamma)


@functools.lru_cache(maxsize=64)
def _shift_index(length: int, amount: int, device: torch.device) -> torch.Tensor:
    return (torch.arange(length, device=device) - amount).clamp_(0, length - 1)


@functools.lru_cache(maxsize=64)
def _interp_index(length: int, amount: float, device: torch.device
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``move_output``'s ``low``, ``high`` and float32 ``frac`` for one axis (computed as
    numpy computes them, once per shape and move)."""
    source = np.clip(np.arange(length, dtype=np.float64) - amount, 0, length - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, length - 1)
    frac = (source - low).astype(np.float32)
    return (torch.from_numpy(low).to(device), torch.from_numpy(high).to(device),
            torch.from_numpy(frac).to(device))


def shift_output_t(hr: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``sampling_phase.shift_output`` in torch: moved by whole pixels, the border repeats."""
    if rows == 0 and cols == 0:
        return hr
    height, width = hr.shape[-2:]
    if abs(rows) >= height or abs(cols) >= width:
        raise ValueError(f'cannot shift a {height}x{width} image by ({rows}, {cols})')
    out = hr.index_select(-2, _shift_index(height, rows, hr.device)) if rows else hr
    return out.index_select(-1, _shift_index(width, cols, hr.device)) if cols else out


def move_output_t(hr: torch.Tensor, rows: float, cols: float) -> torch.Tensor:
    """``sampling_phase.move_output`` in torch: ``out[y, x] = hr(y - rows, x - cols)`` by
    separable linear interpolation, coordinates clamped (the border repeats); whole-pixel
    moves are exact shifts. Same order of operations as numpy (rows, then columns;
    ``a (1 - f) + b f`` in float32)."""
    rows, cols = float(rows), float(cols)
    if rows.is_integer() and cols.is_integer():
        return shift_output_t(hr, int(rows), int(cols))
    out = hr
    for dim, amount in ((-2, rows), (-1, cols)):
        if amount == 0:
            continue
        low, high, frac = _interp_index(out.shape[dim], amount, out.device)
        shape = [1] * out.dim()
        shape[dim] = -1
        frac = frac.view(shape)
        out = out.index_select(dim, low) * (1 - frac) + out.index_select(dim, high) * frac
    return out


def keep_samples_t(hr: torch.Tensor, lr: torch.Tensor, valid: torch.Tensor,
                   phase: Sequence[int]) -> torch.Tensor:
    """``sampling_phase.keep_samples`` in torch, in place: each valid LR pixel written back
    at its HR position ``s i + phase``. Returns ``hr``."""
    scale = hr.shape[-2] // lr.shape[-2]
    if scale < 1 or tuple(hr.shape[-2:]) != (lr.shape[0] * scale, lr.shape[1] * scale):
        raise ValueError(f'an HR image {tuple(hr.shape)} is not an integer multiple of '
                         f'{tuple(lr.shape)}')
    row, col = int(phase[0]), int(phase[1])
    samples = hr[..., row::scale, col::scale]
    samples.copy_(torch.where(valid, lr, samples))
    return hr


def _to_member_t(batch: torch.Tensor, member: Tuple[bool, bool, bool]) -> torch.Tensor:
    transpose, rows, cols = member
    if transpose:
        batch = batch.transpose(-1, -2)
    dims = [d for d, on in ((-2, rows), (-1, cols)) if on]
    if dims:
        batch = batch.flip(dims)
    return batch.contiguous()


def _from_member_t(output: torch.Tensor, member: Tuple[bool, bool, bool]) -> torch.Tensor:
    transpose, rows, cols = member
    dims = [d for d, on in ((-2, rows), (-1, cols)) if on]
    if dims:
        output = output.flip(dims)
    return output.transpose(-1, -2) if transpose else output


def average_over_flips_t(forward: Forward, batch: torch.Tensor, passes: int, scale: int,
                         alignment: Optional[Sequence[int]] = None) -> torch.Tensor:
    """``self_ensemble.average_over_flips`` in torch (same members, order and placement)."""
    passes = check_passes(passes)
    if passes == 1:
        return forward(batch)
    target = None if alignment is None else (int(alignment[0]), int(alignment[1]))
    total: Optional[torch.Tensor] = None
    for member in MEMBERS[:passes]:
        output = _from_member_t(forward(_to_member_t(batch, member)), member)
        if target is not None:
            row, col = _placement(member, target, scale)
            output = shift_output_t(output, target[0] - row, target[1] - col)
        total = output.clone(memory_format=torch.contiguous_format) if total is None \
            else total.add_(output)
    return total.div_(passes)


# ---------------------------------------------------------------------------- the pipeline
class TorchFramePipeline:
    """The frame path of a :class:`dsr_ros.inference.DepthSuperResolver`, in torch.

    Args:
        resolver: the resolver whose settings (device, scaling, tiles, precision, ensemble,
            geometry, memory budget, stop event) and model this runs with.
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
    @torch.inference_mode()
    def run(self, depth: np.ndarray, max_depth: Optional[float] = None,
            geometry: Any = None) -> np.ndarray:
        """What ``DepthSuperResolver.run`` returns for the same arguments, computed in torch:
        the checks on the host, one copy in, :meth:`device_frame` (replayed from a CUDA graph
        per frame shape and settings when ``frame_graphs`` is set and no memory budget
        applies), one copy out."""
        res = self.resolver
        depth, geometry = res.accept_frame(depth, geometry)
        move = res.output_move(geometry) if geometry is not None else None
        frame = self._upload(depth)

        def device_frame(frame: torch.Tensor) -> torch.Tensor:
            return self.device_frame(frame, depth.dtype, max_depth, geometry, move)
        if self.frame_graphs is not None and not res.memory.max_memory_mb:
            self._check_stop()
            settings = self._settings(depth.dtype, max_depth, geometry, move)
            encoded = self.frame_graphs(frame, key=settings, forward=device_frame)
        else:
            encoded = device_frame(frame)
        out = self._download(encoded)
        return out.view(np.uint16) if depth.dtype == np.uint16 else out

    def device_frame(self, frame: torch.Tensor, dtype: np.dtype, max_depth: Optional[float],
                     geometry: Any, move: Optional[Tuple[float, float]]) -> torch.Tensor:
        """Everything between the two copies, with no host sync and only shapes fixed by the
        frame's shape and the settings, so that it can be captured as one CUDA graph. A frame
        without valid depth runs too (its every block is invalid in the output)."""
        res = self.resolver
        height, width = frame.shape
        metres, valid = self._decode(frame, dtype, max_depth)
        scaling = res.input_scaling()
        tile = res.fit_tile()
        alignment = res.point_alignment if geometry is not None and geometry.decimated else None
        filled = fill_invalid_t(torch.where(valid, metres, 0.0), valid)
        masked = torch.where(valid, metres, math.nan).to(torch.float64)
        frame_offset, frame_span = fit_rows_t(scaling, masked.reshape(1, -1))
        if tile and (height > tile or width > tile):
            result = self._locally_scaled(filled, masked, valid, scaling, tile,
                                          (frame_offset, frame_span), alignment)
        else:
            offset, span = frame_offset.float(), frame_span.float()
            net_in = self._net_input((filled - offset) / span, valid)
            result = self._super_resolve(net_in, alignment) * span + offset
        if geometry is not None:
            result = move_output_t(result, *move)
            if geometry.decimated and res.keep_samples:
                result = keep_samples_t(result.contiguous(), metres, valid, geometry.phase)
        return self._encode(result, valid, dtype)

    def _settings(self, dtype: np.dtype, max_depth: Optional[float], geometry: Any,
                  move: Optional[Tuple[float, float]]) -> Tuple[Any, ...]:
        """Everything besides the frame's shape that a captured frame graph depends on (the
        node may change some of it at run time; a change means another graph)."""
        res = self.resolver
        return (str(np.dtype(dtype)), max_depth, None if geometry is None else geometry.key(),
                move, res.input_normalization, res.max_value, res.tile_size, res.tile_overlap,
                res.scaling_tile, res.pad_multiple, res.ensemble_passes, res.keep_samples,
                res.point_alignment, res.precision, res.channels_last, id(res.model),
                id(self.net_forward))

    def eager_forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The resolver's model on one padded batch, as ``_forward_tensor`` runs it."""
        res = self.resolver
        if res.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if res.precision == 'fp32':
            out = res.model(batch)
        else:
            from dsr_ros.precision import autocast_dtype
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

    def _download(self, tensor: torch.Tensor) -> np.ndarray:
        """The one device-to-host copy, into pinned memory on CUDA."""
        tensor = tensor.contiguous()
        if self.device.type != 'cuda':
            return tensor.numpy()
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        host.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host.numpy()

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
        """``inference.make_net_input`` for ``(..., h, w)``: channels on dim -3."""
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

    def _forward_batch(self, batch: torch.Tensor, alignment: Optional[Tuple[int, int]]
                       ) -> torch.Tensor:
        res = self.resolver
        return average_over_flips_t(self._forward_once, batch, res.ensemble_passes, res.scale,
                                    alignment)

    def _check_stop(self) -> None:
        event = self.resolver.stop_event
        if event is not None and event.is_set():
            from dsr_ros.inference import InferenceStopped
            raise InferenceStopped('stopped between tiles')

    # ------------------------------------------------------------------ whole frame
    def _super_resolve(self, image: torch.Tensor, alignment: Optional[Tuple[int, int]]
                       ) -> torch.Tensor:
        """``_super_resolve``: whole, or in the memory budget's tiles."""
        res = self.resolver
        height, width = image.shape[-2:]
        tile = res.memory.tile_shape(
            height, width, scale=res.scale, channels=res.model.num_channels,
            blocks=res.model.num_blocks, precision=res.precision, overlap=res.tile_overlap,
            requested=res.tile_size, cpu=self.device.type == 'cpu')
        if tile != (0, 0) and (height > tile[0] or width > tile[1]):
            return self._run_tiled(image, tile, alignment)
        return self._forward_batch(image[None], alignment)[0]

    def _run_tiled(self, image: torch.Tensor, tile: Tuple[int, int],
                   alignment: Optional[Tuple[int, int]]) -> torch.Tensor:
        """``_run_tiled``: one memory-budget tile at a time, ramp-blended."""
        from dsr_ros.inference import _tile_starts
        res = self.resolver
        height, width = image.shape[-2:]
        scale, overlap = res.scale, res.tile_overlap
        tile_h, tile_w = tile
        accum = torch.zeros((height * scale, width * scale), dtype=torch.float32,
                            device=self.device)
        weight = torch.zeros_like(accum)
        for top in _tile_starts(height, tile_h, tile_h - overlap):
            for left in _tile_starts(width, tile_w, tile_w - overlap):
                self._check_stop()
                bottom, right = min(top + tile_h, height), min(left + tile_w, width)
                out = self._forward_batch(image[None, :, top:bottom, left:right], alignment)[0]
                ramp = self._ramp(tuple(out.shape), overlap * scale,
                                  (top > 0, bottom < height, left > 0, right < width))
                rows = slice(top * scale, bottom * scale)
                cols = slice(left * scale, right * scale)
                accum[rows, cols] += out * ramp
                weight[rows, cols] += ramp
        weight.clamp_(min=1e-12)
        return accum.div_(weight)

    def _ramp(self, shape: Tuple[int, int], ramp: int, inner: Tuple[bool, ...]) -> torch.Tensor:
        key = (shape, ramp, inner)
        if key not in self._ramps:
            from dsr_ros.inference import _ramp_weights
            self._ramps[key] = torch.from_numpy(_ramp_weights(shape, ramp, inner)).to(
                self.device)
        return self._ramps[key]

    # ------------------------------------------------------------------ scaling tiles
    def _locally_scaled(self, filled: torch.Tensor, masked: torch.Tensor, valid: torch.Tensor,
                        scaling: DepthScaling, tile: int,
                        frame: Tuple[torch.Tensor, torch.Tensor],
                        alignment: Optional[Tuple[int, int]]) -> torch.Tensor:
        """``_run_locally_scaled``: the range fitted per LR tile, outputs blended in metres."""
        height, width = filled.shape
        plan = self._plan(height, width, tile)
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
            outputs.append(self._forward_batch(net_in[start:start + per_batch], alignment))
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
        from dsr_ros.memory_budget import PRECISION_FACTOR, TILE_BYTES_PER_HR_ELEMENT
        res = self.resolver
        tile_h, tile_w = plan['ramps'].shape[1:]
        pad = res.pad_multiple * res.scale
        tile_bytes = (TILE_BYTES_PER_HR_ELEMENT * PRECISION_FACTOR.get(res.precision, 1.0)
                      * res.model.num_channels * -(-tile_h // pad) * pad * -(-tile_w // pad) * pad)
        rows = max(1, int(TILE_BATCH_BYTES // (tile_bytes * per_row)))
        return min(count, rows * per_row)

    def _plan(self, height: int, width: int, tile: int) -> Dict[str, Any]:
        """Per frame shape, once: the tiles' LR gather indices, HR scatter indices, ramps and
        the blend's weight sum (added in the numpy path's tile order)."""
        from dsr_ros.inference import _ramp_weights, _tile_starts
        res = self.resolver
        scale, overlap = res.scale, res.tile_overlap
        key = (height, width, tile, scale, overlap)
        if key in self._plans:
            return self._plans[key]
        tile_h, tile_w = min(tile, height), min(tile, width)
        tops = _tile_starts(height, tile_h, tile_h - overlap)
        lefts = _tile_starts(width, tile_w, tile_w - overlap)
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
                ramp = _ramp_weights((tile_h * scale, tile_w * scale), overlap * scale, inner)
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

    # ------------------------------------------------------------------ encoding
    def _encode(self, result: torch.Tensor, valid: torch.Tensor, dtype: np.dtype
                ) -> torch.Tensor:
        """``_encode``: metres -> the input's dtype and unit, invalid LR pixels' blocks
        invalid, on the device (uint16 as its int16 bits, which travel back as they are)."""
        scale = self.resolver.scale
        height, width = valid.shape
        blocks = ~valid[:, None, :, None]
        if dtype == np.uint16:
            millimetres = (result * 1000.0).round_().clamp_(1, 65535).to(torch.int32)
            bits = torch.where(millimetres >= 32768, millimetres - 65536,
                               millimetres).to(torch.int16)
            bits.view(height, scale, width, scale).masked_fill_(blocks, 0)
            return bits
        out = result.clamp_min(MIN_VALID_DEPTH_M).contiguous()
        if dtype == np.float64:
            out = out.to(torch.float64)
        out.view(height, scale, width, scale).masked_fill_(blocks, math.nan)
        return out
