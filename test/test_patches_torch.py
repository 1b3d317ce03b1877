"""DevicePatchSampler: PatchDataset's sensor path as batches in torch (run here on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsr_ros.depth_scaling import DepthScaling
from training.data.patches import PatchDataset
from training.data.patches_torch import DevicePatchSampler
from training.data.sample import RGBDSample
from training.data.sensor_degradation import SensorDegradation

RANGE = DepthScaling('range', low_percentile=1.0, high_percentile=99.0, min_relative_span=0.1,
                     fit_tile=32)


def _samples(unit: str = 'metre'):
    rng = np.random.default_rng(0)
    samples = []
    for index in range(3):
        depth = np.cumsum(rng.uniform(0.5, 4.0, (120, 150)), axis=1).astype(np.float32) / 100
        valid = rng.random(depth.shape) > 0.05
        valid[:40, :60] = index != 0  # one frame has a large hole: crops must avoid it
        samples.append(RGBDSample(f'frame{index}', depth, valid, unit))
    return samples


def test_batches_look_like_patch_dataset_items():
    samples = _samples()
    dataset = PatchDataset(samples, 4, 48, 200, degradation='sensor', scaling=RANGE,
                           in_channels=2, min_valid_ratio=0.8)
    items = [dataset[index] for index in range(200)]
    sampler = DevicePatchSampler(samples, 4, 48, torch.device('cpu'), scaling=RANGE,
                                 in_channels=2, min_valid_ratio=0.8)
    batch = sampler.batch(200, torch.Generator().manual_seed(0))
    for key, shape in (('lr', (200, 2, 12, 12)), ('hr', (200, 1, 48, 48)),
                       ('valid', (200, 1, 48, 48))):
        reference = torch.stack([item[key] for item in items])
        assert tuple(batch[key].shape) == shape == tuple(reference.shape)
        assert batch[key].mean().item() == pytest.approx(reference.mean().item(), abs=0.03)
        assert batch[key].std().item() == pytest.approx(reference.std().item(), rel=0.1)


def test_loss_mask_inputs_and_reproducibility():
    sampler = DevicePatchSampler(_samples('disparity_8bit'), 4, 48, torch.device('cpu'),
                                 scaling=RANGE, in_channels=2, scaling_jitter=1.5,
                                 sensor=SensorDegradation(blob_prob=1.0))
    first = sampler.batch(32, torch.Generator().manual_seed(3))
    again = sampler.batch(32, torch.Generator().manual_seed(3))
    for key in first:
        torch.testing.assert_close(first[key], again[key])
    lr_valid = first['lr'][:, 1] > 0.5
    assert (~lr_valid).any() and lr_valid.flatten(1).any(dim=1).all()
    # The loss covers only HR pixels under a valid LR pixel.
    under = lr_valid.repeat_interleave(4, 1).repeat_interleave(4, 2)
    assert not (first['valid'][:, 0].bool() & ~under).any()
    assert torch.isfinite(first['lr']).all() and torch.isfinite(first['hr']).all()


def test_crops_avoid_a_large_hole_and_small_frames_are_refused():
    sampler = DevicePatchSampler(_samples(), 4, 48, torch.device('cpu'), min_valid_ratio=0.9)
    which, top, left = sampler._draw(400, torch.Generator().manual_seed(1))
    in_hole = (which == 0) & (top < 40 - 24) & (left < 60 - 24)
    assert not in_hole.any()
    assert ((top % 4 == 0) & (left % 4 == 0)).all()
    with pytest.raises(ValueError, match='no sample is at least 256px'):
        DevicePatchSampler(_samples(), 4, 256, torch.device('cpu'))
