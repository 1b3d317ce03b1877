"""The sensor degradation of :mod:`training.data.sensor_degradation`, batched in torch.

Why: the numpy model degrades one patch at a time on CPU workers; on a GPU that leaves the card
waiting (issue 30 measured 800-1,900 patches/s for the small nets). Here a whole batch of HR
patches is degraded at once on the device, with the same ranges (a :class:`SensorDegradation`)
and the same statistics; every random choice is drawn per patch from one ``torch.Generator``.

Each patch draws, as in ``SensorDegradation.apply``: the downsampling family (``area``,
``point`` at phase ``(0, 0)`` with ``point_phase0_prob`` else uniform, ``bilinear``, ``cubic``,
``aa_cubic``, ``gaussian`` blur then a uniform phase), optionally a structured-light sensor
frame for point samples (which then skips the rest and is the target), flying pixels, the
noise family (ToF ``sigma = k z``; structured light on disparity, optionally in 1/8 px steps),
the quantisation, and the invalid families (blobs, edge dropouts, range cut, borders, kept
only when 30 % of the patch stays valid). All families are computed for the whole batch and
each patch keeps its own (branch-free: no host syncs, no per-patch kernels).

Where the twins differ, on purpose and within the statistics the test compares
(``test/test_sensor_degradation_torch.py``):

* ``bilinear``/``cubic``/``aa_cubic`` are torch's ``interpolate`` (the same half-pixel
  sampling and -0.75 cubic as OpenCV's INTER_LINEAR/INTER_CUBIC; antialiased bicubic is
  torch's PIL-like kernel), not OpenCV/PIL bit for bit;
* blob ellipses are rasterised by an inside test with half-axes widened by 0.4 px, which
  matches ``cv2.ellipse``'s filled area to about 2 % (measured over 4,000 random ellipses);
  64 candidate ellipses are drawn per patch and the prefix that first reaches the fraction
  is kept, as the numpy loop stops;
* random numbers come from torch, not numpy: same distributions, other samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from dsr_ros.frame_ops_torch import row_percentile_t
from training.data.sensor_degradation import DOWNSAMPLING, SensorDegradation
from training.data.sensor_noise import NOISE, QUANTIZATION

__all__ = ['DegradedBatch', 'TorchSensorDegradation', 'gaussian_blur', 'symmetric_pad']

#: Half-axis widening that makes the inside test cover what ``cv2.ellipse`` fills.
ELLIPSE_MARGIN = 0.4
#: Candidate blob ellipses per patch (the numpy loop's limit).
MAX_BLOBS = 64


@dataclass
class DegradedBatch:
    """A degraded batch: LR depth in metres (holes 0), its validity, the HR target (the input,
    or a decimated sensor frame's own frame) and per-patch draws (tensors of length B)."""

    depth: torch.Tensor
    valid: torch.Tensor
    target: torch.Tensor
    info: Dict[str, torch.Tensor]


def symmetric_pad(images: torch.Tensor, pad: int) -> torch.Tensor:
    """``cv2.BORDER_REFLECT`` (``fedcba|abcdef|fedcba``) on the last two dims."""
    if pad == 0:
        return images
    out = images
    for dim in (-2, -1):
        length = out.shape[dim]
        index = torch.arange(-pad, length + pad, device=images.device)
        index = torch.where(index < 0, -index - 1, index)
        index = torch.where(index >= length, 2 * length - 1 - index, index)
        out = out.index_select(dim, index.clamp_(0, length - 1))
    return out


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """``cv2.GaussianBlur(img, (0, 0), sigma, borderType=BORDER_REFLECT)`` per image of a
    ``(B, H, W)`` batch, each with its own ``sigma`` (``(B,)``); kernels are as wide as
    OpenCV makes them for float images (``round(8 sigma + 1) | 1``), up to ``max_sigma``'s."""
    batch, height, width = images.shape
    reach = (int(round(max_sigma * 8 + 1)) | 1) // 2
    taps = torch.arange(-reach, reach + 1, device=images.device, dtype=torch.float64)
    sigma = sigma.to(torch.float64).clamp(min=1e-6)[:, None]
    radius = (torch.round(sigma * 8 + 1).long() | 1) // 2
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma ** 2)) * (taps.abs()[None] <= radius)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(images.dtype)
    padded = symmetric_pad(images, reach)[None]  # (1, B, H + 2r, W + 2r): one group per image
    out = F.conv2d(padded, kernel.view(batch, 1, -1, 1), groups=batch)
    out = F.conv2d(out, kernel.view(batch, 1, 1, -1), groups=batch)
    return out[0]


