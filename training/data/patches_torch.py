"""Sensor-degraded training batches drawn on the device from in-memory HR frames.

Why: :class:`training.data.patches.PatchDataset` builds one patch per call on CPU workers
(crop, metric range, :class:`SensorDegradation`, hole filling, scaling); on a GPU the card
waits for them. :class:`DevicePatchSampler` does the same steps for a whole batch in torch on
the device: the HR frames live there (hole-filled once, padded to one tensor), crops are
gathered, and degradation, hole filling and scaling are the batched twins
(:mod:`training.data.sensor_degradation_torch`, :mod:`dsr_ros.frame_pipeline_torch`).

It mirrors ``PatchDataset``'s sensor path: the sample drawn by area, the crop (a multiple of the
scale) the first of 10 with ``min_valid_ratio`` valid pixels or else the best of them, a
180-degree rotation with probability 1/2, metric units kept and others mapped to a random
robot range (:data:`NEAR_RANGE_M`, :data:`EXTENT_RANGE_M`), a patch without any valid LR pixel
replaced by the clean box average, the scaling fitted on the valid LR pixels (with the optional
``scaling_jitter``), and a loss mask of valid HR pixels under a valid LR pixel. Random numbers
come from one ``torch.Generator`` on the device, so a batch is reproducible from its seed, but
the patches are not those ``PatchDataset`` draws for the same seed.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dsr_ros.depth_scaling import SENSOR_SCALING, DepthScaling
from dsr_ros.frame_ops_torch import fill_invalid_t, fit_rows_t
from dsr_ros.net_input import fill_invalid
from training.data.patches import EXTENT_RANGE_M, METRIC_UNITS, NEAR_RANGE_M
from training.data.sample import RGBDSample
from training.data.sensor_degradation import SensorDegradation
from training.data.sensor_degradation_torch import TorchSensorDegradation

__all__ = ['CANDIDATES', 'DevicePatchSampler']

#: Crops tried per patch for enough valid pixels (``PatchDataset._draw``'s tries).
CANDIDATES = 10


class DevicePatchSampler:
    """Batches ``{'lr', 'hr', 'valid'}`` as ``PatchDataset`` items stacked (sensor path).

    Args:
        samples: HR sources; those smaller than a patch are skipped.
        scale, patch_size, min_valid_ratio, rotate180, sensor, scaling, in_channels,
        scaling_jitter: as for ``PatchDataset`` with ``degradation: sensor``.
        device: where the frames live and the batches are made.
    """

    def __init__(self, samples: Sequence[RGBDSample], scale: int, patch_size: int,
                 device: torch.device, *, min_valid_ratio: float = 0.9,
                 rotate180: bool = True, sensor: Optional[SensorDegradation] = None,
                 scaling: Optional[DepthScaling] = None, in_channels: int = 2,
                 scaling_jitter: float = 1.0) -> None:
        if patch_size % scale:
            raise ValueError(f'patch_size {patch_size} must be a multiple of scale {scale}')
        usable = [s for s in samples if min(s.depth.shape) >= patch_size]
        if not usable:
            raise ValueError(f'no sample is at least {patch_size}px among {len(samples)}')
        if scaling_jitter < 1.0:
            raise ValueError(f'scaling_jitter must be >= 1, got {scaling_jitter}')
        self.scale, self.patch_size = int(scale), int(patch_size)
        self.device = torch.device(device)
        self.min_valid_ratio, self.rotate180 = float(min_valid_ratio), bool(rotate180)
        self.degradation = TorchSensorDegradation(sensor)
        self.scaling = scaling or SENSOR_SCALING
        self.in_channels, self.scaling_jitter = int(in_channels), float(scaling_jitter)
        height = max(s.depth.shape[0] for s in usable)
        width = max(s.depth.shape[1] for s in usable)
        depth = np.zeros((len(usable), height, width), np.float32)
        valid = np.zeros((len(usable), height, width), bool)
        for index, sample in enumerate(usable):
            rows, cols = sample.depth.shape
            depth[index, :rows, :cols] = fill_invalid(sample.depth.astype(np.float32),
                                                      sample.valid)
            valid[index, :rows, :cols] = sample.valid
        self.depth = torch.from_numpy(depth).to(self.device)
        self.valid = torch.from_numpy(valid).to(self.device)
        # Valid-pixel counts of any crop from four lookups (a summed-area table).
        table = F.pad(torch.from_numpy(valid).to(torch.float64).cumsum(1).cumsum(2), (1, 0, 1, 0))
        self.valid_table = table.to(self.device)
        self.shapes = torch.tensor([s.depth.shape for s in usable], device=self.device)
        areas = torch.tensor([float(s.depth.size) for s in usable], dtype=torch.float64)
        self.weights = (areas / areas.sum()).to(self.device)
        self.metric_factor = torch.tensor([METRIC_UNITS.get(s.unit, 0.0) for s in usable],
                                          device=self.device)
        self.disparity = torch.tensor([s.unit == 'disparity_8bit' for s in usable],
                                      device=self.device)
        self.names = [s.name for s in usable]

    def batch(self, size: int, generator: torch.Generator) -> Dict[str, torch.Tensor]:
        """One batch of ``size`` patches; ``generator`` lives on the sampler's device."""
        which, top, left = self._draw(size, generator)
        patch = self.patch_size
        span = torch.arange(patch, device=self.device)
        rows = (top[:, None] + span)[:, :, None]
        cols = (left[:, None] + span)[:, None, :]
        frames = which[:, None, None]
        hr, valid = self.depth[frames, rows, cols], self.valid[frames, rows, cols]
        if self.rotate180:
            turn = (torch.rand(size, generator=generator, device=self.device) < 0.5)[:, None, None]
            hr = torch.where(turn, hr.flip((1, 2)), hr)
            valid = torch.where(turn, valid.flip((1, 2)), valid)
        hr_m = self._metric(hr, valid, which, generator)
        degraded = self.degradation.apply(hr_m, valid, self.scale, generator)
        lr_m, lr_valid, target = degraded.depth, degraded.valid, degraded.target
        empty = ~lr_valid.flatten(1).any(dim=1)[:, None, None]
        lr_m = torch.where(empty, F.avg_pool2d(target[:, None], self.scale)[:, 0], lr_m)
        lr_valid = lr_valid | empty
        offsets, spans = fit_rows_t(self.scaling,
                                    torch.where(lr_valid, lr_m, math.nan).flatten(1), 'm')
        if self.scaling.mode == 'range' and self.scaling_jitter > 1.0:
            uniform = torch.rand(2, size, generator=generator, device=self.device,
                                 dtype=torch.float64)
            factor = torch.exp(uniform[0] * math.log(self.scaling_jitter))
            offsets = offsets - uniform[1] * (factor - 1.0) * spans
            spans = spans * factor
        offsets = offsets.float()[:, None, None]
        spans = spans.float()[:, None, None]
        filled = fill_invalid_t(torch.where(lr_valid, lr_m, 0.0), lr_valid)
        lr_in = ((filled - offsets) / spans)[:, None]
        if self.in_channels == 2:
            lr_in = torch.cat([lr_in, lr_valid[:, None].to(torch.float32)], dim=1)
        under_valid = lr_valid.repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)
        loss_valid = valid[:, :under_valid.shape[1], :under_valid.shape[2]] & under_valid
        return {'lr': lr_in, 'hr': ((target - offsets) / spans)[:, None],
                'valid': loss_valid[:, None].to(torch.float32)}

    def _draw(self, size: int, generator: torch.Generator):
        """(sample, top, left) per patch: the first of :data:`CANDIDATES` crops with enough
        valid pixels, else the one with the most."""
        patch, scale = self.patch_size, self.scale
        which = torch.multinomial(self.weights, size * CANDIDATES, replacement=True,
                                  generator=generator).view(size, CANDIDATES)
        limits = (self.shapes[which] - patch) // scale + 1  # (size, candidates, 2)
        uniform = torch.rand(limits.shape, generator=generator, device=self.device)
        corner = (uniform * limits).long().clamp(max=limits - 1) * scale
        top, left = corner[..., 0], corner[..., 1]
        table = self.valid_table
        count = (table[which, top + patch, left + patch] - table[which, top, left + patch]
                 - table[which, top + patch, left] + table[which, top, left])
        ratio = count / float(patch * patch)
        good = ratio >= self.min_valid_ratio
        pick = torch.where(good.any(dim=1), good.to(torch.uint8).argmax(dim=1),
                           ratio.argmax(dim=1))[:, None]
        return (which.gather(1, pick)[:, 0], top.gather(1, pick)[:, 0],
                left.gather(1, pick)[:, 0])

    def _metric(self, hr: torch.Tensor, valid: torch.Tensor, which: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """``patches.random_metric_range`` per patch."""
        factor = self.metric_factor[which][:, None, None]
        some = valid.flatten(1).any(dim=1)[:, None, None]
        use = valid | ~some
        low = torch.where(use, hr, math.inf).amin(dim=(1, 2), keepdim=True)
        high = torch.where(use, hr, -math.inf).amax(dim=(1, 2), keepdim=True)
        unit_range = (hr - low) / (high - low).clamp(min=1e-6)
        unit_range = torch.where(self.disparity[which][:, None, None], 1.0 - unit_range,
                                 unit_range)
        uniform = torch.rand(2, hr.shape[0], generator=generator, device=self.device)
        near = NEAR_RANGE_M[0] + (NEAR_RANGE_M[1] - NEAR_RANGE_M[0]) * uniform[0]
        log_low, log_high = math.log(EXTENT_RANGE_M[0]), math.log(EXTENT_RANGE_M[1])
        extent = torch.exp(log_low + (log_high - log_low) * uniform[1])
        mapped = near[:, None, None] + unit_range.clamp(0.0, 1.0) * extent[:, None, None]
        return torch.where(factor > 0, hr * factor, mapped).to(torch.float32)
