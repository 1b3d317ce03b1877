"""Random HR/LR training patches, deterministic under a seed.

Each item is drawn from a generator seeded by ``(seed, epoch, index)``, so a run resumed in the
middle of an epoch sees exactly the patches an uninterrupted run would, whatever the number of
data-loader workers.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from dsr_ros.baselines import upsample_nearest
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_scaling import SENSOR_SCALING, Affine, DepthScaling
from dsr_ros.net_input import fill_invalid, make_net_input, prepare_net_input
from training.data.degradation import add_sensor_noise, degrade
from training.data.sample import RGBDSample
from training.data.sensor_degradation import SensorDegradation

__all__ = ['METRIC_UNITS', 'PatchDataset', 'normalization_range', 'random_metric_range']

#: Units whose values are real distances (metres per unit), kept metric in sensor training.
METRIC_UNITS = {'metre': 1.0, 'millimetre': 0.001}
#: Robot ranges (metres) non-metric patches are mapped to: nearest point and depth extent.
NEAR_RANGE_M = (0.3, 3.0)
EXTENT_RANGE_M = (0.1, 5.0)


def normalization_range(sample: RGBDSample, mode: str = 'minmax') -> tuple:
    """``(offset, span)`` mapping the sample's depth to [0, 1].

    ``minmax`` uses the image's valid range (unit-free, what the node does per frame);
    ``fixed`` divides 8-bit disparity by 255 (the paper) and other units by their maximum.
    """
    values = sample.depth[sample.valid]
    if values.size == 0:
        raise ValueError(f'{sample.name}: no valid depth pixels')
    if mode == 'fixed':
        span = 255.0 if sample.unit == 'disparity_8bit' else float(values.max())
        return 0.0, span
    if mode != 'minmax':
        raise ValueError(f'unknown normalization {mode!r}, expected minmax or fixed')
    low, high = float(values.min()), float(values.max())
    return low, max(high - low, 1e-6)


def random_metric_range(hr: np.ndarray, valid: np.ndarray, unit: str,
                        rng: np.random.Generator) -> np.ndarray:
    """Map an HR patch to metres: metric units as they are, others to a random robot range.

    Disparity and relative depth keep their shape under an affine map onto ``[near, near +
    extent]`` (near uniform in :data:`NEAR_RANGE_M`, extent log-uniform in
    :data:`EXTENT_RANGE_M`); disparity is flipped so that large disparity is near.
    """
    if unit in METRIC_UNITS:
        return (hr * METRIC_UNITS[unit]).astype(np.float32)
    values = hr[valid] if valid.any() else hr.ravel()
    low, high = float(values.min()), float(values.max())
    unit_range = (hr - low) / max(high - low, 1e-6)
    if unit == 'disparity_8bit':
        unit_range = 1.0 - unit_range
    near = rng.uniform(*NEAR_RANGE_M)
    extent = float(np.exp(rng.uniform(*np.log(EXTENT_RANGE_M))))
    return (near + np.clip(unit_range, 0.0, 1.0) * extent).astype(np.float32)


class PatchDataset(Dataset):
    """Random ``patch_size`` HR crops with their degraded LR inputs.

    Args:
        samples: HR sources (see :class:`RGBDSample`); images smaller than a patch are skipped.
        scale: SR factor; patches and their offsets are multiples of it.
        patch_size: HR patch edge (paper: 256).
        patches_per_epoch: dataset length.
        min_valid_ratio: re-draw patches with fewer valid HR pixels than this.
        rotate180: augment by 180-degree rotation with probability 1/2.
        degradation: OpenCV kernel name (see :mod:`training.data.degradation`), or ``sensor``
            for the randomised sensor model of :mod:`training.data.sensor_degradation` (depth
            in metres, scaled by ``scaling``).
        normalization: ``minmax`` or ``fixed`` (see :func:`normalization_range`), for the
            research degradations.
        sensor: the sensor model's ranges (``degradation: sensor``); defaults when None.
        scaling: how sensor patches are scaled for the net (default: metres / 10).
        scaling_jitter: with a ``range`` scaling, widen each patch's range by a random factor
            in [1, scaling_jitter] (a frame's range is wider than a patch's).
        in_channels: 1 (depth) or 2 (depth and validity mask) in ``item['lr']``.
        noise_std, hole_fraction: optional sensor-like corruption of the LR input.
        require_rgb: keep only samples with RGB (for DENet and the cross-task stage).
        seed: base seed.
        given_lr: (``sensor``) the input is each sample's own LR frame (``lr_inputs[scale]``,
            a real camera's, e.g. a bag's LR topic) under the HR patch, scaled as the node
            scales it, instead of the sensor model's degradation; no 180-degree rotation
            (it would move a decimated stream's samples to the other corner of their blocks).
    """

    def __init__(self, samples: Sequence[RGBDSample], scale: int, patch_size: int = 256,
                 patches_per_epoch: int = 10000, min_valid_ratio: float = 0.9,
                 rotate180: bool = True, degradation: str = 'cubic',
                 normalization: str = 'minmax', noise_std: float = 0.0,
                 hole_fraction: float = 0.0, require_rgb: bool = False, seed: int = 0,
                 sensor: Optional[SensorDegradation] = None,
                 scaling: Optional[DepthScaling] = None, in_channels: int = 1,
                 scaling_jitter: float = 1.0, given_lr: bool = False) -> None:
        if patch_size % scale:
            raise ValueError(f'patch_size {patch_size} must be a multiple of scale {scale}')
        if given_lr:
            _check_given(samples, scale, degradation)
        usable = [s for s in samples
                  if min(s.depth.shape) >= patch_size and (s.rgb is not None or not require_rgb)]
        if not usable:
            raise ValueError(f'no sample is at least {patch_size}px'
                             + (' with RGB' if require_rgb else '') + f' among {len(samples)}')
        self.scale = int(scale)
        self.patch_size = int(patch_size)
        self.length = int(patches_per_epoch)
        self.min_valid_ratio = float(min_valid_ratio)
        self.rotate180 = bool(rotate180)
        self.degradation = degradation
        self.noise_std = float(noise_std)
        self.hole_fraction = float(hole_fraction)
        self.seed = int(seed)
        self.in_channels = int(in_channels)
        self.sensor = (sensor or SensorDegradation()) if degradation == 'sensor' else None
        self.scaling = scaling or SENSOR_SCALING
        if scaling_jitter < 1.0:
            raise ValueError(f'scaling_jitter must be >= 1, got {scaling_jitter}')
        self.scaling_jitter = float(scaling_jitter)
        self.epoch = 0
        self._units: List[str] = [s.unit for s in usable]
        self.names: List[str] = [s.name for s in usable]
        self._depth: List[np.ndarray] = []
        self._valid: List[np.ndarray] = []
        self._rgb: List[Optional[np.ndarray]] = []
        self._round: List[bool] = []
        self._range: List[tuple] = []
        self._lr: List[Optional[np.ndarray]] = [
            s.lr_inputs[self.scale] if given_lr else None for s in usable]
        for sample in usable:
            self._depth.append(fill_invalid(sample.depth.astype(np.float32, copy=False),
                                            sample.valid))
            self._valid.append(sample.valid)
            self._rgb.append(sample.rgb)
            self._round.append(sample.unit == 'disparity_8bit')
            self._range.append(normalization_range(sample, normalization))
        areas = np.array([d.size for d in self._depth], dtype=np.float64)
        self._weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Select the patch set of ``epoch`` (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        which, top, left = self._draw(rng)
        size = self.patch_size
        rows, cols = slice(top, top + size), slice(left, left + size)
        hr = self._depth[which][rows, cols]
        valid = self._valid[which][rows, cols]
        rgb = self._rgb[which]
        rgb = rgb[rows, cols] if rgb is not None else None
        lr_given = self._lr[which]
        if self.rotate180 and lr_given is None and rng.random() < 0.5:
            hr, valid = hr[::-1, ::-1], valid[::-1, ::-1]
            rgb = rgb[::-1, ::-1] if rgb is not None else None
        if lr_given is not None:
            lr_given = lr_given[top // self.scale:(top + size) // self.scale,
                                left // self.scale:(left + size) // self.scale]
            hr_n, lr_in, lr_valid = self._given_pair(hr, lr_given, self._units[which], rng)
            valid = valid & upsample_nearest(lr_valid, self.scale)
        elif self.sensor is not None:
            hr_n, lr_in = self._sensor_pair(hr, valid, self._units[which], rng)
            # The loss covers what the node outputs: HR pixels under a valid LR pixel (an LR
            # hole's block is invalid in the output, so inpainting it would only cost capacity).
            lr_valid = lr_in[-1] > 0.5 if self.in_channels == 2 else np.ones(lr_in.shape[1:], bool)
            valid = valid & upsample_nearest(lr_valid, self.scale)
        else:
            hr_n, lr_in = self._research_pair(hr, which, rng)
        item = {
            'lr': torch.from_numpy(np.ascontiguousarray(lr_in, dtype=np.float32)),
            'hr': torch.from_numpy(np.ascontiguousarray(hr_n, dtype=np.float32))[None],
            'valid': torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32))[None],
            'has_rgb': torch.tensor(rgb is not None),
        }
        if rgb is not None:
            item['rgb'] = torch.from_numpy(
                np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0)
        else:
            item['rgb'] = torch.zeros(3, size, size)
        return item

    def _research_pair(self, hr: np.ndarray, which: int, rng: np.random.Generator) -> tuple:
        """The paper's degradation (bit-exact OpenCV kernels), per-image normalisation."""
        lr = degrade(np.ascontiguousarray(hr), self.scale, self.degradation,
                     round_to_uint8=self._round[which])
        offset, span = self._range[which]
        hr_n = (hr - offset) / span
        lr_n = (lr - offset) / span
        lr_valid = np.ones(lr_n.shape, bool)
        if self.noise_std > 0 or self.hole_fraction > 0:
            lr_n, holes = add_sensor_noise(lr_n, rng, self.noise_std, self.hole_fraction)
            if holes.any() and not holes.all():
                lr_n = fill_invalid(lr_n, ~holes)
                lr_valid = ~holes
        return hr_n, make_net_input(lr_n, lr_valid, self.in_channels)

    def _given_pair(self, hr: np.ndarray, lr: np.ndarray, unit: str,
                    rng: np.random.Generator) -> tuple:
        """Metric HR patch and the real LR frame under it, scaled as the node scales the LR
        frame; and where the LR frame is valid (the node outputs nothing under its holes)."""
        metres = METRIC_UNITS[unit]
        lr_valid = valid_mask(lr)
        hr_m, lr_in = self._scaled((hr * metres).astype(np.float32),
                                   (lr * metres).astype(np.float32), lr_valid, rng)
        return hr_m, lr_in, lr_valid

    def _sensor_pair(self, hr: np.ndarray, valid: np.ndarray, unit: str,
                     rng: np.random.Generator) -> tuple:
        """Metric HR patch, the sensor model's LR input, both scaled as the node scales."""
        hr_m = random_metric_range(np.ascontiguousarray(hr), valid, unit, rng)
        degraded = self.sensor.apply(hr_m, valid, self.scale, rng)
        lr_m, lr_valid = degraded.depth, degraded.valid
        if degraded.target is not None:  # a decimated sensor frame: its own frame is the truth
            hr_m = degraded.target
        if not lr_valid.any():  # nothing survived: fall back to the clean box average
            lr_m, lr_valid = degrade(hr_m, self.scale, 'area'), np.ones(lr_valid.shape, bool)
        return self._scaled(hr_m, lr_m, lr_valid, rng)

    def _scaled(self, hr_m: np.ndarray, lr_m: np.ndarray, lr_valid: np.ndarray,
                rng: np.random.Generator) -> tuple:
        """The net's input and target: the LR frame's scaling (jittered) applied to both."""
        if not lr_valid.any():  # an all-hole real LR patch: any scaling, the loss mask is empty
            lr_m, lr_valid = np.ones_like(lr_m), np.ones(lr_valid.shape, bool)
        lr_in, affine = prepare_net_input(lr_m, lr_valid, self.scaling, self.in_channels)
        if self.scaling.mode == 'range' and self.scaling_jitter > 1.0:
            # A patch spans less depth than the frame it comes from: widen its range at random
            # so that edges appear at every contrast the node will give them.
            factor = float(np.exp(rng.uniform(0.0, np.log(self.scaling_jitter))))
            wider = Affine(affine.offset - rng.uniform(0.0, factor - 1.0) * affine.span,
                           affine.span * factor)
            lr_in[0] = (affine.inverse(lr_in[0]) - wider.offset) / wider.span
            affine = wider
        return affine.forward(hr_m), lr_in

    def _draw(self, rng: np.random.Generator) -> tuple:
        """Pick (sample, top, left) with enough valid pixels; keep the best of a few tries."""
        best = None
        for _ in range(10):
            which = int(rng.choice(len(self._depth), p=self._weights))
            height, width = self._depth[which].shape
            top = int(rng.integers(0, (height - self.patch_size) // self.scale + 1)) * self.scale
            left = int(rng.integers(0, (width - self.patch_size) // self.scale + 1)) * self.scale
            ratio = float(self._valid[which][top:top + self.patch_size,
                                             left:left + self.patch_size].mean())
            if best is None or ratio > best[0]:
                best = (ratio, which, top, left)
            if ratio >= self.min_valid_ratio:
                break
        return best[1:]


def _check_given(samples: Sequence[RGBDSample], scale: int, degradation: str) -> None:
    """Given LR inputs need metric depth, the node's scaling (sensor) and one LR frame of
    exactly 1/scale the HR size per sample."""
    if degradation != 'sensor':
        raise ValueError('given LR inputs are scaled as the node scales them: they need '
                         f'degradation sensor, got {degradation!r}')
    for sample in samples:
        lr = sample.lr_inputs.get(scale)
        want = (sample.depth.shape[0] // scale, sample.depth.shape[1] // scale)
        if lr is None or lr.shape != want or sample.unit not in METRIC_UNITS:
            raise ValueError(f'{sample.name}: given LR training needs metric depth and an LR '
                             f'frame of {want[1]}x{want[0]} at x{scale} (lr_inputs), got '
                             f'{None if lr is None else lr.shape[::-1]} in {sample.unit}')
