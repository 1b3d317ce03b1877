"""One depth scaling for training, evaluation and the node; mask-aware input; validity."""

import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import save_checkpoint
from dsr_ros.depth_scaling import SENSOR_SCALING, DepthScaling
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
from dsr_ros.scene import sensor_frame_mm
from training.data.patches import PatchDataset
from training.data.sample import RGBDSample
from training.data.sensor_degradation import SensorDegradation
from training.evaluation.methods import checkpoint_method


def _mask_model(seed=0, scale=4):
    torch.manual_seed(seed)
    return DSRNet(scale=scale, num_channels=6, num_blocks=1, in_channels=2).eval()


def _frame_mm(height=16, width=20, seed=0):
    """A room as a camera delivers it, plus holes at fixed places (frames this small may
    get none from sensor_frame_mm's blobs)."""
    frame = sensor_frame_mm(width, height, seed)
    frame[3:6, 4:9] = 0
    frame[10, 15] = 0
    return frame


def test_legacy_spellings_are_understood():
    assert DepthScaling.from_dict({'mode': 'minmax', 'max_value': 255.0}) == DepthScaling(
        'range', low_percentile=0.0, high_percentile=100.0)
    paper = DepthScaling.from_dict({'mode': 'fixed', 'max_value': 255.0,
                                    'unit': 'disparity_8bit / 255'})
    assert paper.unit == 'disparity_8bit' and paper.max_value == 255.0
    assert DepthScaling.from_dict(SENSOR_SCALING.to_dict()) == SENSOR_SCALING


def test_fixed_scaling_refuses_another_unit():
    with pytest.raises(ValueError, match='cannot scale depth in disparity_8bit'):
        SENSOR_SCALING.fit(np.ones(4), 'disparity_8bit')
    with pytest.raises(ValueError, match='mode must be one of'):
        DepthScaling('minmaxx')


def test_robust_range_ignores_one_flying_pixel():
    values = np.random.default_rng(0).uniform(1.0, 3.0, 10000)
    robust = DepthScaling('range', low_percentile=1.0, high_percentile=99.0)
    with_outlier = np.append(values, 80.0)
    a, b = robust.fit(values), robust.fit(with_outlier)
    assert abs(a.offset - b.offset) < 1e-3 and abs(a.span - b.span) / a.span < 1e-3
    plain = DepthScaling('range')
    assert plain.fit(with_outlier).span > 30 * plain.fit(values).span


def test_one_flying_pixel_does_not_change_the_rest_of_the_frame():
    model = _mask_model()
    resolver = DepthSuperResolver(model, SENSOR_SCALING.to_dict(), device='cpu')
    frame = _frame_mm(32, 32)
    spoiled = frame.copy()
    spoiled[0, 0] = 60000  # a 60 m flying pixel in one corner
    out, out2 = resolver.run(frame), resolver.run(spoiled)
    far = np.ones(out.shape, bool)
    far[:24, :24] = False  # outside the corner pixel's receptive field
    np.testing.assert_array_equal(out[far], out2[far])


def test_validity_passes_through_and_valid_output_is_positive():
    model = _mask_model()
    with torch.no_grad():  # push the output negative: valid pixels must stay > 0 anyway
        model.reconstruction[-1].bias.fill_(-5.0)
    resolver = DepthSuperResolver(model, SENSOR_SCALING.to_dict(), device='cpu')
    frame = _frame_mm()
    expected = np.repeat(np.repeat(frame > 0, 4, axis=0), 4, axis=1)
    out_mm = resolver.run(frame)
    np.testing.assert_array_equal(out_mm > 0, expected)
    metres = frame.astype(np.float32) / 1000
    metres[frame == 0] = np.nan
    out_m = resolver.run(metres)
    np.testing.assert_array_equal(np.isfinite(out_m), expected)
    assert (out_m[expected] > 0).all()


ROBUST_RANGE = DepthScaling('range', low_percentile=1.0, high_percentile=99.0)


