"""The sensor degradation model: each family's own statistic, reproducibility, config errors."""

import numpy as np
import pytest

from training.data import sensor_degradation as sd
from training.data import sensor_noise as sn
from training.data.sensor_degradation import SensorDegradation


def _plane(depth=2.0, size=64):
    return np.full((size, size), depth, np.float32)


def _step(size=64, near=1.0, far=3.0):
    hr = np.full((size, size), far, np.float32)
    hr[:, : size // 2] = near
    return hr


def test_point_sampling_keeps_the_pixel_at_its_phase():
    hr = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    for phase in [(0, 0), (1, 3), (3, 2)]:
        lr = sd.downsample(hr, 4, 'point', phase=phase)
        assert lr.shape == (16, 16)
        assert lr[2, 5] == hr[4 * 2 + phase[0], 4 * 5 + phase[1]]


def test_point_phase_is_zero_or_uniform_as_configured():
    model = SensorDegradation(downsampling={'point': 1.0}, point_phase0_prob=0.5)
    phases = [model.apply(_plane(), np.ones((64, 64), bool), 4,
                          np.random.default_rng(seed)).info['phase'] for seed in range(400)]
    zero = sum(p == (0, 0) for p in phases) / len(phases)
    # P(phase 0) = 0.5 + 0.5 / 16 for the uniform half.
    assert 0.45 < zero < 0.62
    assert len(set(phases)) == 16


@pytest.mark.parametrize('scale,centre', [(2, 0), (4, 1), (8, 3)])
def test_point_phase_centre_is_always_the_pixel_nearest_the_block_centre(scale, centre):
    model = SensorDegradation(downsampling={'point': 1.0}, point_phase='centre')
    phases = {model.apply(_plane(), np.ones((64, 64), bool), scale,
                          np.random.default_rng(seed)).info['phase'] for seed in range(20)}
    assert phases == {(centre, centre)}
    with pytest.raises(ValueError, match="point_phase must be one of .*'centre'"):
        SensorDegradation(point_phase='random')


def test_area_is_the_block_mean_and_mixes_depths_at_edges():
    hr = _step()
    hr[:, 30] = 2.0  # an edge that does not fall on a block boundary
    lr = sd.downsample(hr, 4, 'area')
    np.testing.assert_allclose(lr, hr.reshape(16, 4, 16, 4).mean(axis=(1, 3)), rtol=1e-6)
    assert 1.0 < lr[0, 7] < 3.0


def test_tof_noise_sigma_is_proportional_to_depth():
    rng = np.random.default_rng(0)
    for depth in (1.0, 4.0):
        noisy = sn.add_tof_noise(_plane(depth, 256), rng, 0.01)
        assert np.std(noisy - depth) == pytest.approx(0.01 * depth, rel=0.05)


def test_structured_light_sigma_grows_with_depth_squared():
    rng = np.random.default_rng(0)
    sigmas = [np.std(sn.add_structured_light_noise(_plane(depth, 256), rng, 40.0, 0.05, 0)
                     - depth) for depth in (1.0, 2.0)]
    assert sigmas[0] == pytest.approx(1.0 ** 2 * 0.05 / 40.0, rel=0.1)
    assert sigmas[1] / sigmas[0] == pytest.approx(4.0, rel=0.15)


def test_structured_light_disparity_is_quantised_to_eighth_pixels():
    rng = np.random.default_rng(1)
    depth = np.linspace(1.0, 3.0, 4096, dtype=np.float32).reshape(64, 64)
    noisy = sn.add_structured_light_noise(depth, rng, 40.0, 0.0, 8)
    disparity = 40.0 / noisy.astype(np.float64)
    np.testing.assert_allclose(disparity * 8, np.round(disparity * 8), atol=1e-3)


def test_quantisation_steps():
    depth = np.linspace(1.0, 2.0, 1000, dtype=np.float32).reshape(10, 100)
    mm = sn.quantize(depth, 'mm')
    np.testing.assert_allclose(mm * 1000, np.round(mm * 1000), atol=1e-3)
    assert len(np.unique(sn.quantize(depth, '8bit'))) <= 256


def test_blob_holes_cover_about_the_requested_fraction():
    fractions = [sn.blob_holes((64, 64), np.random.default_rng(s), 0.05).mean()
                 for s in range(50)]
    assert 0.05 <= np.mean(fractions) < 0.15


def test_edge_dropouts_hit_only_the_far_side_of_edges():
    hr = _step(near=1.0, far=3.0)
    holes = sn.edge_dropouts(hr, np.random.default_rng(0), rate=1.0)
    assert holes[:, 32].all() and holes.sum() == 64  # the far column next to the edge


def test_border_holes_and_range_cut():
    mask = sn.border_holes((20, 30), np.random.default_rng(3), 3)
    assert mask[:, 0].any() or mask[0].any() or mask[-1].any() or mask[:, -1].any()
    assert not mask[3:-3, 3:-3].any()
    model = SensorDegradation(downsampling={'area': 1}, noise={'none': 1},
                              quantization={'none': 1}, range_cut_prob=1.0, blob_prob=0,
                              edge_dropout_prob=0, border_prob=0, flying_prob=0)
    ramp = np.tile(np.linspace(0.5, 5.0, 64, dtype=np.float32), (64, 1))
    cut = 0
    for seed in range(10):
        out = model.apply(ramp, np.ones((64, 64), bool), 4, np.random.default_rng(seed))
        cut += int((~out.valid).sum())
        # Only the nearest and farthest columns (the range's ends) are ever cut.
        assert out.valid[:, 2:-2].all()
    assert cut > 0


def test_flying_pixels_lie_between_the_two_surfaces():
    hr = _step(near=1.0, far=3.0)
    model = SensorDegradation(downsampling={'point': 1}, point_phase0_prob=1.0,
                              noise={'none': 1}, quantization={'none': 1}, flying_prob=1.0,
                              flying_rate=(1.0, 1.0), blob_prob=0, edge_dropout_prob=0,
                              range_cut_prob=0, border_prob=0)
    out = model.apply(hr, np.ones(hr.shape, bool), 4, np.random.default_rng(0))
    edge = out.depth[:, 7:9]
    assert out.info['flying'] > 0
    assert ((edge > 1.0) & (edge < 3.0)).any()
    assert ((out.depth >= 1.0 - 1e-6) & (out.depth <= 3.0 + 1e-6)).all()


def test_same_seed_same_patch_and_holes_are_recorded():
    model = SensorDegradation()
    hr, valid = _step(), np.ones((64, 64), bool)
    first = model.apply(hr, valid, 4, np.random.default_rng([7, 1, 3]))
    again = model.apply(hr, valid, 4, np.random.default_rng([7, 1, 3]))
    np.testing.assert_array_equal(first.depth, again.depth)
    np.testing.assert_array_equal(first.valid, again.valid)
    assert first.info == again.info
    assert (first.depth[~first.valid] == 0).all() and (first.depth[first.valid] > 0).all()


def test_hr_holes_become_lr_holes():
    valid = np.ones((64, 64), bool)
    valid[:8, :8] = False
    model = SensorDegradation(downsampling={'area': 1}, noise={'none': 1},
                              quantization={'none': 1}, blob_prob=0, edge_dropout_prob=0,
                              range_cut_prob=0, border_prob=0, flying_prob=0)
    out = model.apply(_plane(), valid, 4, np.random.default_rng(0))
    assert not out.valid[:2, :2].any() and out.valid[2:, 2:].all()


def test_config_errors_are_specific():
    with pytest.raises(ValueError, match='unknown sensor degradation keys'):
        SensorDegradation.from_config({'noize': {}})
    with pytest.raises(ValueError, match='downsampling: unknown entries'):
        SensorDegradation.from_config({'downsampling': {'lanczos9': 1.0}})
    with pytest.raises(ValueError, match='blob_prob'):
        SensorDegradation.from_config({'blob_prob': 2.0})
    loaded = SensorDegradation.from_config({'tof_relative_sigma': [0.002, 0.004]})
    assert loaded.tof_relative_sigma == (0.002, 0.004)
    assert SensorDegradation.from_config(loaded.to_dict()) == loaded


def test_structured_light_frame_noise_is_correlated_with_its_sigma_and_terraced():
    rng = np.random.default_rng(0)
    depth, fb = 2.0, 40.0
    frame = sn.structured_light_frame(_plane(depth, 256), rng, fb, 0.05, 2.0, subpixel=0)
    disparity_error = fb / frame - fb / depth
    assert np.std(disparity_error) == pytest.approx(0.05, rel=0.15)
    neighbour = np.corrcoef(disparity_error[:, :-1].ravel(), disparity_error[:, 1:].ravel())[0, 1]
    assert neighbour > 0.8  # block matching shares its error with the neighbours
    # With 1/8-px steps a slanted plane becomes terraces of exact disparity levels.
    ramp = np.tile(np.linspace(2.5, 3.0, 256, dtype=np.float32), (64, 1))
    terraced = sn.structured_light_frame(ramp, rng, fb, 0.02, 1.0, subpixel=8)
    levels = fb / terraced * 8
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    # 16 -> 13.3 px of disparity is about 21 levels of 1/8 px (one more for the noise).
    assert len(np.unique(terraced)) <= (fb / 2.5 - fb / 3.0) * 8 + 3


def test_a_decimated_sensor_frame_is_its_own_target_and_only_point_sampled():
    hr = np.tile(np.linspace(1.0, 3.0, 64, dtype=np.float32), (64, 1))
    model = SensorDegradation(downsampling={'point': 1}, point_phase0_prob=1.0,
                              sensor_frame_prob=1.0, blob_prob=0, edge_dropout_prob=0,
                              range_cut_prob=0, border_prob=0)
    out = model.apply(hr, np.ones(hr.shape, bool), 4, np.random.default_rng(3))
    assert out.info['sensor_frame'] and out.target is not None
    assert not np.allclose(out.target, hr)  # the camera's frame, not the scene
    # The LR pixels are the target's own pixels at the phase: no noise on top.
    np.testing.assert_array_equal(out.depth, out.target[::4, ::4])
    area = SensorDegradation(downsampling={'area': 1}, sensor_frame_prob=1.0)
    assert area.apply(hr, np.ones(hr.shape, bool), 4, np.random.default_rng(3)).target is None


def test_sensor_frames_off_by_default_draw_what_they_drew_before():
    """A probability of 0 must not consume random numbers: old configs keep their patches."""
    hr, valid = _step(), np.ones((64, 64), bool)
    default = SensorDegradation().apply(hr, valid, 4, np.random.default_rng([5, 2]))
    assert default.target is None and 'sensor_frame' not in default.info
    some = SensorDegradation(sensor_frame_prob=0.5)
    fractions = [some.apply(hr, valid, 4, np.random.default_rng(seed)).target is not None
                 for seed in range(300)]
    # point sampling is 0.3 of the default mix, half of that becomes a sensor frame
    assert 0.08 < np.mean(fractions) < 0.23