class TorchSensorDegradation:
    """``SensorDegradation.apply`` for a batch, in torch on the batch's device."""

    def __init__(self, model: Optional[SensorDegradation] = None) -> None:
        self.model = model or SensorDegradation()

    def apply(self, hr: torch.Tensor, hr_valid: torch.Tensor, scale: int,
              generator: torch.Generator) -> DegradedBatch:
        """Degrade hole-filled HR patches in metres ``(B, H, W)``; ``hr_valid`` marks real
        pixels. ``generator`` must live on ``hr``'s device."""
        model = self.model
        batch = hr.shape[0]
        height, width = hr.shape[1] // scale * scale, hr.shape[2] // scale * scale
        hr = hr[:, :height, :width].to(torch.float32)
        hr_valid = hr_valid[:, :height, :width]
        draw = _Draws(generator, batch, hr.device)
        kind = draw.choice(model.downsampling, DOWNSAMPLING)
        point, gaussian = kind == DOWNSAMPLING.index('point'), kind == DOWNSAMPLING.index(
            'gaussian')
        phase0 = draw.uniform() < model.point_phase0_prob
        uniform_phase = draw.integers(0, scale, (batch, 2))
        point_phase = (torch.full_like(uniform_phase, (scale - 1) // 2)
                       if model.point_phase == 'centre'
                       else torch.where(phase0[:, None], 0, uniform_phase))
        phase = torch.where(point[:, None], point_phase,
                            torch.where(gaussian[:, None], uniform_phase, -1))
        sigma = draw.uniform(*model.gaussian_sigma) * scale
        info: Dict[str, torch.Tensor] = {'downsampling': kind, 'phase': phase}
        sensor = torch.zeros(batch, dtype=torch.bool, device=hr.device)
        if model.sensor_frame_prob > 0:
            sensor = point & (draw.uniform() < model.sensor_frame_prob)
            hr = torch.where(sensor[:, None, None], self._sensor_frame(hr, draw, info), hr)
        info['sensor_frame'] = sensor
        target = hr
        lr = self._downsample(hr, kind, phase, sigma, scale)
        valid = _lr_validity(hr_valid, point, phase, scale)
        lr = self._flying(lr, draw, info, ~sensor)
        lr = self._noise(lr, draw, info, ~sensor)
        lr = self._quantize(lr, valid, draw, info, ~sensor)
        return self._finish(lr, valid, draw, info, target)

    # ------------------------------------------------------------------ families
    def _downsample(self, hr: torch.Tensor, kind: torch.Tensor, phase: torch.Tensor,
                    sigma: torch.Tensor, scale: int) -> torch.Tensor:
        size = (hr.shape[1] // scale, hr.shape[2] // scale)
        images = hr[:, None]
        blurred = gaussian_blur(hr, sigma, max(self.model.gaussian_sigma) * scale)
        gaussian = kind == DOWNSAMPLING.index('gaussian')
        sampled = _sample_at(torch.where(gaussian[:, None, None], blurred, hr),
                             phase.clamp(min=0), scale)
        families = {
            'area': F.avg_pool2d(images, scale)[:, 0],
            'point': sampled,
            'gaussian': sampled,
            'bilinear': F.interpolate(images, size=size, mode='bilinear',
                                      align_corners=False)[:, 0],
            'cubic': F.interpolate(images, size=size, mode='bicubic', align_corners=False)[:, 0],
            'aa_cubic': F.interpolate(images, size=size, mode='bicubic', align_corners=False,
                                      antialias=True)[:, 0],
        }
        out = families['area']
        for index, name in enumerate(DOWNSAMPLING):
            out = torch.where((kind == index)[:, None, None], families[name], out)
        return out

    def _sensor_frame(self, hr: torch.Tensor, draw: '_Draws', info: Dict[str, torch.Tensor]
                      ) -> torch.Tensor:
        """``structured_light_frame`` then ``quantize(.., 'mm')`` for every patch."""
        model = self.model
        focal_baseline = draw.uniform(*model.sl_focal_baseline)
        disparity_sigma = draw.uniform(*model.sl_disparity_sigma)
        correlation = draw.uniform(*model.sensor_frame_correlation)
        subpixel = torch.where(draw.uniform() < model.sl_subpixel_prob, 8, 0)
        noise = draw.normal(hr.shape)
        gain = (2.0 * correlation * math.sqrt(math.pi))[:, None, None]
        smoothed = gain * gaussian_blur(noise, correlation,
                                        max(model.sensor_frame_correlation))
        noise = torch.where((correlation > 0)[:, None, None], smoothed, noise)
        frame = _depth_with_disparity_noise(hr, noise * disparity_sigma[:, None, None],
                                            focal_baseline, subpixel)
        info.update(focal_baseline=focal_baseline, disparity_sigma=disparity_sigma,
                    correlation=correlation, subpixel=subpixel)
        return torch.round(frame * 1000.0) / 1000.0

    def _flying(self, lr: torch.Tensor, draw: '_Draws', info: Dict[str, torch.Tensor],
                allowed: torch.Tensor) -> torch.Tensor:
        model = self.model
        apply = allowed & (draw.uniform() < model.flying_prob)
        rate = draw.uniform(*model.flying_rate)
        edges = (_edge_jump(lr) > model.edge_threshold * lr.clamp(min=1e-3)) \
            & (draw.uniform(shape=lr.shape) < rate[:, None, None]) & apply[:, None, None]
        neighbours = _four_neighbours(lr)
        farthest = neighbours.gather(
            1, (neighbours - lr[:, None]).abs().argmax(dim=1, keepdim=True))[:, 0]
        alpha = draw.uniform(shape=lr.shape)
        info['flying'] = edges.sum(dim=(1, 2))
        info['flying_applied'] = apply
        return torch.where(edges, alpha * lr + (1 - alpha) * farthest, lr)

    def _noise(self, lr: torch.Tensor, draw: '_Draws', info: Dict[str, torch.Tensor],
               allowed: torch.Tensor) -> torch.Tensor:
        model = self.model
        noise = draw.choice(model.noise, NOISE)
        tof_k = draw.uniform(*model.tof_relative_sigma)
        focal_baseline = draw.uniform(*model.sl_focal_baseline)
        disparity_sigma = draw.uniform(*model.sl_disparity_sigma)
        subpixel = torch.where(draw.uniform() < model.sl_subpixel_prob, 8, 0)
        tof = lr * (1.0 + tof_k[:, None, None] * draw.normal(lr.shape))
        structured = _depth_with_disparity_noise(
            lr, draw.normal(lr.shape) * disparity_sigma[:, None, None], focal_baseline,
            subpixel)
        noise = torch.where(allowed, noise, NOISE.index('none'))
        info.update(noise=noise, tof_k=tof_k, noise_focal_baseline=focal_baseline,
                    noise_disparity_sigma=disparity_sigma, noise_subpixel=subpixel)
        out = torch.where((noise == NOISE.index('tof'))[:, None, None], tof, lr)
        return torch.where((noise == NOISE.index('structured_light'))[:, None, None],
                           structured, out)

    def _quantize(self, lr: torch.Tensor, valid: torch.Tensor, draw: '_Draws',
                  info: Dict[str, torch.Tensor], allowed: torch.Tensor) -> torch.Tensor:
        quant = torch.where(allowed, draw.choice(self.model.quantization, QUANTIZATION),
                            QUANTIZATION.index('none'))
        info['quantization'] = quant
        millimetres = torch.round(lr * 1000.0) / 1000.0
        some = valid.flatten(1).any(dim=1)[:, None, None]
        use = valid | ~some
        low = torch.where(use, lr, math.inf).amin(dim=(1, 2), keepdim=True)
        high = torch.where(use, lr, -math.inf).amax(dim=(1, 2), keepdim=True)
        step = (high - low) / 255.0
        levels = torch.where(high > low, torch.round((lr - low) / step.clamp(min=1e-30)) * step
                             + low, lr)
        out = torch.where((quant == QUANTIZATION.index('mm'))[:, None, None], millimetres, lr)
        return torch.where((quant == QUANTIZATION.index('8bit'))[:, None, None], levels, out)

    def _finish(self, lr: torch.Tensor, valid: torch.Tensor, draw: '_Draws',
                info: Dict[str, torch.Tensor], target: torch.Tensor) -> DegradedBatch:
        """The invalid-pixel families (``SensorDegradation._finish`` and ``_holes``)."""
        model = self.model
        batch, height, width = lr.shape
        valid = valid & torch.isfinite(lr) & (lr > 0)
        per_patch = (batch, 1, 1)
        blob = (draw.uniform() < model.blob_prob).view(per_patch)
        holes = blob & _blob_holes(draw, (height, width), draw.uniform(*model.blob_fraction))
        dropout = (draw.uniform() < model.edge_dropout_prob).view(per_patch)
        rate = draw.uniform(*model.edge_dropout_rate).view(per_patch)
        nearest = _four_neighbours(lr).amin(dim=1)
        far_side = lr - nearest > model.edge_threshold * lr.clamp(min=1e-3)
        holes |= dropout & far_side & (draw.uniform(shape=lr.shape) < rate)
        some = valid.flatten(1).any(dim=1)
        cut = ((draw.uniform() < model.range_cut_prob) & some).view(per_patch)
        low_p, high_p = draw.uniform(0.0, 8.0), draw.uniform(92.0, 100.0)
        low, high = _masked_percentiles(lr, valid, low_p, high_p)
        holes |= cut & ((lr < low.view(per_patch)) | (lr > high.view(per_patch)))
        border = ((draw.uniform() < model.border_prob) & (model.border_max > 0)).view(per_patch)
        holes |= border & _border_holes(draw, (batch, height, width), model.border_max)
        info['holes'] = holes.float().mean(dim=(1, 2))
        keep = (valid & ~holes).float().mean(dim=(1, 2)) >= 0.3
        valid = torch.where(keep[:, None, None], valid & ~holes, valid)
        info['hole_fraction'] = 1.0 - valid.float().mean(dim=(1, 2))
        depth = torch.where(valid, lr, 0.0)
        return DegradedBatch(depth, valid, target, info)


# ---------------------------------------------------------------------------- helpers
class _Draws:
    """Per-patch random draws from one generator on one device."""

    def __init__(self, generator: torch.Generator, batch: int, device: torch.device) -> None:
        self.generator, self.batch, self.device = generator, batch, device

    def uniform(self, low: float = 0.0, high: float = 1.0,
                shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        values = torch.rand(tuple(shape) if shape is not None else (self.batch,),
                            generator=self.generator, device=self.device)
        return low + (high - low) * values

    def normal(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.generator, device=self.device)

    def integers(self, low: int, high: int, shape: Sequence[int]) -> torch.Tensor:
        return torch.randint(low, high, tuple(shape), generator=self.generator,
                             device=self.device)

    def choice(self, weights: Mapping[str, float], names: Sequence[str]) -> torch.Tensor:
        """Index into ``names`` per patch, drawn with ``weights``."""
        probs = torch.tensor([float(weights.get(name, 0.0)) for name in names],
                             dtype=torch.float64)
        probs = (probs / probs.sum()).to(self.device)
        return torch.multinomial(probs, self.batch, replacement=True, generator=self.generator)


def _sample_at(images: torch.Tensor, phase: torch.Tensor, scale: int) -> torch.Tensor:
    """``images[b, s i + phase_b[0], s j + phase_b[1]]``."""
    batch, height, width = images.shape
    rows = torch.arange(0, height, scale, device=images.device)[None] + phase[:, :1]
    cols = torch.arange(0, width, scale, device=images.device)[None] + phase[:, 1:]
    index = rows[:, :, None] * width + cols[:, None, :]
    return images.reshape(batch, -1).gather(1, index.reshape(batch, -1)).view(index.shape)


def _lr_validity(hr_valid: torch.Tensor, point: torch.Tensor, phase: torch.Tensor,
                 scale: int) -> torch.Tensor:
    """Point samples: the HR pixel's validity; other families: half the block valid."""
    sampled = _sample_at(hr_valid.to(torch.float32), phase.clamp(min=0), scale) > 0.5
    blocks = F.avg_pool2d(hr_valid[:, None].to(torch.float32), scale)[:, 0] >= 0.5
    return torch.where(point[:, None, None], sampled, blocks)


def _depth_with_disparity_noise(depth: torch.Tensor, noise: torch.Tensor,
                                focal_baseline: torch.Tensor, subpixel: torch.Tensor
                                ) -> torch.Tensor:
    """``sensor_noise._depth_with_disparity_noise`` per patch."""
    focal_baseline = focal_baseline[:, None, None]
    subpixel = subpixel[:, None, None]
    disparity = focal_baseline / depth.clamp(min=1e-3) + noise
    steps = subpixel.clamp(min=1).to(disparity.dtype)
    disparity = torch.where(subpixel > 0, torch.round(disparity * steps) / steps, disparity)
    disparity = torch.maximum(disparity, 1.0 / subpixel.clamp(min=8).to(disparity.dtype))
    return focal_baseline / disparity


def _four_neighbours(depth: torch.Tensor) -> torch.Tensor:
    """``(B, 4, H, W)``: up, down, left and right neighbours, edges replicated."""
    padded = F.pad(depth[:, None], (1, 1, 1, 1), mode='replicate')[:, 0]
    height, width = depth.shape[1:]
    return torch.stack([padded[:, r:r + height, c:c + width]
                        for r, c in ((0, 1), (2, 1), (1, 0), (1, 2))], dim=1)


def _edge_jump(depth: torch.Tensor) -> torch.Tensor:
    return (_four_neighbours(depth) - depth[:, None]).abs().amax(dim=1)


def _masked_percentiles(values: torch.Tensor, valid: torch.Tensor, low: torch.Tensor,
                        high: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per patch, numpy's linear percentiles ``low`` and ``high`` (``(B,)``, in %) of the valid
    values (NaN-free; a patch without valid values gets inf, which cuts nothing)."""
    flat = torch.where(valid, values, math.inf).flatten(1).to(torch.float64)
    ordered = flat.sort(dim=1).values
    last = (valid.flatten(1).sum(dim=1) - 1).clamp(min=0)

    return (row_percentile_t(ordered, last, low).to(values.dtype),
            row_percentile_t(ordered, last, high).to(values.dtype))


def _blob_holes(draw: _Draws, shape: Tuple[int, int], fraction: torch.Tensor) -> torch.Tensor:
    """``blob_holes`` per patch: ellipses until about ``fraction`` is covered."""
    height, width = shape
    batch, count = draw.batch, MAX_BLOBS
    centre_x = draw.integers(0, width, (batch, count, 1, 1)).float()
    centre_y = draw.integers(0, height, (batch, count, 1, 1)).float()
    axis_x = draw.integers(1, max(2, width // 6), (batch, count, 1, 1)).float() + ELLIPSE_MARGIN
    axis_y = draw.integers(1, max(2, height // 6), (batch, count, 1, 1)).float() \
        + ELLIPSE_MARGIN
    angle = torch.deg2rad(draw.uniform(0.0, 180.0, (batch, count, 1, 1)))
    rows = torch.arange(height, device=draw.device, dtype=torch.float32).view(1, 1, -1, 1)
    cols = torch.arange(width, device=draw.device, dtype=torch.float32).view(1, 1, 1, -1)
    dx, dy = cols - centre_x, rows - centre_y
    along = dx * torch.cos(angle) + dy * torch.sin(angle)
    across = -dx * torch.sin(angle) + dy * torch.cos(angle)
    along, across = along / axis_x, across / axis_y
    inside = along * along + across * across <= 1.0  # (B, K, H, W)
    # A pixel is covered once the first ellipse holding it is drawn: the coverage after k
    # ellipses is the share of pixels whose first ellipse is <= k.
    first = torch.where(inside.any(dim=1), inside.to(torch.uint8).argmax(dim=1), count)
    counts = torch.zeros(batch, count + 1, device=draw.device).scatter_add_(
        1, first.flatten(1), torch.ones(batch, height * width, device=draw.device))
    coverage = counts[:, :count].cumsum(dim=1) / float(height * width)
    before = torch.cat([torch.zeros_like(coverage[:, :1]), coverage[:, :-1]], dim=1)
    drawn = (before < fraction[:, None]).sum(dim=1)  # a prefix: coverage only grows
    return first < drawn.view(batch, 1, 1)


def _border_holes(draw: _Draws, shape: Tuple[int, int, int], max_width: int) -> torch.Tensor:
    batch, height, width = shape
    widths = draw.integers(0, max_width + 1, (batch, 4)).view(batch, 4, 1, 1)
    rows = torch.arange(height, device=draw.device).view(1, -1, 1)
    cols = torch.arange(width, device=draw.device).view(1, 1, -1)
    top, bottom, left, right = widths[:, 0], widths[:, 1], widths[:, 2], widths[:, 3]
    return ((rows < top) | (rows >= height - bottom) | (cols < left)
            | (cols >= width - right))
