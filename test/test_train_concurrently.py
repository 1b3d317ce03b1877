"""`python -m training.experiments.train_concurrently`: probe epochs size each run so its
schedule fits the budget.

Real ``training.train`` processes on the smoke config (CPU, seconds): one run trains, one run
whose data is missing fails its probe and is reported, not fatal.
"""

import json
import subprocess
import sys

import pytest

from dsr_ros.checkpoint import load_checkpoint
from training.experiments import train_concurrently

from conftest import REPO


def test_patches_per_epoch_fills_the_time_in_whole_batches():
    # 100 samples/s for 60 s over 4 epochs: 1500 a epoch, rounded down to batches of 32.
    assert train_concurrently.patches_per_epoch(100.0, 60.0, 4, 32, floor=32) == 1472
    assert train_concurrently.patches_per_epoch(100.0, -5.0, 4, 32, floor=32) == 32
    with pytest.raises(Exception, match='NAME=CONFIG'):
        train_concurrently.parse_run('no-equals-sign')


def _driver(out, *runs):
    return subprocess.run(
        [sys.executable, '-m', 'training.experiments.train_concurrently', '--out', str(out),
         '--budget-min', '0.35', '--probe-patches', '8',
         '--set', 'schedule.stage1_epochs=2', '--set', 'schedule.stage2_epochs=0',
         *[arg for run in runs for arg in ('--run', run)]],
        cwd=REPO, capture_output=True, text=True, timeout=300)


def test_runs_side_by_side_inside_the_budget(tmp_path):
    smoke = REPO / 'training' / 'configs' / 'smoke.yaml'
    broken = tmp_path / 'broken.yaml'  # loads, but its data is missing: the probe fails
    broken.write_text(f'base: {smoke}\nname: broken\n'
                      'data: {train: [{type: lu30, root: /nonexistent/lu30}]}\n')
    out = tmp_path / 'runs'
    result = _driver(out, f'good={smoke}', f'bad={broken}')
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    good = summary['runs']['good']
    assert good['epochs'] == 2 and good['epochs_done'] == 2 and good['exit'] == 0
    assert good['patches_per_epoch'] % 8 == 0 and good['patches_per_epoch'] >= 8
    assert summary['wall_s'] < 0.35 * 60 + 30
    _, meta = load_checkpoint(out / 'good' / 'best_dsrnet.pt')
    assert f'data.patches_per_epoch={good["patches_per_epoch"]}' in meta['provenance'][
        'overrides']
    bad = summary['runs']['bad']
    assert 'patches_per_epoch' not in bad and bad['probe_exit'] != 0
    assert 'bad: the probe epochs failed' in result.stdout


def test_a_missing_config_stops_everything_before_a_run_starts(tmp_path):
    result = _driver(tmp_path / 'runs', 'x=training/configs/smoke.yaml',
                     'y=training/configs/missing.yaml')
    assert result.returncode == 2
    assert 'missing.yaml' in result.stderr and 'does not exist' in result.stderr
    assert not (tmp_path / 'runs').exists()
