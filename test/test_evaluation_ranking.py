"""training.evaluation rank: the fixed score that chooses between candidates on validation."""

import json

from training.evaluation import ranking
from training.evaluation.cli import main
from training.evaluation.families import (CAMERA_FAMILIES, NATIVE_FAMILIES,
                                          PHASE_UNKNOWN_FAMILIES)


def _summary(mad_bic, mad_near, rmse_bic):
    return {f: {'sr_over_bicubic_mad': mad_bic, 'sr_over_nearest_mad': mad_near,
                'sr_over_bicubic_rmse': rmse_bic} for f in PHASE_UNKNOWN_FAMILIES}


def test_sharp_but_rough_loses_to_balanced_and_the_table_says_why(tmp_path, capsys):
    # sharp: MAD 0.8 of the better baseline (nearest), RMSE 1.2 x bicubic -> score 1.0
    # balanced: MAD 0.9, RMSE 0.9 -> score 0.9
    runs = {'sharp': _summary(0.7, 0.8, 1.2), 'balanced': _summary(0.9, 0.85, 0.9)}
    path = tmp_path / 'sensor.json'
    path.write_text(json.dumps({'results': {k: {'summary': v} for k, v in runs.items()}}))
    assert abs(ranking.balanced_score(runs['sharp']) - 1.0) < 1e-9
    assert abs(ranking.balanced_score(runs['balanced']) - 0.9) < 1e-9
    out = tmp_path / 'choice.md'
    assert main(['rank', str(path), '--out', str(out), '--score', 'balanced']) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith('| ')][1:]
    assert rows[0].startswith('| balanced | 0.9000') and rows[1].startswith('| sharp | 1.0000')
    assert '| 10 of 10 | 10 of 10 |' in rows[0]  # MAD beats both, RMSE beats bicubic
    assert '| 1.200 (area) | 10 of 10 | 0 of 10 |' in rows[1]


def test_a_run_without_the_families_is_refused(tmp_path, capsys):
    path = tmp_path / 'sensor.json'
    path.write_text(json.dumps({'results': {'m': {'summary': {'area': {}}}}}))
    assert main(['rank', str(path)]) == 1
    assert 'has no' in capsys.readouterr().err


def test_the_camera_score_weighs_native_against_bicubic_and_decimated_against_nearest(
        tmp_path):
    def summary(native_mad, decimated_mad, rmse):
        return {f: {'sr_over_bicubic_mad': native_mad if f in NATIVE_FAMILIES else 9.0,
                    'sr_over_nearest_mad': decimated_mad if f not in NATIVE_FAMILIES else 9.0,
                    'sr_over_bicubic_rmse': rmse} for f in CAMERA_FAMILIES}
    runs = {'good': summary(0.5, 0.6, 0.7), 'worse': summary(0.6, 0.7, 0.8)}
    n_native = len(NATIVE_FAMILIES)
    n_decimated = len(CAMERA_FAMILIES) - n_native
    expected = (n_native * (0.5 + 0.7) + n_decimated * (0.6 + 0.7)) / 2 / len(CAMERA_FAMILIES)
    assert abs(ranking.camera_score(runs['good']) - expected) < 1e-9
    path = tmp_path / 'sensor.json'
    path.write_text(json.dumps({'results': {k: {'summary': v} for k, v in runs.items()}}))
    out = tmp_path / 'choice.md'
    assert main(['rank', str(path), '--out', str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith('| ')][1:]
    assert rows[0].startswith('| good |') and '| 0.500 | 0.700 | 0.600 | 0.700 |' in rows[0]
    assert rows[1].startswith('| worse |')
    old_run = tmp_path / 'old.json'
    old_run.write_text(json.dumps({'results': {'m': {'summary': {'area': {}}}}}))
    assert main(['rank', str(old_run)]) == 1
