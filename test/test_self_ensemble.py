"""Self-ensemble: flips are undone exactly, a point-sampled member is moved back to the net's
alignment only when the phase is known, and the resolver averages what it says it does."""

import numpy as np
import pytest
import torch

from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
from dsr_ros.self_ensemble import ENSEMBLE_PASSES, MEMBERS, average_over_flips, check_passes

SCALE = 4


def _placer(alignment):
    """A fake net that puts each LR value at HR offset ``alignment`` of its block, zero
    elsewhere: what a point-aligned net does to a sample, in the member's own orientation."""
    row, col = alignment

    def forward(batch):
        n, _, h, w = batch.shape
        out = np.zeros((n, h * SCALE, w * SCALE), np.float32)
        out[:, row::SCALE, col::SCALE] = batch[:, 0]
        return out
    return forward


def _replicator(batch):
    """Nearest-neighbour block replication: flip-equivariant, centred on the block."""
    return np.repeat(np.repeat(batch[:, 0], SCALE, axis=1), SCALE, axis=2)


def _batch(seed=0, shape=(2, 2, 5, 7)):
    return np.random.default_rng(seed).uniform(1, 2, shape).astype(np.float32)


def test_passes_are_checked():
    for passes in ENSEMBLE_PASSES:
        assert check_passes(passes) == passes
    for bad in (0, 3, 16, 2.5, True, -1):
        with pytest.raises(ValueError, match='ensemble_passes must be one of'):
            check_passes(bad)
    assert len(set(MEMBERS)) == 8 == max(ENSEMBLE_PASSES)


def test_one_pass_is_the_net_itself():
    batch = _batch()
    calls = []

    def forward(x):
        calls.append(x.shape)
        return _replicator(x)
    assert np.array_equal(average_over_flips(forward, batch, 1, SCALE), _replicator(batch))
    assert calls == [batch.shape]


@pytest.mark.parametrize('passes', [2, 4, 8])
def test_flips_are_undone_on_the_output(passes):
    """A flip-equivariant net gives the same output with any number of passes (non-square
    frames: transposed members come back in the frame's shape)."""
    batch = _batch(shape=(1, 2, 6, 9))
    single = _replicator(batch)
    assert np.allclose(average_over_flips(_replicator, batch, passes, SCALE), single)


@pytest.mark.parametrize('alignment', [(1, 1), (1, 2), (0, 3)])
@pytest.mark.parametrize('passes', [2, 4, 8])
def test_a_known_phase_puts_every_member_back_at_the_alignment(alignment, passes):
    """With the phase known each member is moved to the net's alignment: the average of a
    point-placing net is exactly its single pass (asymmetric alignments check the transposes)
    away from the border, where a moved member repeats its edge row or column."""
    batch = _batch(1)
    forward = _placer(alignment)
    single = forward(batch)
    ensembled = average_over_flips(forward, batch, passes, SCALE, alignment=alignment)
    inner = (slice(None), slice(SCALE, -SCALE), slice(SCALE, -SCALE))
    assert np.allclose(ensembled[inner], single[inner])
    assert np.count_nonzero(single[inner]) > 20


def test_an_unknown_phase_averages_the_placements_as_they_come():
    """Phase unknown: the 180-degree member puts each sample at ``s - 1 - a``, so with two
    passes every sample lands half at ``a`` and half at ``s - 1 - a`` (the hedge the README
    measures)."""
    batch = _batch(2)
    ensembled = average_over_flips(_placer((1, 1)), batch, 2, SCALE)
    assert np.allclose(ensembled[:, 1::SCALE, 1::SCALE], batch[:, 0] / 2)
    assert np.allclose(ensembled[:, 2::SCALE, 2::SCALE], batch[:, 0] / 2)
    assert np.isclose(ensembled.sum(), batch[:, 0].sum())


def _resolver(passes, phase=None):
    torch.manual_seed(3)
    model = DSRNet(scale=SCALE, num_channels=4, num_blocks=1, in_channels=2)
    scaling = DepthScaling('range', low_percentile=1.0, high_percentile=99.0).to_dict()
    return DepthSuperResolver(model, scaling, device='cpu', ensemble_passes=passes,
                              sampling_phase=phase, point_alignment=(1, 1), keep_samples=False)


def _frame():
    return np.random.default_rng(5).uniform(0.8, 3.0, (16, 24)).astype(np.float32)


def test_the_resolver_averages_the_frame_and_its_rotation():
    """Two passes = the mean of the net on the frame and (undone) on its 180-degree rotation;
    the frame is a multiple of the padding, so both see the same borders."""
    frame = _frame()
    single = _resolver(1)
    expected = (single.run(frame) + single.run(frame[::-1, ::-1].copy())[::-1, ::-1]) / 2
    got = _resolver(2).run(frame)
    assert np.allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, single.run(frame), atol=1e-5)


@pytest.mark.parametrize('phase', [None, (0, 0)])
def test_validity_passes_through_an_ensemble(phase):
    frame = _frame()
    frame[3:6, 4:9] = np.nan
    frame[10, 20] = 0.0
    one, eight = _resolver(1, phase).run(frame), _resolver(8, phase).run(frame)
    assert np.array_equal(np.isnan(eight), np.isnan(one))
    assert np.isnan(one).sum() == (15 + 1) * SCALE * SCALE
    assert np.nanmin(eight) > 0


def test_the_resolver_refuses_a_bad_number_of_passes():
    with pytest.raises(ValueError, match='ensemble_passes'):
        _resolver(3)
