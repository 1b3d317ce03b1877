"""tools/rank_candidates.py: the fixed score that chooses between candidates on validation."""

import json

from conftest import load_tool


def _tool():
    return load_tool('rank_candidates')


def _summary(mad_bic, mad_near, rmse_bic, tool):
    return {f: {'sr_over_bicubic_mad': mad_bic, 'sr_over_nearest_mad': mad_near,
                'sr_over_bicubic_rmse': rmse_bic} for f in tool.FAMILIES}


def test_sharp_but_rough_loses_to_balanced_and_the_table_says_why(tmp_path, capsys):
    tool = _tool()
    # sharp: MAD 0.8 of the better baseline (nearest), RMSE 1.2 x bicubic -> score 1.0
    # balanced: MAD 0.9, RMSE 0.9 -> score 0.9
    runs = {'sharp': _summary(0.7, 0.8, 1.2, tool), 'balanced': _summary(0.9, 0.85, 0.9, tool)}
    path = tmp_path / 'sensor.json'
    path.write_text(json.dumps({'results': {k: {'summary': v} for k, v in runs.items()}}))
    assert abs(tool.balanced_score(runs['sharp']) - 1.0) < 1e-9
    assert abs(tool.balanced_score(runs['balanced']) - 0.9) < 1e-9
    out = tmp_path / 'choice.md'
    assert tool.main([str(path), '--out', str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith('| ')][1:]
    assert rows[0].startswith('| balanced | 0.9000') and rows[1].startswith('| sharp | 1.0000')
    assert '| 10 of 10 | 10 of 10 |' in rows[0]  # MAD beats both, RMSE beats bicubic
    assert '| 1.200 (area) | 10 of 10 | 0 of 10 |' in rows[1]


def test_a_run_without_the_families_is_refused(tmp_path, capsys):
    path = tmp_path / 'sensor.json'
    path.write_text(json.dumps({'results': {'m': {'summary': {'area': {}}}}}))
    assert _tool().main([str(path)]) == 1
    assert 'has no' in capsys.readouterr().err
