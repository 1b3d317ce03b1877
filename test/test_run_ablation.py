"""The x8 ablation driver: the commands it runs, and the table it collects."""

from __future__ import annotations

import json

import pytest

from training.config import load_config

from conftest import REPO, load_tool

run_ablation = load_tool('run_ablation')


def test_every_arm_has_a_config_that_differs_from_full_only_in_its_switches():
    full = load_config(REPO / 'training' / 'configs' / 'ablation_x8_full.yaml')
    assert full['scale'] == 8 and full['schedule']['role_policy'] == 'dsr_student'
    for arm in list(run_ablation.ARMS) + ['stage1', 'full_gated']:
        config = load_config(REPO / 'training' / 'configs' / f'ablation_x8_{arm}.yaml')
        assert config['data'] == full['data'] and config['optim'] == full['optim'], arm
        assert config['schedule']['stage1_epochs'] == full['schedule']['stage1_epochs']


def test_the_sensor_pair_differs_from_its_research_arms_only_in_the_degradation():
    for arm in run_ablation.SENSOR_ARMS:
        research = load_config(REPO / 'training' / 'configs'
                               / f"ablation_x8_{arm.replace('sensor_', '')}.yaml")
        config = load_config(REPO / 'training' / 'configs' / f'ablation_x8_{arm}.yaml')
        assert config['data']['degradation'] == 'sensor'
        assert config['data']['scaling']['mode'] == 'range'
        different = {k for k in config['data'] if config['data'][k] != research['data'][k]}
        assert different == {'degradation', 'scaling'}, arm
        assert {k: v for k, v in config.items() if k not in ('data', 'name')} == {
            k: v for k, v in research.items() if k not in ('data', 'name')}, arm


def test_collect_scores_the_sensor_pair_on_the_real_sensor_suite(tmp_path):
    from training.data.readers import shared_data_root
    if not (shared_data_root() / 'open3d_rgbd_testdata').is_dir():
        pytest.skip('real PrimeSense frames not present')
    from training.data.synthetic import synthetic_samples
    from training.train import Trainer
    from test_training import tiny_config
    results = tmp_path / 'results'
    config = tiny_config(stage1_epochs=1, stage2_epochs=0)
    config['scale'] = 8
    config['data'].update(degradation='sensor', patch_size=64,
                          scaling={'mode': 'range', 'low_percentile': 1.0,
                                   'high_percentile': 99.0, 'min_relative_span': 0.1})
    trainer = Trainer(config, tmp_path / 'run', synthetic_samples(3, 96, 128),
                      synthetic_samples(1, 96, 128, seed=1), progress=False)
    trainer.train()
    trainer.export(results / 'sensor_full' / 'seed0' / 'dsrnet.pt')
    report = run_ablation.collect_sensor(tmp_path / 'runs', results, quick=True)
    assert list(report) == ['sensor_full']
    families = report['sensor_full']['families']
    assert {'area', 'point', 'real'} <= set(families)
    assert all(value > 0 for value in families['real'].values())
    assert (results / 'sensor' / 'sensor.md').is_file()


def test_all_forks_every_arm_from_the_stage1_run_of_its_seed(tmp_path, capsys):
    assert run_ablation.main(['all', '--dry-run', '--runs', str(tmp_path / 'runs'),
                              '--results', str(tmp_path / 'results')]) == 0
    lines = capsys.readouterr().out.splitlines()
    trains = [line for line in lines if 'training.train' in line]
    arms = [line for line in trains if '--init-from' in line]
    assert len(arms) == 9  # dsr_only x3, lo, la, lo_la, full x3
    for line in arms:
        seed = line.split('--set seed=')[1].split()[0]
        assert f'stage1/seed{seed}/stage1_end.pt' in line and '--resume' in line
    assert sum('training.export' in line and '--which final' in line for line in lines) == 9


def test_collect_writes_mean_and_std_over_seeds(tmp_path):
    from training.data.readers import shared_data_root
    if not (shared_data_root() / 'nyuv2_test_subset').is_dir():
        pytest.skip('NYUv2 samples not present')
    from training.data.synthetic import synthetic_samples
    from training.train import Trainer
    from test_training import tiny_config
    results = tmp_path / 'results'
    for seed in (0, 1):
        config = tiny_config(stage1_epochs=1, stage2_epochs=0)
        config['seed'] = seed
        trainer = Trainer(config, tmp_path / f'run{seed}', synthetic_samples(3, 96, 128),
                          synthetic_samples(1, 96, 128, seed=1), progress=False)
        trainer.train()
        trainer.export(results / 'full' / f'seed{seed}' / 'dsrnet.pt')
    report = run_ablation.collect(tmp_path / 'runs', results, ['nyuv2'], ['full'])
    entry = report['arms']['full']['nyuv2']
    values = [row['nyuv2'] for row in report['runs']]
    assert entry['mean'] == pytest.approx(sum(values) / 2)
    assert entry['std'] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert json.loads((results / 'ablation.json').read_text())['arms']['full']['seeds'] == [0, 1]
    assert '+-' in (results / 'table.md').read_text()
    assert (results / 'ablation.png').stat().st_size > 1000


def test_no_arm_forks_from_a_stage1_stuck_at_the_bicubic_base(tmp_path, capsys):
    stage1 = tmp_path / 'runs' / 'stage1' / 'seed0'
    stage1.mkdir(parents=True)
    (stage1 / 'stage1_end.pt').write_bytes(b'')  # finished: nothing is trained again
    (stage1 / 'history.csv').write_text(
        'epoch,stage,val_e_dsr,val_e_base,stalled\n1,1,0.0145,0.0145,1\n2,1,0.0143,0.0145,0\n')
    code = run_ablation.main(['arm', 'full', '--runs', str(tmp_path / 'runs'),
                              '--results', str(tmp_path / 'results')])
    err = capsys.readouterr().err
    assert code == 2 and 'did not beat the bicubic base by 5%' in err and '0.986 x' in err
    assert not (tmp_path / 'runs' / 'full').exists()
    assert run_ablation.main(['stage1', '--stage1-margin', '0.01', '--runs',
                              str(tmp_path / 'runs')]) == 0
