"""PatchDataset: deterministic under a seed, valid-ratio re-draws, rotation, item layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.data.degradation import degrade
from training.data.patches import PatchDataset, normalization_range
from training.data.sample import RGBDSample
from training.data.synthetic import synthetic_samples


def sample(name='s', height=64, width=96, holes=None, rgb=True, seed=0) -> RGBDSample:
    """A synthetic room (8-bit disparity + RGB) named ``name``, with ``holes`` set to 0."""
    room = synthetic_samples(1, height, width, seed=seed, with_rgb=rgb)[0]
    depth, valid = room.depth, room.valid
    if holes is not None:
        valid[holes] = False
        depth[holes] = 0
    return RGBDSample(name, depth, valid, 'disparity_8bit', rgb=room.rgb)


def items_equal(a, b) -> bool:
    return all(torch.equal(a[key], b[key]) for key in ('lr', 'hr', 'valid', 'rgb', 'has_rgb'))


def test_same_seed_same_patches_any_order():
    data = [sample(seed=1), sample('t', seed=2)]
    first = PatchDataset(data, scale=4, patch_size=32, patches_per_epoch=6, seed=7)
    second = PatchDataset(data, scale=4, patch_size=32, patches_per_epoch=6, seed=7)
    forward = [first[i] for i in range(6)]
    backward = [second[i] for i in reversed(range(6))][::-1]
    assert all(items_equal(a, b) for a, b in zip(forward, backward))
    other = PatchDataset(data, scale=4, patch_size=32, patches_per_epoch=6, seed=8)
    assert not all(items_equal(a, other[i]) for i, a in enumerate(forward))
    first.set_epoch(1)
    assert not all(items_equal(a, first[i]) for i, a in enumerate(forward))


def test_item_layout_and_lr_is_the_degraded_hr():
    data = PatchDataset([sample()], scale=4, patch_size=32, patches_per_epoch=3,
                        rotate180=False, normalization='fixed')
    item = data[0]
    assert item['lr'].shape == (1, 8, 8) and item['hr'].shape == (1, 32, 32)
    assert item['valid'].shape == (1, 32, 32) and item['rgb'].shape == (3, 32, 32)
    assert bool(item['has_rgb'])
    hr = item['hr'][0].numpy() * 255.0
    expected = degrade(hr, 4, round_to_uint8=True) / 255.0
    assert np.allclose(item['lr'][0].numpy(), expected, atol=1e-6)


def test_min_valid_ratio_redraws_patches():
    holes = np.zeros((64, 96), bool)
    holes[:, :64] = True  # only the right third is valid
    data = PatchDataset([sample(holes=holes)], scale=4, patch_size=32, patches_per_epoch=20,
                        min_valid_ratio=1.0, rotate180=False)
    ratios = [float(data[i]['valid'].mean()) for i in range(20)]
    assert np.mean(ratios) > 0.9  # ten tries per item find the valid third
    lax = PatchDataset([sample(holes=holes)], scale=4, patch_size=32, patches_per_epoch=20,
                       min_valid_ratio=0.0, rotate180=False)
    assert np.mean([float(lax[i]['valid'].mean()) for i in range(20)]) < 0.6


def test_rotation_is_a_180_degree_turn_of_hr_rgb_and_valid():
    holes = np.zeros((32, 32), bool)
    holes[0, 0] = True
    base = sample(height=32, width=32, holes=holes)
    plain = PatchDataset([base], scale=4, patch_size=32, patches_per_epoch=40,
                         rotate180=False, min_valid_ratio=0.0)
    turned = PatchDataset([base], scale=4, patch_size=32, patches_per_epoch=40,
                          rotate180=True, min_valid_ratio=0.0)
    flips = 0
    for index in range(40):
        a, b = plain[index], turned[index]
        if torch.equal(a['hr'], b['hr']):
            continue
        flips += 1
        for key in ('hr', 'valid', 'rgb'):
            assert torch.equal(b[key], torch.flip(a[key], dims=(1, 2)))
    assert 5 < flips < 35  # probability 1/2


def test_normalization_and_refusals():
    s = sample()
    assert normalization_range(s, 'fixed') == (0.0, 255.0)
    low, span = normalization_range(s, 'minmax')
    assert low == s.depth.min() and span == pytest.approx(s.depth.max() - s.depth.min())
    with pytest.raises(ValueError, match='multiple of scale'):
        PatchDataset([s], scale=3, patch_size=32)
    with pytest.raises(ValueError, match='with RGB'):
        PatchDataset([sample(rgb=False)], scale=4, patch_size=32, require_rgb=True)