@pytest.mark.parametrize('scaling', [SENSOR_SCALING, ROBUST_RANGE], ids=['metric', 'range'])
def test_training_evaluation_and_node_paths_agree(tmp_path, scaling):
    """The same LR frame through a training patch, the harness and the node's resolver."""
    model = _mask_model(seed=3)
    path = save_checkpoint(tmp_path / 'mask.pt', model, normalization=scaling.to_dict())
    lr_mm = _frame_mm(16, 16, seed=5)
    lr_m = lr_mm.astype(np.float32) / 1000
    valid = lr_mm > 0
    # Node path: uint16 millimetres with zeros.
    node = DepthSuperResolver.from_checkpoint(path, device='cpu').run(lr_mm).astype(np.float64)
    # Training path: an HR sample whose phase-0 point sampling is exactly this frame, with no
    # noise, quantisation or extra holes; metric unit, so no random range mapping.
    hr = np.repeat(np.repeat(np.where(valid, lr_m, 0), 4, axis=0), 4, axis=1)
    hr_valid = np.repeat(np.repeat(valid, 4, axis=0), 4, axis=1)
    identity = SensorDegradation(downsampling={'point': 1}, point_phase0_prob=1.0,
                                 noise={'none': 1}, quantization={'none': 1}, blob_prob=0,
                                 edge_dropout_prob=0, range_cut_prob=0, border_prob=0,
                                 flying_prob=0)
    sample = RGBDSample('frame', hr.astype(np.float32), hr_valid, 'metre')
    dataset = PatchDataset([sample], 4, patch_size=64, patches_per_epoch=1, min_valid_ratio=0,
                           rotate180=False, degradation='sensor', sensor=identity,
                           scaling=scaling, in_channels=2)
    item = dataset[0]
    np.testing.assert_array_equal(item['lr'][1].numpy(), valid.astype(np.float32))
    affine = scaling.fit(lr_m[valid], 'm')
    with torch.no_grad():
        trained = affine.inverse(model(item['lr'][None]).numpy()[0, 0])
    # Evaluation path: the harness's checkpoint method on a metric sample.
    evaluated, _ = checkpoint_method(path).predict(np.where(valid, lr_m, np.nan), sample, 4)
    out_valid = hr_valid
    np.testing.assert_allclose(node[out_valid] / 1000, trained[out_valid], atol=1e-3)
    np.testing.assert_allclose(evaluated[out_valid], trained[out_valid], atol=1e-5)


def test_a_depth_only_checkpoint_warm_starts_a_mask_aware_net(tmp_path):
    from training.warm_start import init_dsrnet_from
    torch.manual_seed(1)
    old = DSRNet(scale=4, num_channels=6, num_blocks=1, in_channels=1).eval()
    path = save_checkpoint(tmp_path / 'old.pt', old)
    new = DSRNet(scale=4, num_channels=6, num_blocks=1, in_channels=2).eval()
    init_dsrnet_from(new, str(path))
    depth = torch.rand(1, 1, 8, 10)
    mask = (torch.rand(1, 1, 8, 10) > 0.3).float()
    with torch.no_grad():  # the mask's weights start at zero: the new net is the old one
        torch.testing.assert_close(new(torch.cat([depth, mask], 1)), old(depth))
    wider = DSRNet(scale=4, num_channels=8, num_blocks=1, in_channels=2)
    with pytest.raises(ValueError, match='does not fit this DSRNet'):
        init_dsrnet_from(wider, str(path))


def test_range_jitter_widens_the_patch_range_but_keeps_the_net_input_consistent():
    hr = np.tile(np.linspace(1.0, 2.0, 64, dtype=np.float32), (64, 1))
    sample = RGBDSample('ramp', hr, np.ones(hr.shape, bool), 'metre')
    scaling = DepthScaling('range', low_percentile=1.0, high_percentile=99.0)
    plain = PatchDataset([sample], 4, patch_size=64, patches_per_epoch=4, min_valid_ratio=0,
                         degradation='sensor', scaling=scaling, in_channels=2)
    jittered = PatchDataset([sample], 4, patch_size=64, patches_per_epoch=4, min_valid_ratio=0,
                            degradation='sensor', scaling=scaling, in_channels=2,
                            scaling_jitter=3.0)
    spans = []
    for index in range(4):
        a, b = plain[index], jittered[index]
        spans.append(float(np.ptp(b['hr'].numpy())) / float(np.ptp(a['hr'].numpy())))
        # The same affine map scales the LR input and the HR target.
        lr_b = b['lr'][0].numpy()
        np.testing.assert_allclose(np.ptp(lr_b) / np.ptp(a['lr'][0].numpy()), spans[-1],
                                   rtol=1e-4)
    assert all(1 / 3 - 1e-6 <= s <= 1 + 1e-6 for s in spans) and min(spans) < 0.95
    with pytest.raises(ValueError, match='scaling_jitter'):
        PatchDataset([sample], 4, patch_size=64, patches_per_epoch=1, degradation='sensor',
                     scaling_jitter=0.5)


