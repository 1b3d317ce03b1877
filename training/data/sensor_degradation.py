"""A randomised model of how real depth cameras degrade depth: the LR inputs of sensor models.

The paper (like most depth SR work) trains on OpenCV-bicubic downsampling; a net trained only on
that is no better than nearest-neighbour upsampling on a real camera's decimated depth. Real
sensors differ in three ways, each a family below, mixed at random per patch:

* **downsampling** (``downsampling`` weights): ``area`` (box average: a ToF pixel integrates
  its footprint, mixing depths at edges), ``point`` (one HR sample per LR pixel at a sub-pixel
  phase, as structured light and driver decimation give; phase ``(0, 0)`` = "keep every s-th
  pixel" with probability ``point_phase0_prob``, otherwise uniform; with ``point_phase:
  centre`` always the pixel nearest the block's centre, ``((s - 1) // 2,) * 2``: the node knows
  a real stream's phase and moves the output exactly, so the net need not hedge between
  phases, and a point sample then sits next to where a native footprint's centre does),
  ``bilinear`` and ``cubic``
  (OpenCV INTER_LINEAR / INTER_CUBIC, no anti-aliasing: the research degradation),
  ``aa_cubic`` (PIL's anti-aliased bicubic), ``gaussian`` (Gaussian blur with sigma in
  ``gaussian_sigma`` x scale HR pixels, then point sampling at a random phase);
* **noise** (``noise`` weights): ``tof`` (sigma = k z, k in ``tof_relative_sigma``),
  ``structured_light`` (disparity ``d = fB / z`` with ``fB`` in ``sl_focal_baseline`` px m,
  Gaussian disparity noise in ``sl_disparity_sigma`` px and, with probability
  ``sl_subpixel_prob``, disparity quantised to 1/8 px: depth sigma grows with z^2), and
  quantisation (``quantization`` weights: ``mm`` = 1 mm steps as in 16UC1, ``8bit`` = 256
  levels over the patch's range);
* **invalid pixels**: blobs (absorbing / specular surfaces; ``blob_prob``, total fraction in
  ``blob_fraction``), dropouts along depth discontinuities (structured-light shadows and ToF
  edge rejection; ``edge_dropout_prob``, rate in ``edge_dropout_rate``, far side of the edge),
  a near/far range cut-off (``range_cut_prob``), invalid borders (``border_prob``, up to
  ``border_max`` LR pixels); and mixed ("flying") pixels at depth edges (``flying_prob``);
* **decimated sensor frames** (``sensor_frame_prob`` of the point-sampled patches): the HR
  patch first becomes a structured-light camera's own frame
  (:func:`~training.data.sensor_noise.structured_light_frame`: disparity noise correlated
  over ``sensor_frame_correlation`` HR px, as block matching makes it, then 1/8-px steps: the
  terraces of a Kinect or PrimeSense frame) and the LR keeps every s-th pixel of it, with no
  further noise. That frame, not the clean depth, is the target: a
  user who decimates a real camera compares with the camera's full frame, whose values the
  LR pixels *are*. Without it a net smooths the terraces it is compared against and loses to
  nearest-neighbour upsampling on real frames (x2: 1.54 x nearest's MAD).

This module draws the parameters and downsamples; the noise, quantisation and invalid-pixel
models it chains are :mod:`training.data.sensor_noise`. Depth is in metres (training maps
every HR patch to a random metric range first). Everything is drawn from the generator passed
in, which the patch dataset seeds per patch, so a degraded patch is reproducible. The research
degradation (:func:`training.data.degradation.degrade`, bit-exact with the benchmark's LR
inputs) is untouched and stays the default of research configs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, Tuple

import cv2
import numpy as np

from dsr_ros.depth_io import valid_mask
from training.data.degradation import degrade
from training.data.sensor_noise import (NOISE, QUANTIZATION, add_structured_light_noise,
                                        add_tof_noise, blob_holes, border_holes, edge_dropouts,
                                        flying_pixels, quantize, structured_light_frame)

__all__ = ['DOWNSAMPLING', 'Degraded', 'SensorDegradation', 'downsample']

DOWNSAMPLING = ('area', 'point', 'bilinear', 'cubic', 'aa_cubic', 'gaussian')

Range = Tuple[float, float]


@dataclass(frozen=True)
class Degraded:
    """One degraded LR map: depth in metres (holes hold 0), its mask and what was drawn.

    ``target``: the HR map the net should reproduce when it is not the clean input (a
    decimated sensor frame's own HR frame), else None.
    """

    depth: np.ndarray
    valid: np.ndarray
    info: Dict[str, Any]
    target: Optional[np.ndarray] = None


def _weights(name: str, value: Mapping[str, float], known: Tuple[str, ...]) -> Dict[str, float]:
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f'sensor degradation {name}: unknown entries {unknown}, known {known}')
    weights = {key: float(value.get(key, 0.0)) for key in known}
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f'sensor degradation {name}: weights must be >= 0 with a positive sum')
    return weights


#: How point samples draw their phase: ``prior0`` (phase 0 with ``point_phase0_prob``, else
#: uniform) or ``centre`` (always the pixel nearest the block's centre).
POINT_PHASES = ('prior0', 'centre')


@dataclass(frozen=True)
class SensorDegradation:
    """The documented ranges of the sensor degradation (a config's ``data.sensor`` section)."""

    downsampling: Dict[str, float] = field(default_factory=lambda: {
        'area': 0.25, 'point': 0.3, 'bilinear': 0.1, 'cubic': 0.1, 'aa_cubic': 0.1,
        'gaussian': 0.15})
    point_phase0_prob: float = 0.5
    point_phase: str = 'prior0'
    gaussian_sigma: Range = (0.2, 0.5)
    noise: Dict[str, float] = field(default_factory=lambda: {
        'none': 0.3, 'tof': 0.35, 'structured_light': 0.35})
    tof_relative_sigma: Range = (0.001, 0.01)
    sl_focal_baseline: Range = (25.0, 60.0)
    sl_disparity_sigma: Range = (0.02, 0.1)
    sl_subpixel_prob: float = 0.7
    quantization: Dict[str, float] = field(default_factory=lambda: {
        'none': 0.5, 'mm': 0.4, '8bit': 0.1})
    blob_prob: float = 0.4
    blob_fraction: Range = (0.005, 0.06)
    edge_dropout_prob: float = 0.4
    edge_dropout_rate: Range = (0.2, 0.8)
    edge_threshold: float = 0.05
    range_cut_prob: float = 0.15
    border_prob: float = 0.2
    border_max: int = 3
    flying_prob: float = 0.3
    flying_rate: Range = (0.2, 0.8)
    sensor_frame_prob: float = 0.0
    sensor_frame_correlation: Range = (1.0, 3.0)

    def __post_init__(self) -> None:
        if self.point_phase not in POINT_PHASES:
            raise ValueError(f'sensor degradation point_phase must be one of {POINT_PHASES}, '
                             f'got {self.point_phase!r}')
        _weights('downsampling', self.downsampling, DOWNSAMPLING)
        _weights('noise', self.noise, NOISE)
        _weights('quantization', self.quantization, QUANTIZATION)
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name.endswith('_prob') and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f'sensor degradation {item.name} must be in [0, 1], got {value}')
            if isinstance(value, (tuple, list)) and not (len(value) == 2
                                                         and 0 <= value[0] <= value[1]):
                raise ValueError(f'sensor degradation {item.name} must be a range [low, high] '
                                 f'with 0 <= low <= high, got {value}')

    @classmethod
    def from_config(cls, section: Optional[Mapping[str, Any]]) -> 'SensorDegradation':
        """Build from a config section, refusing unknown keys (a typo must not pass)."""
        section = dict(section or {})
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f'unknown sensor degradation keys {unknown}; known: {sorted(known)}')
        for key, value in section.items():
            if isinstance(value, list):
                section[key] = tuple(value)
        return cls(**section)

    def to_dict(self) -> Dict[str, Any]:
        """Plain data for checkpoints' provenance."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    # ------------------------------------------------------------------ apply
    def apply(self, hr: np.ndarray, hr_valid: np.ndarray, scale: int,
              rng: np.random.Generator) -> Degraded:
        """Degrade a hole-filled HR depth patch in metres (``hr_valid`` marks real pixels)."""
        hr = np.ascontiguousarray(hr, dtype=np.float32)
        info: Dict[str, Any] = {}
        kind = _choice(rng, self.downsampling)
        info['downsampling'] = kind
        phase = None
        if kind == 'point' and self.point_phase == 'centre':
            phase = ((scale - 1) // 2, (scale - 1) // 2)
        elif kind == 'point':
            phase = ((0, 0) if rng.random() < self.point_phase0_prob
                     else tuple(int(v) for v in rng.integers(0, scale, 2)))
        elif kind == 'gaussian':
            phase = tuple(int(v) for v in rng.integers(0, scale, 2))
            info['sigma'] = float(rng.uniform(*self.gaussian_sigma)) * scale
        target = None
        if kind == 'point' and self.sensor_frame_prob > 0 and (
                rng.random() < self.sensor_frame_prob):
            hr = target = self._sensor_frame(hr, rng, info)
        lr = downsample(hr, scale, kind, phase=phase, sigma=info.get('sigma', 0.0))
        valid = _lr_validity(hr_valid, scale, kind, phase)
        info['phase'] = phase
        if target is not None:
            return self._finish(lr, valid, rng, info, target)
        if rng.random() < self.flying_prob:
            lr, count = flying_pixels(lr, rng, float(rng.uniform(*self.flying_rate)),
                                      self.edge_threshold)
            info['flying'] = count
        noise = _choice(rng, self.noise)
        info['noise'] = noise
        if noise == 'tof':
            info['tof_k'] = float(rng.uniform(*self.tof_relative_sigma))
            lr = add_tof_noise(lr, rng, info['tof_k'])
        elif noise == 'structured_light':
            info['focal_baseline'] = float(rng.uniform(*self.sl_focal_baseline))
            info['disparity_sigma'] = float(rng.uniform(*self.sl_disparity_sigma))
            info['subpixel'] = 8 if rng.random() < self.sl_subpixel_prob else 0
            lr = add_structured_light_noise(lr, rng, info['focal_baseline'],
                                            info['disparity_sigma'], info['subpixel'])
        quant = _choice(rng, self.quantization)
        info['quantization'] = quant
        lr = quantize(lr, quant, valid)
        return self._finish(lr, valid, rng, info)

    def _finish(self, lr: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
                info: Dict[str, Any], target: Optional[np.ndarray] = None) -> Degraded:
        """Punch the invalid-pixel families into the LR map."""
        valid = valid & valid_mask(lr)
        holes = self._holes(lr, valid, rng, info)
        if (valid & ~holes).mean() >= 0.3:
            valid = valid & ~holes
        info['hole_fraction'] = float(1.0 - valid.mean())
        out = np.where(valid, lr, 0.0).astype(np.float32)
        return Degraded(out, valid, info, target)

    def _sensor_frame(self, hr: np.ndarray, rng: np.random.Generator, info: Dict[str, Any]
                      ) -> np.ndarray:
        """The structured-light camera frame of ``hr`` (drawn from the ``sl_*`` ranges)."""
        info['sensor_frame'] = True
        info['focal_baseline'] = float(rng.uniform(*self.sl_focal_baseline))
        info['disparity_sigma'] = float(rng.uniform(*self.sl_disparity_sigma))
        info['correlation'] = float(rng.uniform(*self.sensor_frame_correlation))
        info['subpixel'] = 8 if rng.random() < self.sl_subpixel_prob else 0
        return quantize(structured_light_frame(
            hr, rng, info['focal_baseline'], info['disparity_sigma'], info['correlation'],
            info['subpixel']), 'mm')

    def _holes(self, lr: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
               info: Dict[str, Any]) -> np.ndarray:
        holes = np.zeros(lr.shape, bool)
        if rng.random() < self.blob_prob:
            holes |= blob_holes(lr.shape, rng, float(rng.uniform(*self.blob_fraction)))
        if rng.random() < self.edge_dropout_prob:
            holes |= edge_dropouts(lr, rng, float(rng.uniform(*self.edge_dropout_rate)),
                                   self.edge_threshold)
        if rng.random() < self.range_cut_prob and valid.any():
            values = lr[valid]
            low, high = np.percentile(values, [rng.uniform(0, 8), rng.uniform(92, 100)])
            holes |= (lr < low) | (lr > high)
        if rng.random() < self.border_prob and self.border_max > 0:
            holes |= border_holes(lr.shape, rng, self.border_max)
        info['holes'] = float(holes.mean())
        return holes


# ------------------------------------------------------------------------ downsampling
def downsample(hr: np.ndarray, scale: int, kind: str, phase: Optional[Tuple[int, int]] = None,
               sigma: float = 0.0) -> np.ndarray:
    """HR -> ``(H // s, W // s)`` by one downsampling family (see the module docstring)."""
    height, width = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = hr[:height, :width]
    if kind == 'area':
        return hr.reshape(height // scale, scale, width // scale, scale).mean(axis=(1, 3))
    if kind in ('point', 'gaussian'):
        row, col = phase or (0, 0)
        if kind == 'gaussian' and sigma > 0:
            hr = cv2.GaussianBlur(hr, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        return np.ascontiguousarray(hr[row::scale, col::scale])
    names = {'bilinear': 'linear', 'cubic': 'cubic', 'aa_cubic': 'pil_bicubic'}
    if kind not in names:
        raise ValueError(f'unknown downsampling {kind!r}, expected one of {DOWNSAMPLING}')
    return degrade(hr, scale, names[kind])


def _lr_validity(hr_valid: np.ndarray, scale: int, kind: str,
                 phase: Optional[Tuple[int, int]]) -> np.ndarray:
    height, width = hr_valid.shape[0] // scale * scale, hr_valid.shape[1] // scale * scale
    hr_valid = hr_valid[:height, :width]
    if kind == 'point':
        row, col = phase or (0, 0)
        return hr_valid[row::scale, col::scale].copy()
    blocks = hr_valid.reshape(height // scale, scale, width // scale, scale)
    return blocks.mean(axis=(1, 3)) >= 0.5


def _choice(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    names = list(weights)
    probs = np.array([weights[name] for name in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=probs / probs.sum()))]
