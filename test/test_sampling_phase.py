"""A known point-sampling phase moves the output by ``phase - alignment`` (and nothing else);
the alignment is measured on validation frames, stored in the checkpoint and checked."""


import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
from dsr_ros.sampling_geometry import SamplingGeometry
from dsr_ros.sampling_phase import (checkpoint_alignment, keep_samples, move_output,
                                    parse_phase, shift_output)
from dsr_ros.weights import shipped_models

REPO = __import__('pathlib').Path(__file__).resolve().parents[1]
SCALING = DepthScaling('range', low_percentile=1.0, high_percentile=99.0).to_dict()


def _checkpoint(path, sampling=None):
    torch.manual_seed(0)
    model = DSRNet(scale=4, num_channels=4, num_blocks=1, in_channels=2)
    return save_checkpoint(path, model, normalization=SCALING, sampling=sampling,
                           provenance={'command': 'test'})


def test_a_sub_pixel_move_is_exact_on_a_ramp():
    """Linear interpolation reproduces a linear ramp exactly: moving it by (0.5, -0.25) is
    the ramp evaluated half a pixel up and a quarter to the right, away from the border."""
    rows, cols = np.mgrid[0:12, 0:16].astype(np.float64)
    ramp = (3.0 * rows + 0.5 * cols + 100.0).astype(np.float32)
    moved = move_output(ramp, 0.5, -0.25)
    expected = 3.0 * (rows - 0.5) + 0.5 * (cols + 0.25) + 100.0
    np.testing.assert_allclose(moved[1:, :-1], expected[1:, :-1], rtol=0, atol=1e-4)
    # The top row reads row -0.5, clamped to row 0 (the border repeats).
    np.testing.assert_allclose(moved[0, :-1], ramp[0, :-1] + 0.5 * 0.25, atol=1e-4)
    assert move_output(ramp, 2.0, -1.0).tolist() == shift_output(ramp, 2, -1).tolist()
    assert move_output(ramp, 0.0, 0.0) is ramp


def test_the_resolver_moves_native_output_by_its_recorded_alignment(tmp_path):
    """A net recorded to place native samples at (1.0, 1.25) gets its output moved to the
    centre (1.5, 1.5) by (0.5, 0.25); a centred or unrecorded one is left alone."""
    lr = (1500 + 7 * np.mgrid[0:12, 0:16][1]).astype(np.uint16)
    native = SamplingGeometry('native')
    plain = DepthSuperResolver.from_checkpoint(
        _checkpoint(tmp_path / 'a.pt', {'point_alignment': [1, 1]}), device='cpu')
    placed = plain.run(lr.astype(np.float32) / 1000, geometry=native)
    np.testing.assert_array_equal(placed, plain.run(lr.astype(np.float32) / 1000))
    recorded = DepthSuperResolver.from_checkpoint(
        _checkpoint(tmp_path / 'b.pt', {'point_alignment': [1, 1],
                                        'native_alignment': [1.0, 1.25]}), device='cpu')
    assert recorded.output_move(native) == (0.5, 0.25)
    np.testing.assert_allclose(recorded.run(lr.astype(np.float32) / 1000, geometry=native),
                               move_output(placed, 0.5, 0.25), rtol=1e-6)
    decimated = SamplingGeometry('decimated', (3, 0))
    assert recorded.output_move(decimated) == (2.0, -1.0)
    with pytest.raises(CheckpointError, match='native_alignment'):
        bad = {'point_alignment': [1, 1], 'native_alignment': [9.0, 0.0]}
        load_checkpoint(_checkpoint(tmp_path / 'c.pt', bad))


def test_shift_moves_pixels_and_repeats_the_edge():
    image = np.arange(20, dtype=np.float32).reshape(4, 5)
    moved = shift_output(image, 1, -2)
    assert np.array_equal(moved[1:, :3], image[:3, 2:])
    assert np.array_equal(moved[0, :3], image[0, 2:])  # the row entering from the top
    assert np.array_equal(moved[1:, 3], image[:3, 4])
    assert np.array_equal(moved[1:, 4], image[:3, 4])
    assert shift_output(image, 0, 0) is image
    with pytest.raises(ValueError, match='cannot shift'):
        shift_output(image, 4, 0)