def test_range_floor_keeps_a_flat_frame_from_being_stretched():
    wall = np.random.default_rng(0).normal(2.0, 0.002, 5000)  # a wall with 2 mm noise
    floored = DepthScaling('range', low_percentile=1.0, high_percentile=99.0,
                           min_relative_span=0.1)
    assert floored.fit(wall).span == pytest.approx(0.1 * np.percentile(wall, 99), rel=1e-6)
    assert DepthScaling('range', low_percentile=1.0, high_percentile=99.0).fit(wall).span < 0.02
    assert DepthScaling.from_dict(floored.to_dict()) == floored
    with pytest.raises(ValueError, match='min_relative_span'):
        DepthScaling('range', min_relative_span=-1.0)


def test_a_checkpoint_of_another_scale_starts_only_the_scale_independent_layers(tmp_path):
    from training.warm_start import init_dsrnet_from
    torch.manual_seed(2)
    x4 = DSRNet(scale=4, num_channels=6, num_blocks=1, in_channels=2)
    path = save_checkpoint(tmp_path / 'x4.pt', x4)
    x2 = DSRNet(scale=2, num_channels=6, num_blocks=1, in_channels=2)
    before = {k: v.clone() for k, v in x2.state_dict().items()}
    init_dsrnet_from(x2, str(path))
    after = x2.state_dict()
    for key, value in after.items():
        if key.startswith(('shallow.', 'reconstruction.')):
            torch.testing.assert_close(value, x4.state_dict()[key])
        else:
            torch.testing.assert_close(value, before[key])


def test_a_decimated_sensor_frame_patch_is_scored_against_that_frame():
    """The patch target is the camera's frame whose every 4th pixel the LR input keeps."""
    ramp = np.tile(np.linspace(1.5, 3.0, 128, dtype=np.float32), (128, 1))
    sample = RGBDSample('ramp', ramp, np.ones(ramp.shape, bool), 'metre')
    frames = SensorDegradation(downsampling={'point': 1}, point_phase0_prob=1.0,
                               sensor_frame_prob=1.0, blob_prob=0, edge_dropout_prob=0,
                               range_cut_prob=0, border_prob=0)
    dataset = PatchDataset([sample], 4, patch_size=64, patches_per_epoch=1, min_valid_ratio=0,
                           rotate180=False, degradation='sensor', sensor=frames,
                           scaling=DepthScaling(mode='range'), in_channels=2)
    item = dataset[0]
    hr, lr = item['hr'][0].numpy(), item['lr'][0].numpy()
    np.testing.assert_allclose(lr, hr[::4, ::4], atol=1e-6)
    clean = np.linspace(1.5, 3.0, 128)
    assert len(np.unique(hr[0])) < len(np.unique(clean[:64]))  # terraces, not the ramp


ROBUST = DepthScaling('range', low_percentile=1.0, high_percentile=99.0, min_relative_span=0.1)


@pytest.mark.parametrize('scaling', [ROBUST, DepthScaling('range'), SENSOR_SCALING],
                         ids=['robust', 'minmax', 'fixed'])
def test_fitting_many_rows_at_once_gives_each_row_its_own_fit_bit_for_bit(scaling):
    """The node fits hundreds of LR tiles in one pass (``fit_rows``); each must get exactly
    the map ``fit`` gives its valid values, whatever their number, and an empty row NaN."""
    rng = np.random.default_rng(0)
    rows = np.full((60, 300), np.nan)
    for index, count in enumerate(rng.integers(1, 300, 60)):
        values = rng.uniform(0.3, 6.0, count).astype(np.float32)
        if index % 5 == 0:
            values[:] = values[0]  # a flat tile: the span floor
        rows[index, rng.permutation(300)[:count]] = values
    rows[7] = np.nan
    offsets, spans = scaling.fit_rows(rows, 'm')
    for index, row in enumerate(rows):
        if index == 7 and scaling.mode == 'range':
            assert np.isnan(offsets[index]) and np.isnan(spans[index])
            continue
        expected = scaling.fit(row[~np.isnan(row)], 'm')
        assert (offsets[index], spans[index]) == (expected.offset, expected.span)
    with pytest.raises(ValueError, match='rows, values'):
        scaling.fit_rows(rows[0], 'm')
