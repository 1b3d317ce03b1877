"""Cross-task distillation training: stages, roles, freezing, gradients, resume, export.

Tiny widths on procedural data, so every test runs in seconds on a CPU.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.inference import DepthSuperResolver
from training import losses
from training.config import ConfigError, DEFAULTS, load_config, merge_config
from training.data.synthetic import synthetic_samples
from training.model import TrainingDiverged
from training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / 'training' / 'configs' / 'smoke.yaml'


def tiny_config(**schedule) -> dict:
    config = load_config(SMOKE)
    config['torch_threads'] = 1
    config['schedule'].update(schedule)
    return config


def make_trainer(tmp_path: Path, **schedule) -> Trainer:
    config = tiny_config(**schedule)
    return Trainer(config, tmp_path, synthetic_samples(4, 96, 128, seed=0),
                   synthetic_samples(1, 96, 128, seed=1), progress=False)


def params(module: torch.nn.Module) -> dict:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_both_stages_run_and_log_roles(tmp_path):
    trainer = make_trainer(tmp_path, stage1_epochs=1, stage2_epochs=1)
    trainer.train()
    roles = [row['role'] for row in trainer.history]
    assert roles[0] == 'independent'
    assert roles[1].startswith('teacher=')
    assert {'l_dsr', 'l_de'} <= set(trainer.history[0])
    assert {'l_o', 'l_a', 'l_struc'} <= set(trainer.history[1])
    header = (tmp_path / 'history.csv').read_text().splitlines()[0].split(',')
    for column in ('role', 'e_dsr_before', 'e_de_before', 'lr', 'samples_per_s',
                   'peak_mem_mb', 'l_struc'):
        assert column in header
    assert (tmp_path / 'best_dsrnet.pt').is_file()


def test_role_follows_held_out_errors(tmp_path):
    trainer = make_trainer(tmp_path, stage1_epochs=1, stage2_epochs=2)
    model = trainer.model
    assert model.choose_role(0, {'e_dsr': 0.1, 'e_de': 0.2}) == 'both'
    # DSRNet better: it teaches, DENet learns; and the other way round once errors cross.
    assert model.choose_role(1, {'e_dsr': 0.1, 'e_de': 0.2}) == 'de'
    assert model.choose_role(1, {'e_dsr': 0.3, 'e_de': 0.2}) == 'dsr'
    trainer.config['schedule']['role_policy'] = 'dsr_student'
    assert model.choose_role(1, {'e_dsr': 0.1, 'e_de': 0.2}) == 'dsr'


def test_frozen_teacher_is_bit_identical_after_its_epoch(tmp_path):
    trainer = make_trainer(tmp_path, stage1_epochs=1, stage2_epochs=1)
    trainer.train_epoch()
    errors = trainer.validate()
    role = trainer.model.choose_role(trainer.epoch, errors)
    teacher = trainer.model.denet if role == 'dsr' else trainer.model.dsrnet
    student = trainer.model.dsrnet if role == 'dsr' else trainer.model.denet
    before_teacher, before_student = params(teacher), params(student)
    trainer.train_epoch()
    after_teacher, after_student = params(teacher), params(student)
    for name, value in before_teacher.items():
        assert torch.equal(value, after_teacher[name]), name
    assert any(not torch.equal(v, after_student[k]) for k, v in before_student.items())


@pytest.mark.parametrize('student', ['dsr', 'de'])
def test_distillation_gradients_reach_only_the_student(tmp_path, student, monkeypatch):
    trainer = make_trainer(tmp_path, stage1_epochs=0, stage2_epochs=1)
    model = trainer.model
    model.set_frozen(student)
    rgb_set = trainer.datasets['rgb']
    rgb_set.set_epoch(0)
    batch = torch.utils.data.default_collate([rgb_set[i] for i in range(4)])
    for optimizer in model.optimizers.values():
        monkeypatch.setattr(optimizer, 'step', lambda *a, **k: None)
    model.step('stage2', batch, student)
    student_net = model.dsrnet if student == 'dsr' else model.denet
    teacher_net = model.denet if student == 'dsr' else model.dsrnet
    assert all(p.grad is None for p in teacher_net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student_net.parameters())
    assert any(p.grad is not None for p in model.spnet.parameters())


def test_distill_terms_alone_push_the_student_towards_the_teacher():
    torch.manual_seed(0)
    student = [torch.rand(2, 4, 16, 16, requires_grad=True)]
    teacher = [torch.rand(2, 4, 16, 16, requires_grad=True)]
    loss = losses.output_loss(student, [t.detach() for t in teacher]) + 0.5 * \
        losses.affinity_loss(student, [t.detach() for t in teacher], 8, True)
    loss.backward()
    assert teacher[0].grad is None
    assert student[0].grad.abs().sum() > 0


def test_affinity_memory_stays_under_bound_at_256_patches():
    """Peak RSS of L_A on 256x256 features (with backward) in a fresh process."""
    code = (
        'import resource, torch\n'
        'from training import losses\n'
        'torch.set_num_threads(1)\n'
        'base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
        'f = [torch.rand(2, 16, 256, 256, requires_grad=True) for _ in range(3)]\n'
        't = [torch.rand(2, 16, 256, 256) for _ in range(3)]\n'
        'losses.affinity_loss(f, t, 32, True).backward()\n'
        'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=REPO, timeout=120, check=True)
    grown_mb = int(result.stdout.strip().splitlines()[-1]) / 1024
    inputs_mb = 2 * 3 * 2 * 16 * 256 * 256 * 4 / 2 ** 20  # features and their gradients
    bound_mb = losses.affinity_memory_bytes(2, 256, 256, 32, 3) / 2 ** 20
    full_mb = 3 * 2 * (256 * 256) ** 2 * 4 / 2 ** 20  # what an unpooled A would need
    assert grown_mb < inputs_mb + 2 * bound_mb + 64, (grown_mb, bound_mb)
    assert full_mb > 1000 * bound_mb


def run_cli(out: Path, *extra: str, wait: bool = True, config: Path = None):
    cmd = [sys.executable, '-m', 'training.train', '--config', str(config), '--out', str(out),
           '--no-progress', *extra]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if wait:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_identical_weights(tmp_path):
    config_text = SMOKE.read_text().replace('patches_per_epoch: 16', 'patches_per_epoch: 64')
    config_text += 'torch_threads: 1\n'
    config = tmp_path / 'resume.yaml'
    config.write_text(config_text)
    straight = run_cli(tmp_path / 'straight', config=config)
    assert straight.returncode == 0, straight.stderr
    process = run_cli(tmp_path / 'killed', wait=False, config=config)
    state = tmp_path / 'killed' / 'last.pt'
    deadline = time.monotonic() + 240
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert state.exists(), 'first epoch never finished'
    time.sleep(0.5)  # well inside epoch 2 of 3
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    first = torch.load(state, weights_only=True)
    assert first['epoch'] < 3, 'the run finished before it could be killed'
    resumed = run_cli(tmp_path / 'killed', '--resume', config=config)
    assert resumed.returncode == 0, resumed.stderr
    assert 'resumed' in resumed.stderr
    a = torch.load(tmp_path / 'straight' / 'last.pt', weights_only=True)
    b = torch.load(state, weights_only=True)
    assert a['epoch'] == b['epoch'] == 3
    assert [r['role'] for r in a['history']] == [r['role'] for r in b['history']]
    for module in a['modules']:
        for key, value in a['modules'][module].items():
            assert torch.equal(value, b['modules'][module][key]), (module, key)


def test_existing_run_needs_resume_flag(tmp_path):
    first = run_cli(tmp_path / 'run', config=SMOKE)
    assert first.returncode == 0, first.stderr
    second = run_cli(tmp_path / 'run', config=SMOKE)
    assert second.returncode == 1
    assert 'already holds a run' in second.stderr


def test_nan_loss_stops_with_message_and_keeps_last_good_state(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, stage1_epochs=2, stage2_epochs=0)
    trainer.train_epoch()
    good = torch.load(tmp_path / 'last.pt', weights_only=True)
    monkeypatch.setattr(losses, 'masked_l1',
                        lambda *args, **kwargs: torch.tensor(float('nan'), requires_grad=True))
    with pytest.raises(TrainingDiverged, match='non-finite loss.*last good checkpoint'):
        trainer.train_epoch()
    kept = torch.load(tmp_path / 'last.pt', weights_only=True)
    assert kept['epoch'] == good['epoch'] == 1


def test_exported_checkpoint_runs_in_the_node_inference(tmp_path):
    trainer = make_trainer(tmp_path, stage1_epochs=1, stage2_epochs=0)
    trainer.train()
    model, meta = load_checkpoint(tmp_path / 'best_dsrnet.pt')
    assert meta['arch']['num_channels'] == trainer.model.dsrnet.num_channels
    assert meta['normalization']['mode'] == 'range'
    assert meta['provenance']['epoch'] == 1
    resolver = DepthSuperResolver.from_checkpoint(tmp_path / 'best_dsrnet.pt', device='cpu')
    depth = np.full((24, 32), 1500, np.uint16)
    depth[4:8, 4:8] = 0
    out = resolver.run(depth)
    assert out.shape == (96, 128) and out.dtype == np.uint16
    assert (out[16:32, 16:32] == 0).all() and (out[40:, 40:] > 0).all()


def test_ablation_without_distillation_trains_dsrnet_only(tmp_path):
    config = tiny_config(stage1_epochs=1, stage2_epochs=1)
    config['loss']['distill'] = False
    trainer = Trainer(config, tmp_path, synthetic_samples(3, 96, 128),
                      synthetic_samples(1, 96, 128, seed=1), progress=False)
    trainer.train()
    assert not hasattr(trainer.model, 'denet')
    assert [row['role'] for row in trainer.history] == ['dsr-only', 'dsr-only']


def test_config_refuses_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match='unknown config key .loss.rho3'):
        merge_config(DEFAULTS, {'loss': {'rho3': 1}})
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: x\nscale: 3\ndata: {train: [{type: synthetic}]}\n')
    with pytest.raises(ConfigError, match='scale must be'):
        load_config(bad)
    assert copy.deepcopy(DEFAULTS) == DEFAULTS


def test_a_derived_config_adds_sensor_keys_and_typos_still_fail(tmp_path):
    """data.sensor's defaults live in SensorDegradation: a config basing on one that sets
    some of its keys may set others, and a misspelt one is refused when the config loads."""
    base = tmp_path / 'base.yaml'
    base.write_text('name: base\ndata: {train: [{type: synthetic}], degradation: sensor,\n'
                    '       sensor: {point_phase0_prob: 0.8}}\n')
    child = tmp_path / 'child.yaml'
    child.write_text('base: base.yaml\nname: child\ndata: {sensor: {sensor_frame_prob: 0.5}}\n')
    sensor = load_config(child)['data']['sensor']
    assert sensor == {'point_phase0_prob': 0.8, 'sensor_frame_prob': 0.5}
    child.write_text('base: base.yaml\nname: child\ndata: {sensor: {sensor_frame_prb: 0.5}}\n')
    with pytest.raises(ConfigError, match='data.sensor: unknown sensor degradation keys'):
        load_config(child)
    child.write_text('base: base.yaml\nname: child\ndata: {scaling: {mode: range, fit_tle: 32}}\n')
    with pytest.raises(ConfigError, match='data.scaling: .*fit_tle'):
        load_config(child)


def test_a_recorded_bag_trains_for_one_epoch(tmp_path):
    """rosbag2 written here (depth 16UC1 mm + rgb8 + camera_info) -> one training epoch."""
    from training.data.bag_writer import BagFrame, write_bag
    frames = []
    for sample in synthetic_samples(4, 96, 128, seed=3):
        depth_mm = (sample.depth * 10).astype(np.uint16)
        frames.append(BagFrame(depth=depth_mm, rgb=sample.rgb,
                               intrinsics=np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])))
    bag = tmp_path / 'robot_bag'
    write_bag(bag, frames, storage='mcap')
    config_text = SMOKE.read_text().split('data:')[0] + (
        'data:\n'
        f'  train: [{{type: rosbag, path: {bag}, depth_topic: /depth/image_raw,\n'
        '            rgb_topic: /color/image_raw, camera_info_topic: /depth/camera_info}]\n'
        '  val: [{type: synthetic, count: 1, height: 96, width: 128, seed: 1}]\n'
        '  patch_size: 32\n  patches_per_epoch: 16\n  val_patches: 4\n  batch_size: 8\n'
        'schedule: {stage1_epochs: 1, stage2_epochs: 0}\n')
    config = tmp_path / 'bag.yaml'
    config.write_text(config_text)
    result = run_cli(tmp_path / 'run', config=config)
    assert result.returncode == 0, result.stderr
    assert '4 train / 1 held-out samples' in result.stderr
    state = torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)
    assert state['epoch'] == 1 and state['history'][0]['l_de'] > 0
    model, meta = load_checkpoint(tmp_path / 'run' / 'final_dsrnet.pt')
    assert meta['provenance']['train_data'][0]['type'] == 'rosbag'


def test_export_cli_writes_a_node_ready_checkpoint(tmp_path):
    from training.export import main as export_main
    trainer = make_trainer(tmp_path / 'run', stage1_epochs=1, stage2_epochs=0)
    trainer.train()
    out = tmp_path / 'weights' / 'model.pt'
    assert export_main(['--run', str(tmp_path / 'run'), '--out', str(out)]) == 0
    model, meta = load_checkpoint(out)
    assert meta['provenance']['exported_from'].endswith('best_dsrnet.pt')
    assert meta['metrics']['val_history'][0]['epoch'] == 1
    assert export_main(['--run', str(tmp_path / 'missing'), '--out', str(out)]) == 1
    for which, epoch in (('stage1', 1), ('last', 1)):
        assert export_main(['--run', str(tmp_path / 'run'), '--which', which,
                            '--out', str(out)]) == 0
        model, meta = load_checkpoint(out)
        assert meta['provenance']['epoch'] == epoch
        assert torch.equal(model.state_dict()['reconstruction.2.weight'],
                           trainer.model.dsrnet.state_dict()['reconstruction.2.weight'].cpu())


def test_export_scores_middlebury_against_bicubic(tmp_path):
    from training.data.readers import shared_data_root
    root = shared_data_root() / 'middlebury2005_sun'
    if not root.is_dir():
        pytest.skip(f'benchmark data not present at {root}')
    from training.export import export_run
    trainer = make_trainer(tmp_path / 'run', stage1_epochs=1, stage2_epochs=0)
    trainer.train()
    metrics = export_run(tmp_path / 'run', tmp_path / 'm.pt', dataset='middlebury2005',
                         data_root=str(root))['middlebury2005']
    assert set(metrics['mad']) == {'art', 'books', 'dolls', 'laundry', 'moebius', 'reindeer'}
    assert metrics['bicubic_mad']['art'] == pytest.approx(1.170, abs=0.001)
    assert metrics['mean_mad'] == pytest.approx(np.mean(list(metrics['mad'].values())))


def test_history_plot_is_written(tmp_path):
    from training.plot_history import main as plot_main
    trainer = make_trainer(tmp_path / 'run', stage1_epochs=1, stage2_epochs=1)
    trainer.train()
    out = tmp_path / 'history.png'
    assert plot_main([str(tmp_path / 'run' / 'history.csv'), '--out', str(out)]) == 0
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10000
    assert plot_main([str(tmp_path / 'missing.csv'), '--out', str(out)]) == 1
