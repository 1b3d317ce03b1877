"""The numpy pipeline's range scaling fitted per LR tile, the tiles blended in metres.

Why: the sensor models learn on 96-px HR patches, whose depth range is a patch's, not a room's;
fitted over a whole frame the same scaling squeezes a wall's detail into a small part of the
net's input range, which costs 3-10 % MAD (measured on the sensor suite's validation split).
The torch twin is ``TorchFramePipeline._locally_scaled`` (:mod:`dsr_ros.frame_pipeline_torch`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from dsr_ros.depth_scaling import Affine, DepthScaling
from dsr_ros.net_input import fill_holes, make_net_input
from dsr_ros.run_options import RunOptions
from dsr_ros.tiling import ramp_weights, tile_affines, tile_starts

__all__ = ['run_locally_scaled']


@torch.inference_mode()
def run_locally_scaled(resolver: Any, metres: np.ndarray, valid: np.ndarray,
                       scaling: DepthScaling, tile: int, alignment: Optional[Tuple[int, int]],
                       options: RunOptions) -> np.ndarray:
    """HR metres of ``resolver``'s net with the range fitted per ``tile`` x ``tile`` LR tile.

    Holes are filled once over the frame; the tiles' ranges are fitted
    in one vectorised pass (per-tile ``np.percentile`` calls were most of a GPU frame's
    time); a tile without a valid pixel (its output is invalid anyway) takes the frame's
    scaling. Each row of equal tiles is one batch; the tiles are blended on the resolver's
    device (on a GPU no tile comes back to the host); the stop event is checked between
    rows.
    """
    height, width = metres.shape
    scale, overlap = resolver.scale, options.tile_overlap
    tile_h, tile_w = min(tile, height), min(tile, width)
    filled = fill_holes(metres, valid)
    frame_affine = scaling.fit(metres[valid], 'm')
    tops = tile_starts(height, tile_h, tile_h - overlap)
    lefts = tile_starts(width, tile_w, tile_w - overlap)
    offsets, spans = tile_affines(metres, valid, scaling, tops, lefts, (tile_h, tile_w),
                                  frame_affine)
    ramps: Dict[Tuple[bool, ...], torch.Tensor] = {}  # at most 9 kinds of tile position
    accum = torch.zeros((height * scale, width * scale), dtype=torch.float32,
                        device=resolver.device)
    weight = torch.zeros_like(accum)
    for row, top in enumerate(tops):
        resolver.check_stop()
        rows = slice(top, top + tile_h)
        affines = [Affine(float(offsets[row, col]), float(spans[row, col]))
                   for col in range(len(lefts))]
        inputs = [make_net_input(affine.forward(filled[rows, left:left + tile_w]),
                                 valid[rows, left:left + tile_w], resolver.in_channels)
                  for affine, left in zip(affines, lefts)]
        outputs = resolver.forward_batch_on_device(np.stack(inputs), alignment,
                                                   options.ensemble_passes)
        for left, affine, out in zip(lefts, affines, outputs):
            inner = (top > 0, top + tile_h < height, left > 0, left + tile_w < width)
            if inner not in ramps:
                ramps[inner] = torch.from_numpy(
                    ramp_weights(tuple(out.shape), overlap * scale, inner)).to(resolver.device)
            ramp = ramps[inner]
            hr_rows = slice(top * scale, (top + tile_h) * scale)
            hr_cols = slice(left * scale, (left + tile_w) * scale)
            # affine.inverse and the ramp, in place, then into the frame
            accum[hr_rows, hr_cols] += out.mul_(affine.span).add_(affine.offset).mul_(ramp)
            weight[hr_rows, hr_cols] += ramp
    weight.clamp_(min=1e-12)
    accum /= weight
    return accum.cpu().numpy()
