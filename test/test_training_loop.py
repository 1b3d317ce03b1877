"""The training loop around the cross-task model: warnings, logs, data rules, configs, torchrun.

Tiny widths on procedural data; the torchrun run uses 2 CPU processes (gloo).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import ConfigError, PAPER_DEVIATIONS, DEFAULTS, load_config
from training.data.overlap import resolve_overlaps
from training.data.readers import load_samples, shared_data_root
from training.data.sample import RGBDSample
from training.data.synthetic import synthetic_samples
from training.trainer import Trainer

from test_training import tiny_config as smoke_config  # the smoke config, 1 thread

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / 'training' / 'configs' / 'smoke.yaml'


def test_loud_warning_when_dsrnet_teaches_every_stage2_epoch(tmp_path, caplog, monkeypatch):
    trainer = Trainer(smoke_config(stage1_epochs=1, stage2_epochs=2), tmp_path,
                      synthetic_samples(4, 96, 128), synthetic_samples(1, 96, 128, seed=1),
                      progress=False)
    monkeypatch.setattr(trainer, 'validate', lambda: {'e_dsr': 0.01, 'e_de': 0.4})
    with caplog.at_level(logging.WARNING, logger='training.train'):
        trainer.train()
    assert [row['student'] for row in trainer.history] == ['both', 'de', 'de']
    assert 'DSRNet has been the teacher in all 2 stage-2 epochs' in caplog.text


@pytest.mark.parametrize('change', ['dsr_only', 'dsr_student'])
def test_no_teacher_warning_where_one_teacher_is_the_design(tmp_path, caplog, change):
    config = smoke_config(stage1_epochs=1, stage2_epochs=2,
                          role_policy='dsr_student' if change == 'dsr_student' else 'errors')
    if change == 'dsr_only':
        config['loss']['distill'] = False
    trainer = Trainer(config, tmp_path, synthetic_samples(4, 96, 128),
                      synthetic_samples(1, 96, 128, seed=1), progress=False)
    with caplog.at_level(logging.WARNING, logger='training.train'):
        trainer.train()
    assert len(trainer.history) == 3
    assert 'has been the teacher' not in caplog.text


def test_history_has_loss_shares_and_one_tensorboard_writer(tmp_path):
    pytest.importorskip('torch.utils.tensorboard')
    trainer = Trainer(smoke_config(stage1_epochs=1, stage2_epochs=2,
                                   role_policy='dsr_student'),
                      tmp_path, synthetic_samples(4, 96, 128),
                      synthetic_samples(1, 96, 128, seed=1), progress=False)
    trainer.train()
    last = trainer.history[-1]
    for key in ('l_dsr', 'l_side_dsr', 'l_o', 'l_a', 'l_struc', 'share_o', 'share_a',
                'share_struc', 'lr_sp'):
        assert key in last, key
    assert 'l_side_sr' not in trainer.history[0]  # one name per loss in both stages
    assert len(list((tmp_path / 'tb').glob('events.out.tfevents.*'))) == 1


def test_depth_only_data_trains_with_the_default_config(tmp_path, caplog):
    config = smoke_config(stage1_epochs=1, stage2_epochs=1)
    assert config['loss']['distill'] is True
    train = synthetic_samples(3, 96, 128, with_rgb=False)
    val = synthetic_samples(1, 96, 128, seed=1, with_rgb=False)
    with caplog.at_level(logging.WARNING, logger='training.train'):
        trainer = Trainer(config, tmp_path, train, val, progress=False)
        trainer.train()
    assert 'training DSRNet alone' in caplog.text
    assert [row['role'] for row in trainer.history] == ['dsr-only', 'dsr-only']


def test_checkpoint_and_state_carry_provenance_through_a_fork(tmp_path):
    from training.provenance import build_provenance
    config = smoke_config(stage1_epochs=1, stage2_epochs=0)
    train, val = synthetic_samples(3, 96, 128), synthetic_samples(1, 96, 128, seed=1)
    provenance = build_provenance(config, str(SMOKE), train, val, ['seed=0'])
    Trainer(config, tmp_path / 'a', train, val, provenance, progress=False).train()
    fork_config = smoke_config(stage1_epochs=1, stage2_epochs=1)
    fork_config['loss']['distill'] = False
    fork = Trainer(fork_config, tmp_path / 'b', train, val, {'config_path': 'arm.yaml'},
                   progress=False)
    fork.load_state(tmp_path / 'a' / 'stage1_end.pt', fork=True)
    fork.train()
    state = torch.load(tmp_path / 'b' / 'last.pt', weights_only=True)
    parent = state['provenance']['forked_from']
    assert parent['epoch'] == 1 and parent['provenance']['overrides'] == ['seed=0']
    assert parent['provenance']['config_files'][0]['sha256']
    from dsr_ros.checkpoint import load_checkpoint
    _, meta = load_checkpoint(tmp_path / 'b' / 'final_dsrnet.pt')
    assert meta['provenance']['forked_from']['config_name'] == 'smoke'


def test_git_revision_of_a_copied_tree_comes_from_whoever_copied_it(monkeypatch):
    from training.provenance import git_state
    monkeypatch.delenv('DSR_ROS_GIT_REVISION', raising=False)
    here = git_state()
    assert here['git_dirty'] in (True, False)  # this checkout, read from git
    monkeypatch.setenv('DSR_ROS_GIT_REVISION', 'abc123')
    assert git_state() == {'git_revision': 'abc123', 'git_dirty': None}


def test_config_base_and_overrides(tmp_path):
    (tmp_path / 'parent.yaml').write_text(SMOKE.read_text())
    (tmp_path / 'child.yaml').write_text('base: parent.yaml\nname: child\nloss: {rho1: 0.5}\n')
    config = load_config(tmp_path / 'child.yaml', ['seed=3', 'loss.output_gating=pixel'])
    assert config['name'] == 'child' and config['seed'] == 3
    assert config['loss']['rho1'] == 0.5 and config['loss']['output_gating'] == 'pixel'
    assert config['data']['patch_size'] == 32  # from the parent
    # YAML 1.1 would read 5e-4 as a string; Adam would then fail at the first epoch.
    (tmp_path / 'lr.yaml').write_text('base: parent.yaml\nname: lr\noptim: {lr: 2e-4}\n')
    assert load_config(tmp_path / 'lr.yaml', ['optim.eps=1E-7'])['optim']['lr'] == 2e-4
    assert load_config(tmp_path / 'child.yaml', ['optim.lr=5e-4'])['optim']['lr'] == 5e-4
    assert load_config(tmp_path / 'child.yaml', ['optim.eps=1E-7'])['optim']['eps'] == 1e-7
    assert load_config(tmp_path / 'child.yaml', ['name=5e-4x'])['name'] == '5e-4x'
    with pytest.raises(ConfigError, match='unknown config key .loss.rho3'):
        load_config(tmp_path / 'child.yaml', ['loss.rho3=1'])
    with pytest.raises(ConfigError, match='not KEY=VALUE'):
        load_config(tmp_path / 'child.yaml', ['seed'])
    with pytest.raises(ConfigError, match='output_gating must be one of'):
        load_config(tmp_path / 'child.yaml', ['loss.output_gating=always'])
    (tmp_path / 'loop.yaml').write_text('base: loop.yaml\nname: loop\n')
    with pytest.raises(ConfigError, match='cycle'):
        load_config(tmp_path / 'loop.yaml')


def test_every_paper_deviation_is_a_config_key_with_the_paper_value_documented():
    guide = (REPO / 'docs' / 'training.md').read_text()
    for dotted, (paper_value, _) in PAPER_DEVIATIONS.items():
        section, key = dotted.split('.')
        assert key in DEFAULTS[section], dotted
        assert f'`{dotted}`' in guide, f'{dotted} missing from the table in docs/training.md'
    paper = load_config(REPO / 'training' / 'configs' / 'paper_x8.yaml')
    for dotted in ('loss.affinity_normalize', 'loss.side_weight', 'loss.structure_kernel',
                   'loss.output_gating', 'schedule.role_policy', 'optim.spnet_schedule'):
        section, key = dotted.split('.')
        assert paper[section][key] == PAPER_DEVIATIONS[dotted][0], dotted


def _named(name: str, rgb: bool) -> RGBDSample:
    depth = np.ones((8, 8), np.float32)
    return RGBDSample(name, depth, depth > 0, 'disparity_8bit',
                      rgb=np.zeros((8, 8, 3), np.uint8) if rgb else None)


def test_held_out_scene_and_duplicate_depth_maps_leave_training():
    train = [_named('Df_65', False), _named('aloe2006_full', True), _named('Df_1', False)]
    kept, dropped = resolve_overlaps(train, [_named('Middlebury_05', True)])
    assert [s.name for s in kept] == ['aloe2006_full', 'Df_1'] and dropped == ['Df_65']
    kept, dropped = resolve_overlaps(train, [_named('aloe2006_full', True)])
    assert [s.name for s in kept] == ['Df_1'] and set(dropped) == {'Df_65', 'aloe2006_full'}
    kept, _ = resolve_overlaps(train + [_named('Middlebury_01', True)],
                               [_named('Df_65', False)])
    assert [s.name for s in kept] == ['Df_1']


def test_extra_rgbd_pairs_are_read_at_full_size_with_masks():
    root = shared_data_root() / 'extra_rgbd'
    if not root.is_dir():
        pytest.skip(f'extra RGB-D pairs not present at {root}')
    aloe, motorcycle = load_samples({'type': 'extra_rgbd', 'root': str(root)})
    assert aloe.name == 'aloe2006_full' and aloe.depth.shape == (1110, 1282)
    assert aloe.rgb.shape == (1110, 1282, 3) and aloe.unit == 'disparity_8bit'
    assert 0.03 < 1 - aloe.valid.mean() < 0.04  # 3.45 % unknown (0)
    assert motorcycle.depth.shape == (500, 741) and motorcycle.rgb.shape == (500, 741, 3)
    assert np.isfinite(motorcycle.depth).all()
    assert 1 - motorcycle.valid.mean() == pytest.approx(0.0735, abs=0.001)  # the +inf pixels
    assert motorcycle.depth[motorcycle.valid].min() > 7


def test_torchrun_two_cpu_processes_with_unequal_shards_finish(tmp_path):
    """17 patches over 2 ranks (9 + 8) and batches of 4: unequal shards used to hang."""
    config = tmp_path / 'ddp.yaml'
    config.write_text(SMOKE.read_text().replace('patches_per_epoch: 16', 'patches_per_epoch: 17')
                      .replace('batch_size: 8', 'batch_size: 4') + 'torch_threads: 1\n'
                      + 'channels_last: false\n')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
               '--nproc_per_node', '2', '-m', 'training.train', '--config', str(config),
               '--out', str(tmp_path / 'run'), '--no-progress']
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)
    assert state['epoch'] == 3 and state['provenance']['world_size'] == 2
    assert (tmp_path / 'run' / 'final_dsrnet.pt').is_file()
