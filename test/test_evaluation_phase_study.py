"""training.evaluation phase-study: the phase-aware and phase-blind oracles, one measured phase."""

import numpy as np
import pytest

from conftest import REPO
from dsr_ros.baselines import nearest_at_phase
from training.evaluation import phase_study
from training.evaluation.cli import main
from training.evaluation.phases import phase_blind_oracle, phases_for


@pytest.mark.parametrize('phase', [(0, 0), (1, 2), (3, 3)])
def test_oracle_puts_every_lr_sample_back_where_it_was_taken(phase):
    hr = np.random.default_rng(0).random((32, 40)).astype(np.float32)
    lr = hr[phase[0]::4, phase[1]::4][:8, :10]
    out = nearest_at_phase(lr, 4, phase, hr.shape)
    assert np.array_equal(out[phase[0]::4, phase[1]::4][:8, :10], lr)


def test_phase_zero_step_edge_is_placed_better_by_the_oracle_than_by_repeat():
    hr = np.zeros((8, 64), np.float32)
    hr[:, 30:] = 1.0  # an edge between the samples at columns 28 and 32
    lr = hr[::4, ::4]
    repeat = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)
    oracle = nearest_at_phase(lr, 4, (0, 0), hr.shape)
    assert np.abs(oracle - hr).sum() < np.abs(repeat - hr).sum()


def test_study_measures_one_phase_of_the_shipped_tiny_model():
    from training.data.readers import shared_data_root
    if not (shared_data_root() / 'lu_rgbd6').is_dir():
        pytest.skip('Lu RGB-D 6 set not present')
    weights = REPO / 'dsr_ros' / 'weights' / 'dsrnet_sensor_tiny_x4.pt'
    result = phase_study.study(weights, shared_data_root(), phases=[(0, 0)])
    entry = result['table']['lu']['0,0']
    assert entry['frames'] == 6
    assert 0.3 < entry['sr_over_nearest'] < 2.0 and 0.3 < entry['oracle_over_nearest'] < 1.0
    assert 0.3 < entry['blind_oracle_over_nearest'] < 1.0
    # The shipped model records its point alignment, so it is also run told the phase: told,
    # it beats its own blind output at phase 0, and the best phase-blind choice from that told
    # output cannot beat the oracle that has the true scene by more than noise.
    assert entry['told_over_nearest'] < entry['sr_over_nearest']
    assert entry['told_blind_over_nearest'] > entry['blind_oracle_over_nearest'] - 0.02
    # The oracle's median is L1-best: its RMSE is a ratio like any other, not a floor.
    assert 0.3 < entry['blind_oracle_rmse_over_bicubic'] < 2.0
    # The mean is L2-best: its RMSE is never above the median's by more than noise.
    assert entry['blind_mean_rmse_over_bicubic'] <= entry['blind_oracle_rmse_over_bicubic'] + 1e-3
    report = phase_study.markdown([result])
    assert '| lu | SR / nearest |' in report and '| lu | told SR, then phase-blind /' in report


def test_phase_blind_oracle_at_scale_one_is_the_scene_itself():
    hr = np.random.default_rng(1).random((12, 16)).astype(np.float32)
    assert np.array_equal(phase_blind_oracle(hr, 1, (0, 0)), hr)


def test_phase_blind_oracle_beats_assuming_phase_zero_over_all_phases():
    from dsr_ros.sampling_phase import shift_output
    hr = np.zeros((16, 64), np.float32)
    hr[:, 30:] = 1.0
    hr[9:, :] += 0.5  # a second edge, across the rows
    blind, assumed = 0.0, 0.0
    for phase in [(r, c) for r in range(4) for c in range(4)]:
        # Told nothing, "phase 0" is the candidate truth moved by -phase (candidate q = 0).
        phase_zero = shift_output(hr, -phase[0], -phase[1])
        blind += np.abs(phase_blind_oracle(hr, 4, phase) - hr).mean()
        assumed += np.abs(phase_zero - hr).mean()
    assert blind < assumed
    # At its own candidate the oracle is exact away from edges: a flat scene is returned as is.
    flat = np.full((8, 8), 2.0, np.float32)
    assert np.array_equal(phase_blind_oracle(flat, 4, (2, 1)), flat)


def test_mean_oracle_is_l2_best_and_median_l1_best_over_all_phases():
    from dsr_ros.sampling_phase import shift_output
    hr = np.zeros((16, 48), np.float32)
    hr[:, 21:] = 1.0
    hr[:, 34:] = 3.0
    phases = [(r, c) for r in range(4) for c in range(4)]
    errors = {'median': [0.0, 0.0], 'mean': [0.0, 0.0]}
    for phase in phases:
        for statistic, (absolute, squared) in errors.items():
            estimate = phase_blind_oracle(hr, 4, phase, statistic)
            # The truth seen from phase q's grid is hr moved by -q + phase (the candidates).
            for q in phases:
                truth = shift_output(hr, q[0] - phase[0], q[1] - phase[1])
                absolute += np.abs(estimate - truth).sum()
                squared += ((estimate - truth) ** 2).sum()
            errors[statistic] = [absolute, squared]
    assert errors['median'][0] < errors['mean'][0]
    assert errors['mean'][1] < errors['median'][1]
    with pytest.raises(ValueError, match='statistic'):
        phase_blind_oracle(hr, 4, (0, 0), 'mode')


def test_phases_for_each_scale():
    assert set(phases_for(2)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert phases_for(4) == ((0, 0), (1, 1), (2, 2), (3, 3), (0, 2), (2, 0), (1, 3), (3, 1))
    eight = phases_for(8)
    assert len(eight) == len(set(eight)) == 12 and all(max(p) < 8 for p in eight)


def test_oracle_only_study_measures_the_floors_without_a_net():
    from training.data.readers import shared_data_root
    if not (shared_data_root() / 'lu_rgbd6').is_dir():
        pytest.skip('Lu RGB-D 6 set not present')
    result = phase_study.study(None, shared_data_root(), phases=[(0, 0), (0, 1)], scale=2)
    assert result['weights'] is None and result['scale'] == 2
    entry = result['table']['lu']['0,1']
    assert entry['frames'] == 6 and 'sr_over_nearest' not in entry
    # At x2, np.repeat nearest is as well placed as nearest can be at every phase; the floor
    # of a phase-blind method is below it, and the mean is L2-best.
    assert abs(entry['oracle_over_nearest'] - 1.0) < 0.1
    assert 0.5 < entry['blind_oracle_over_nearest'] < 1.0
    assert entry['blind_mean_rmse_over_bicubic'] <= entry['blind_oracle_rmse_over_bicubic'] + 1e-3
    assert '### oracles and baselines (x2)' in phase_study.markdown([result])
    with pytest.raises(ValueError, match='scale'):
        phase_study.study(None, shared_data_root(), scale=None)


@pytest.mark.parametrize('argv', [[], ['--oracles-at', '1']])
def test_cli_refuses_nothing_to_measure_and_a_scale_below_two(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(['phase-study', *argv])
    assert stopped.value.code == 2
    assert '--oracles-at' in capsys.readouterr().err