def test_phase_values_are_checked_against_the_scale():
    assert parse_phase(None, 4) is None and parse_phase([-1, -1], 4) is None
    assert parse_phase([0, 3], 4) == (0, 3)
    for bad in ([4, 0], [0, -1], [1, 2, 3]):
        with pytest.raises(ValueError, match='sampling_phase'):
            parse_phase(bad, 4)


def test_a_known_phase_moves_values_but_not_validity(tmp_path):
    path = _checkpoint(tmp_path / 'm.pt', {'point_alignment': [1, 1]})
    assert checkpoint_alignment(load_checkpoint(path)[1]) == (1, 1)
    rows, cols = np.mgrid[0:24, 0:32]
    lr = (1.5 + 0.02 * cols + (rows > 12) * 0.4).astype(np.float32)
    lr[3:5, 6:9] = np.nan
    unknown = DepthSuperResolver.from_checkpoint(path, device='cpu').run(lr)
    told = DepthSuperResolver.from_checkpoint(path, device='cpu', sampling_phase=(3, 0),
                                              keep_samples=False).run(lr)
    assert np.array_equal(np.isnan(told), np.isnan(unknown))  # holes stay s x s blocks
    # phase (3, 0) - alignment (1, 1): two rows down, one column left
    expected = shift_output(unknown, 2, -1)
    both = ~np.isnan(told) & ~np.isnan(expected)
    assert both.mean() > 0.9 and np.allclose(told[both], expected[both])


def test_a_known_phase_needs_a_measured_alignment(tmp_path):
    path = _checkpoint(tmp_path / 'm.pt')
    with pytest.raises(ValueError, match='calibrate-phase'):
        DepthSuperResolver.from_checkpoint(path, device='cpu', sampling_phase=(0, 0))
    DepthSuperResolver.from_checkpoint(path, device='cpu', sampling_phase=(-1, -1))
    bad = _checkpoint(tmp_path / 'bad.pt', {'point_alignment': [4, 0]})
    with pytest.raises(CheckpointError, match='point_alignment') as error:
        load_checkpoint(bad)
    assert 'bad.pt' in str(error.value)


def test_shipped_sensor_models_record_their_alignment():
    for sizes in shipped_models().values():
        for path in sizes.values():
            metadata = load_checkpoint(path)[1]
            alignment = checkpoint_alignment(metadata)
            assert alignment is not None and all(0 <= v < metadata['scale'] for v in alignment)
            assert metadata['weights_verified']
            # ... and where it puts a native (centred-footprint) sample, within a pixel of the
            # block's centre, with what it assumes in words.
            native = metadata['sampling']['native_alignment']
            assert all(abs(v - (metadata['scale'] - 1) / 2) <= 1 for v in native), path
            assert 'point samples at' in metadata['sampling']['assumes']


def test_a_known_phase_keeps_the_cameras_own_pixels(tmp_path):
    """Told the phase, every valid LR pixel comes back exactly at the HR pixel it sampled."""
    path = _checkpoint(tmp_path / 'm.pt', {'point_alignment': [1, 1]})
    rows, cols = np.mgrid[0:24, 0:32]
    lr = (1500 + 7 * cols + (rows > 12) * 400).astype(np.uint16)
    lr[3:5, 6:9] = 0
    kept = DepthSuperResolver.from_checkpoint(path, device='cpu', sampling_phase=(2, 1)).run(lr)
    np.testing.assert_array_equal(kept[2::4, 1::4], lr)  # holes (0) stay holes as well
    moved = DepthSuperResolver.from_checkpoint(path, device='cpu', sampling_phase=(2, 1),
                                               keep_samples=False).run(lr)
    others = np.ones(kept.shape, bool)
    others[2::4, 1::4] = False
    np.testing.assert_array_equal(kept[others], moved[others])
    assert not np.array_equal(moved[2::4, 1::4], lr)  # the net alone does not give them back
    unknown = DepthSuperResolver.from_checkpoint(path, device='cpu').run(lr)
    ignored = DepthSuperResolver.from_checkpoint(path, device='cpu', keep_samples=True).run(lr)
    np.testing.assert_array_equal(unknown, ignored)  # no phase, nothing to keep


def test_keep_samples_refuses_shapes_that_are_not_a_scale_apart():
    with pytest.raises(ValueError, match='integer multiple'):
        keep_samples(np.zeros((8, 8)), np.zeros((3, 3)), np.ones((3, 3), bool), (0, 0))
