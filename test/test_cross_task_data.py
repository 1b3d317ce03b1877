"""RGB-D data for the cross-task teachers (issue 28, item 5).

The synthetic rooms' edge kinds and their switches, the on-disk cache that makes thousands of
rooms fit in memory, RGB + depth pairs from a bag, and the per-run pixel counts in the history.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import ablation
from training.data import synthetic
from training.data.patches import PatchDataset
from training.data.synthetic import (TEXTURE_ODDS, TEXTURE_PROB, _texture_odds, room_samples,
                                     synthetic_samples)
from training.run_data import load_source
from training.trainer import Trainer

from test_training import tiny_config


def _painted(room, texture_prob: float, seed: int) -> list:
    """Per surface of ``room``: whether its texture varies inside it (edges on flat depth)."""
    rng = np.random.default_rng(seed)
    out = []
    for index in np.unique(room.surface):
        mask = room.surface == index
        factor = synthetic._texture(room, int(index), mask, rng, texture_prob)[mask]
        out.append(bool(factor.std() > 0))
    return out


def test_texture_prob_switches_texture_edges_inside_flat_depth():
    rooms = [synthetic.render_room(np.random.default_rng(seed), 80, 64) for seed in range(3)]
    plain = [v for seed, room in enumerate(rooms) for v in _painted(room, 0.0, seed)]
    textured = [v for seed, room in enumerate(rooms) for v in _painted(room, 1.0, seed)]
    assert not any(plain)  # colour edges only where surfaces (and depth) meet
    assert np.mean(textured) > 0.8
    # Same geometry whatever the paint: the switch never moves a depth edge.
    a = synthetic_samples(2, 64, 80, seed=5, texture_prob=0.0, weak_contrast_prob=1.0)
    b = synthetic_samples(2, 64, 80, seed=5, texture_prob=1.0, weak_contrast_prob=0.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.depth, y.depth)
        assert not np.array_equal(x.rgb, y.rgb)


def test_default_texture_odds_are_the_old_ones():
    # The default must draw the textures it always drew (running ablations stay reproducible).
    assert _texture_odds(TEXTURE_PROB) == list(TEXTURE_ODDS)
    assert sum(_texture_odds(0.5)) == pytest.approx(1.0)
    assert _texture_odds(0.0)[0] == 1.0
    with pytest.raises(ValueError):
        _texture_odds(1.5)


def test_cache_serves_the_same_samples_memory_mapped(tmp_path, monkeypatch):
    fresh = synthetic_samples(3, 64, 80, seed=7, hole_fraction=0.1)
    first = synthetic_samples(3, 64, 80, seed=7, hole_fraction=0.1, cache=str(tmp_path))
    rooms = room_samples(2, 48, 64, seed=3)
    cached_rooms = room_samples(2, 48, 64, seed=3, cache=str(tmp_path))

    def no_render(*args, **kwargs):
        raise AssertionError('a cached sample was rendered again')
    monkeypatch.setattr(synthetic, 'render_room', no_render)
    monkeypatch.setattr(synthetic, 'random_room', no_render)
    again = synthetic_samples(2, 64, 80, seed=7, hole_fraction=0.1, cache=str(tmp_path))
    again_rooms = room_samples(2, 48, 64, seed=3, cache=str(tmp_path))
    for a, b, c in zip(fresh, first, again):
        assert a.name == b.name == c.name
        for key in ('depth', 'valid', 'rgb'):
            np.testing.assert_array_equal(getattr(a, key), getattr(c, key))
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert isinstance(c.depth, np.memmap)
    for a, b, c in zip(rooms, cached_rooms, again_rooms):
        np.testing.assert_array_equal(a.depth, c.depth)
        assert c.rgb is None and c.unit == 'metre'
    # Each parameter set has its own folder, never a stale hit.
    assert len(list(tmp_path.iterdir())) == 2
    # A patch set over mapped, hole-free samples maps their depth instead of copying it.
    patches = PatchDataset(again_rooms, scale=4, patch_size=32, patches_per_epoch=2,
                           degradation='sensor')
    assert isinstance(patches._depth[0], np.memmap)
    assert float(patches[0]['hr'].std()) > 0


def test_rosbag_source_feeds_rgb_depth_pairs_to_the_teachers(tmp_path):
    from training.data.bag_writer import DEPTH_TOPIC, RGB_TOPIC, BagFrame, write_bag
    rooms = synthetic_samples(3, 64, 80, seed=2)
    frames = [BagFrame(depth=np.round(1000.0 * 40.0 / s.depth).astype(np.uint16), rgb=s.rgb)
              for s in rooms]
    bag = tmp_path / 'rgbd_bag'
    write_bag(bag, frames, storage='mcap')
    samples = load_source({'type': 'rosbag', 'path': str(bag), 'depth_topic': DEPTH_TOPIC,
                           'rgb_topic': RGB_TOPIC})
    assert len(samples) == 3
    for sample, room in zip(samples, rooms):
        assert sample.unit == 'millimetre' and sample.rgb is not None
        np.testing.assert_array_equal(sample.rgb, room.rgb)
    teacher_patches = PatchDataset(samples, scale=4, patch_size=32, patches_per_epoch=2,
                                   require_rgb=True, degradation='sensor')
    item = teacher_patches[0]
    assert bool(item['has_rgb']) and float(item['rgb'].std()) > 0


def test_history_counts_the_pixels_each_net_trained_on(tmp_path):
    config = tiny_config(stage1_epochs=1, stage2_epochs=1, role_policy='dsr_student')
    trainer = Trainer(config, tmp_path, synthetic_samples(4, 96, 128, seed=0),
                      synthetic_samples(1, 96, 128, seed=1), progress=False)
    trainer.train()
    data = config['data']
    patch = data['patch_size'] ** 2
    depth = data['patches_per_epoch']
    rgb = data['rgb_patches_per_epoch'] or depth
    first, second = trainer.history
    assert first['hr_pixels_seen'] == depth * patch and first['rgb_pixels_seen'] == rgb * patch
    # Stage 2, DSRNet the student on the depth patches: the teacher's pixels stay put.
    assert second['hr_pixels_seen'] == 2 * depth * patch
    assert second['rgb_pixels_seen'] == rgb * patch
    header = (tmp_path / 'history.csv').read_text().splitlines()[0].split(',')
    assert {'hr_pixels_seen', 'rgb_pixels_seen'} <= set(header)
    # The ablation table takes the history's count over the config's estimate.
    arm = tmp_path / 'results' / 'full_guided' / 'seed0'
    arm.mkdir(parents=True)
    (arm / 'history.csv').write_text((tmp_path / 'history.csv').read_text())
    (arm / 'config.json').write_text(json.dumps(config))
    budget = ablation._budget(None, tmp_path / 'results', ['full_guided'])['full_guided']
    assert budget['hr_pixels_from'] == 'history'
    assert budget['hr_pixels'] == 2 * depth * patch
    assert budget['rgb_pixels_seen'] == [rgb * patch]
