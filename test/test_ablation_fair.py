"""The fair ablation driver (``python -m training.ablation``): commands, refusals, statistics,
and one end-to-end run on procedural data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsr_ros.checkpoint import load_checkpoint
from training import ablation, ablation_table

REPO = Path(__file__).resolve().parents[1]
#: Tiny sizes on procedural data: every run of the table in seconds.
TINY = ['data.train=[{type: synthetic, count: 3, height: 128, width: 128, seed: 100}]',
        'data.val=[{type: synthetic, count: 1, height: 128, width: 128, seed: 7}]',
        'data.patch_size=64', 'data.patches_per_epoch=16', 'data.rgb_patches_per_epoch=8',
        'data.val_patches=4', 'data.batch_size=8', 'dsrnet.num_channels=4',
        'dsrnet.num_blocks=2', 'denet.num_channels=4', 'side_outputs.hidden_channels=4',
        'spnet.num_channels=4', 'spnet.num_layers=2', 'loss.affinity_size=4',
        'schedule.stage1_epochs=1', 'schedule.stage2_epochs=1', 'optim.warmup_steps=2',
        'checks.teacher_max_ratio=1000']


def _history(folder: Path, ratio: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'stage1_end.pt').write_bytes(b'')
    (folder / 'history.csv').write_text('epoch,stage,val_e_dsr,val_e_base,val_e_de,stalled\n'
                                        f'1,1,{0.01 * ratio},0.01,0.02,0\n')


def test_dry_run_forks_every_arm_from_the_stage1_of_its_teacher(tmp_path, capsys):
    assert ablation.main(['run', '--table', 'research_x8', '--dry-run', '--runs',
                          str(tmp_path / 'runs'), '--results', str(tmp_path / 'results')]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if 'training.train' in line]
    assert len(lines) == 3 * (2 + 3)  # per seed: two stage 1s, three arms
    for line in lines:
        seed = line.split('--set seed=')[1].split()[0]
        assert '--resume' in line
        if 'stage1_' in line.split('--config')[1].split()[0]:
            assert 'schedule.stage2_epochs=0' in line
            continue
        teacher = 'guided' if 'full_guided.yaml' in line else 'denet'
        assert f'stage1_{teacher}/seed{seed}/stage1_end.pt' in line


def test_the_sensor_table_trains_one_stage1_per_seed_for_its_two_arms(tmp_path, capsys):
    """DSRNet alone forks from the guided stage 1 there (its DSRNet is the DENet stage 1's)."""
    ablation._PLANNED.clear()
    assert ablation.main(['run', '--table', 'sensor_x4', '--arms', 'dsr_alone', 'full_guided',
                          '--seeds', '0', '--dry-run', '--runs', str(tmp_path / 'runs'),
                          '--results', str(tmp_path / 'results')]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if 'training.train' in line]
    assert len(lines) == 1 + 2
    assert 'ablation_x4_sensor_stage1_guided.yaml' in lines[0]
    assert not any('stage1_denet' in line for line in lines)
    assert all('stage1_guided/seed0/stage1_end.pt' in line for line in lines[1:])


def test_a_stage1_below_the_margin_is_refused(tmp_path, capsys):
    _history(tmp_path / 'runs' / 'research_x8' / 'stage1_denet' / 'seed0', 0.97)
    code = ablation.main(['run', '--table', 'research_x8', '--seeds', '0', '--arms',
                          'dsr_alone', '--runs', str(tmp_path / 'runs'), '--results',
                          str(tmp_path / 'results'), '--resume'])
    assert code == 2
    assert 'did not beat the bicubic base by 5%' in capsys.readouterr().err
    assert not (tmp_path / 'runs' / 'research_x8' / 'dsr_alone').exists()


def test_an_arm_refused_by_the_teacher_gate_is_tabulated_not_retrained(tmp_path):
    runs, results = tmp_path / 'runs' / 'research_x8', tmp_path / 'results' / 'research_x8'
    _history(runs / 'stage1_denet' / 'seed0', 0.5)
    gate = {'passed': False, 'reason': 'teacher gate: DENet may not teach DSRNet: ...',
            'e_teacher': 0.3, 'e_student': 0.01, 'e_constant': 0.2, 'e_image_median': 0.18}
    (runs / 'full_denet' / 'seed0').mkdir(parents=True)
    (runs / 'full_denet' / 'seed0' / 'gate.json').write_text(json.dumps(gate))
    spec = ablation.TABLES['research_x8']
    assert ablation.run_arm(spec, 'full_denet', 0, runs, results, [], 0.05) == 'refused'
    table = ablation.collect('research_x8', runs, results, ['dsr_alone', 'full_denet'], [0],
                             0.05)
    record = table['arms']['full_denet']['per_seed']['0']
    assert record['refused'].startswith('teacher gate: DENet') and record['gate']['e_teacher']
    assert table['stage1']['denet/seed0']['refused'] is None
    assert 'refused' in (results / 'table.md').read_text()


def test_a_seed_whose_stage1_was_refused_is_tabulated_as_refused(tmp_path, capsys):
    runs, results = tmp_path / 'runs' / 'research_x8', tmp_path / 'results' / 'research_x8'
    _history(runs / 'stage1_denet' / 'seed1', 0.99)
    assert ablation.main(['run', '--table', 'research_x8', '--seeds', '1', '--arms',
                          'dsr_alone', '--runs', str(tmp_path / 'runs'), '--results',
                          str(tmp_path / 'results'), '--resume']) == 2
    table = ablation.collect('research_x8', runs, results, ['dsr_alone'], [1], 0.05)
    record = table['arms']['dsr_alone']['per_seed']['1']
    assert record['score'] is None
    assert record['refused'].startswith('its stage 1 was refused: stage 1 did not beat')
    assert '| dsr_alone | refused |' in (results / 'table.md').read_text()


def test_paired_differences_and_the_verdict():
    reference = {0: 1.00, 1: 0.95, 2: 0.90}
    arm = {0: 0.90, 1: 0.80, 2: 0.85}
    result = ablation_table.compare(arm, reference)
    assert result['differences'] == pytest.approx([-0.10, -0.15, -0.05])
    assert result['mean'] == pytest.approx(-0.10) and result['std'] == pytest.approx(0.05)
    assert result['gain'] == pytest.approx(0.10 / 0.95)
    assert result['sigmas'] == pytest.approx(2.0)
    noisy = ablation_table.compare({0: 0.90, 1: 0.80, 2: 0.87}, reference)
    assert noisy['gain'] > 0.05 and noisy['sigmas'] < 2 and noisy['passes'] is False
    better = ablation_table.compare({0: 0.90, 1: 0.84, 2: 0.80}, reference)
    assert better['passes'] is True
    table = ablation_table.build_table(
        't', 'middlebury2005', {'dsr_alone': {s: {'score': v} for s, v in reference.items()},
                                'full_guided': {s: {'score': v} for s, v in arm.items()}},
        'dsr_alone')
    assert table['arms']['dsr_alone']['std'] == pytest.approx(0.05)
    text = ablation_table.markdown(table)
    assert '| full_guided | 0.9000 | 0.8000 | 0.8500 | 0.8500 +- 0.0500 | -0.1000 +- 0.0500' \
        ' | 10.5% |' in text and '(2.0 std)' in text


def test_the_test_split_is_tabulated_beside_the_validation_score_not_in_the_verdict():
    records = {'dsr_alone': {0: {'score': 0.70, 'test_score': 0.60},
                             1: {'score': 0.72, 'test_score': 0.64}},
               'full_guided': {0: {'score': 0.71, 'test_score': 0.50},
                               1: {'score': 0.73, 'test_score': 0.52}}}
    table = ablation_table.build_table('sensor_x4', 'sensor_val', records, 'dsr_alone')
    guided = table['arms']['full_guided']
    assert guided['mean'] == pytest.approx(0.72) and guided['paired']['passes'] is False
    assert guided['test']['mean'] == pytest.approx(0.51)
    assert guided['test']['paired']['mean'] == pytest.approx(-0.11)
    text = ablation_table.markdown(table)
    main, beside = text.split('### The same score on the test split')
    assert '| full_guided | 0.7100 | 0.7300 | 0.7200 +- 0.0141 |' in main
    assert '| full_guided | 0.5000 | 0.5200 | 0.5100 +- 0.0141 |' in beside
    assert 'never used to decide' in beside


def test_the_whole_driver_end_to_end_on_procedural_data(tmp_path):
    """Two stage 1s, two arms, fp16 export, scores (Middlebury's Art when present), table;
    then --resume finds everything done and trains nothing."""
    command = [sys.executable, '-m', 'training.ablation', 'run', '--table', 'research_x8',
               '--seeds', '0', '--arms', 'dsr_alone', 'full_guided', '--quick-eval',
               '--stage1-margin=-1000',  # a tiny stage 1 is no better than bicubic
               '--runs', str(tmp_path / 'runs'), '--results', str(tmp_path / 'results')]
    # ... nor is a tiny guided teacher: open the gate's base condition (tested in
    # test_cross_task) so the pass path runs
    for item in [*TINY, 'checks.teacher_base_margin=-1000']:
        command += ['--set', item]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / 'results' / 'research_x8'
    for arm in ('dsr_alone', 'full_guided'):
        folder = results / arm / 'seed0'
        assert {'dsrnet.pt', 'history.csv', 'config.json'} <= {p.name for p in folder.iterdir()}
        stored = torch.load(folder / 'dsrnet.pt', map_location='cpu', weights_only=True)
        assert {t.dtype for t in stored['state_dict'].values()} == {torch.float16}
        net, _ = load_checkpoint(folder / 'dsrnet.pt')
        assert net.scale == 8 and net.in_channels == 1
    assert json.loads((results / 'full_guided' / 'seed0' / 'gate.json').read_text())['passed']
    table = json.loads((results / 'table.json').read_text())
    assert table['stage1']['dsrnet_identical_across_stage1'] == {'seed0': True}
    assert set(table['arms']) == {'dsr_alone', 'full_guided'}
    middlebury = ablation_table.REPO.parent / 'shared' / 'data' / 'middlebury2005_sun'
    if middlebury.is_dir() or os.environ.get('DSR_SHARED_DATA'):
        assert table['arms']['full_guided']['per_seed']['0']['score'] > 0
    assert (results / 'table.md').read_text().startswith('## research_x8')
    again = subprocess.run(command + ['--resume'], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'training.train' not in again.stdout
    refused = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1 and 'pass --resume' in refused.stderr
