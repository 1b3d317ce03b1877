"""The torch sensor degradation against the numpy one: same statistics, on the CPU.

Both models degrade the same HR patches many times (numpy one patch per seed, torch one batch
from one seeded generator) and the distributions the training depends on are compared:
the downsampling mix and the point-sampling phase, the noise sigma at two depths, the hole
fraction and the flying pixels. Seeds are fixed, so the outcome is too; the tolerances are
several standard errors of the compared statistic at these sample sizes.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from training.data import sensor_degradation as sd
from training.data.sensor_degradation import DOWNSAMPLING, SensorDegradation
from training.data.sensor_degradation_torch import (TorchSensorDegradation, gaussian_blur,
                                                    symmetric_pad)

PATCHES = 600
SCALE = 4
QUIET = {'blob_prob': 0.0, 'edge_dropout_prob': 0.0, 'range_cut_prob': 0.0,
         'border_prob': 0.0, 'flying_prob': 0.0}


def _scene(size: int = 64) -> np.ndarray:
    """A slanted wall, a nearer box and a far step: edges for dropouts and flying pixels."""
    rows, cols = np.mgrid[0:size, 0:size]
    hr = (1.0 + 0.02 * cols + 0.01 * rows).astype(np.float32)
    hr[10:40, 20:50] = 0.7
    hr[:, 50:] += 1.5
    return hr


def _both(model: SensorDegradation, hr: np.ndarray, patches: int = PATCHES):
    """(numpy results, torch batch) for ``patches`` degradations of ``hr``."""
    valid = np.ones(hr.shape, bool)
    numpy_out = [model.apply(hr, valid, SCALE, np.random.default_rng([5, index]))
                 for index in range(patches)]
    batch = torch.from_numpy(hr)[None].expand(patches, -1, -1).contiguous()
    torch_out = TorchSensorDegradation(model).apply(
        batch, torch.ones(batch.shape, dtype=torch.bool), SCALE,
        torch.Generator().manual_seed(5))
    return numpy_out, torch_out


def test_downsampling_mix_and_point_phase_distribution():
    model = SensorDegradation(**QUIET)
    numpy_out, torch_out = _both(model, _scene())
    kinds_np = np.bincount([DOWNSAMPLING.index(o.info['downsampling']) for o in numpy_out],
                           minlength=len(DOWNSAMPLING)) / PATCHES
    kinds_t = torch.bincount(torch_out.info['downsampling'],
                             minlength=len(DOWNSAMPLING)).numpy() / PATCHES
    np.testing.assert_allclose(kinds_t, kinds_np, atol=0.05)

    point_only = SensorDegradation(downsampling={'point': 1.0}, point_phase0_prob=0.5,
                                   noise={'none': 1.0}, quantization={'none': 1.0}, **QUIET)
    numpy_out, torch_out = _both(point_only, _scene())
    phases_np = np.array([o.info['phase'] for o in numpy_out])
    phases_t = torch_out.info['phase'].numpy()
    zero_np = (phases_np == 0).all(axis=1).mean()
    zero_t = (phases_t == 0).all(axis=1).mean()
    assert abs(zero_t - zero_np) < 0.06 and abs(zero_t - (0.5 + 0.5 / 16)) < 0.06
    assert len({tuple(p) for p in phases_t}) == SCALE * SCALE
    # Among the uniform phases, each row offset is equally likely in both.
    rows_np = np.bincount(phases_np[:, 0], minlength=SCALE) / PATCHES
    rows_t = np.bincount(phases_t[:, 0], minlength=SCALE) / PATCHES
    np.testing.assert_allclose(rows_t, rows_np, atol=0.06)
    # The LR pixel is the HR pixel at the drawn phase.
    hr = _scene()
    for index in range(5):
        row, col = phases_t[index]
        np.testing.assert_array_equal(torch_out.depth[index].numpy(),
                                      hr[row::SCALE, col::SCALE])


@pytest.mark.parametrize('noise', ['tof', 'structured_light'])
def test_noise_sigma_at_depth(noise):
    model = SensorDegradation(downsampling={'area': 1.0}, noise={noise: 1.0},
                              quantization={'none': 1.0}, **QUIET)
    sigmas = {}
    for depth in (1.0, 3.0):
        plane = np.full((64, 64), depth, np.float32)
        numpy_out, torch_out = _both(model, plane, patches=300)
        sigma_np = np.mean([np.std(o.depth[o.valid] - depth) for o in numpy_out])
        residual = (torch_out.depth - depth).where(torch_out.valid, torch.nan)
        sigma_t = np.nanstd(residual.flatten(1).numpy(), axis=1).mean()
        assert sigma_t == pytest.approx(sigma_np, rel=0.12), (depth, sigma_t, sigma_np)
        sigmas[depth] = sigma_t
    growth = sigmas[3.0] / sigmas[1.0]
    # ToF: sigma = k z (x3 from 1 to 3 m); structured light: sigma ~ z^2 (about x9; the
    # 1/8 px disparity steps make it a little less).
    assert growth == pytest.approx(3.0, rel=0.1) if noise == 'tof' else 6.0 < growth < 10.0


def test_hole_fraction_distribution():
    numpy_out, torch_out = _both(SensorDegradation(), _scene())
    fraction_np = np.array([o.info['hole_fraction'] for o in numpy_out])
    fraction_t = torch_out.info['hole_fraction'].numpy()
    assert abs(fraction_t.mean() - fraction_np.mean()) < 0.025
    for quantile in (0.5, 0.9):
        assert abs(np.quantile(fraction_t, quantile) - np.quantile(fraction_np, quantile)) < 0.06
    assert abs((fraction_t == 0).mean() - (fraction_np == 0).mean()) < 0.06
    depth, valid = torch_out.depth, torch_out.valid
    assert (depth[~valid] == 0).all() and (depth[valid] > 0).all()
    # Holes are kept only while 30 % of a patch stays valid.
    assert (valid.float().mean(dim=(1, 2)) >= 0.3).all()


def test_flying_pixels_count_and_values():
    model = SensorDegradation(downsampling={'area': 1.0, 'point': 1.0}, noise={'none': 1.0},
                              quantization={'none': 1.0}, flying_prob=1.0, blob_prob=0.0,
                              edge_dropout_prob=0.0,
                              range_cut_prob=0.0, border_prob=0.0)
    numpy_out, torch_out = _both(model, _scene())
    count_np = np.mean([o.info['flying'] for o in numpy_out])
    count_t = torch_out.info['flying'].float().mean().item()
    assert count_np > 20 and count_t == pytest.approx(count_np, rel=0.1)
    # A flying pixel mixes two surfaces: it lies within the scene's depth range (box
    # averages and point samples do not overshoot, unlike the cubic kernels).
    depth = torch_out.depth[torch_out.valid]
    assert depth.min() >= 0.7 - 1e-5 and depth.max() <= _scene().max() + 1e-5


def test_sensor_frames_are_the_target_and_the_lr_samples_them():
    model = SensorDegradation(downsampling={'point': 1.0}, sensor_frame_prob=1.0, **QUIET)
    _, torch_out = _both(model, _scene(), patches=20)
    assert torch_out.info['sensor_frame'].all()
    target = torch_out.target.numpy()
    np.testing.assert_allclose(target * 1000, np.round(target * 1000), atol=2e-3)  # mm steps
    for index, (row, col) in enumerate(torch_out.info['phase'].numpy()):
        np.testing.assert_array_equal(torch_out.depth[index].numpy(),
                                      target[index, row::SCALE, col::SCALE])


def test_blur_and_padding_match_opencv():
    image = np.random.default_rng(0).random((2, 20, 24)).astype(np.float32)
    padded = symmetric_pad(torch.from_numpy(image), 3).numpy()
    np.testing.assert_array_equal(
        padded[0], cv2.copyMakeBorder(image[0], 3, 3, 3, 3, cv2.BORDER_REFLECT))
    sigmas = torch.tensor([0.8, 2.0])
    blurred = gaussian_blur(torch.from_numpy(image), sigmas, 2.0).numpy()
    for index, sigma in enumerate(sigmas.tolist()):
        expected = cv2.GaussianBlur(image[index], (0, 0), sigmaX=sigma,
                                    borderType=cv2.BORDER_REFLECT)
        np.testing.assert_allclose(blurred[index], expected, atol=1e-5)


def test_area_and_bilinear_match_the_numpy_kernels():
    hr = _scene()
    model = TorchSensorDegradation(SensorDegradation())
    batch = torch.from_numpy(hr)[None]
    for name in ('area', 'bilinear', 'cubic'):
        kind = torch.tensor([DOWNSAMPLING.index(name)])
        got = model._downsample(batch, kind, torch.tensor([[-1, -1]]), torch.tensor([1.0]),
                                SCALE)[0].numpy()
        np.testing.assert_allclose(got, sd.downsample(hr, SCALE, name), atol=2e-3)
