"""Smoke runs of ``python -m dsr_ros.benchmark`` with tiny sizes: the report has its fields.

Not a timing test: the numbers on a shared 2-core machine mean nothing here, only that every
stage runs, the JSON carries what the README table is made from, and the FLOP count is right.
"""

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from dsr_ros.benchmark import (JSON_NAME, LITE_ARCH, MARKDOWN_NAME, build_models,
                               count_conv_macs, main, parse_size, synthetic_depth)
from dsr_ros.cpu_tuning import malloc_env, omp_env, tune_malloc
from dsr_ros.networks import DSRNet

RECORD_FIELDS = ('case', 'device', 'scale', 'lr_size', 'hr_size', 'stage', 'variant',
                 'precision', 'channels_last', 'threads', 'frames', 'median_ms', 'p95_ms',
                 'fps', 'gflop_per_frame', 'achieved_gflop_s', 'peak_mem_mb', 'mem_kind')
TINY = ['--sizes', '16x12', '--frames', '2', '--budget', '0.01', '--devices', 'cpu',
        '--quiet']


def _load(out_dir):
    return json.loads((out_dir / JSON_NAME).read_text())


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    """A very small x4 checkpoint: the smoke runs test plumbing, not the lite model's speed."""
    from dsr_ros.checkpoint import save_checkpoint
    return save_checkpoint(tmp_path_factory.mktemp('weights') / 'x4.pt', DSRNet(4, 4, 1))


def test_benchmark_without_node_writes_all_fields(tmp_path, capsys, tiny_weights):
    main(TINY + ['--scales', '4', '8', '--no-node', '--no-process-options', '--tile-size', '8',
                 '--tile-min-pixels', '1', '--weights', str(tiny_weights), '--out',
                 str(tmp_path)])
    printed = capsys.readouterr().out
    assert '| case | output | variant |' in printed and '### Speed options' in printed
    assert (tmp_path / MARKDOWN_NAME).read_text().strip() == printed.strip()
    report = _load(tmp_path)
    assert report['cases'] == ['cpu x4 16x12', 'cpu x8 16x12']
    assert {'torch', 'cpu', 'torch_threads', 'date'} <= set(report['meta'])
    stages = {(r['case'], r['stage'], r['variant']) for r in report['records']}
    for case in report['cases']:
        assert (case, 'model', 'fp32 NHWC') in stages
        assert (case, 'wrapper', 'fp32 NHWC') in stages
        assert (case, 'model', 'fp32 NCHW') in stages  # the channels_last ablation
    for record in report['records']:
        assert 'error' not in record, record
        for name in RECORD_FIELDS:
            assert name in record, (name, record['stage'], record['variant'])
        assert record['median_ms'] > 0 and record['p95_ms'] >= record['median_ms'] * 0.999
        assert record['hr_size'] == [v * record['scale'] for v in record['lr_size']]
    flops = {r['scale']: r['gflop_per_frame'] for r in report['records']}
    assert flops[4] == pytest.approx(2 * count_conv_macs(DSRNet(4, 4, 1), 12, 16) / 1e9)
    wrappers = [r for r in report['records'] if r['stage'] == 'wrapper' and not r['tile_size']]
    assert all(math.isfinite(r['ratio_to_model']) for r in wrappers)
    options = {(row['case'], row['option']) for row in report['ratios']}
    assert ('cpu x4 16x12', 'channels_last') in options
    assert ('cpu x4 16x12', 'tiling 8') in options
    assert all(row['speedup'] > 0 for row in report['ratios'])


def test_weights_file_sets_its_scale_and_random_weights_the_other(tmp_path, tiny_weights):
    models, notes = build_models([4, 8], str(tiny_weights), tmp_path)
    assert models[4][1] == str(tiny_weights)
    assert models[8][0].scale == 8 and models[8][0].num_channels == 4
    assert torch.load(models[8][1], weights_only=True)['scale'] == 8  # the node can load it
    assert any(str(tiny_weights) in note for note in notes)
    assert any(note.startswith('x8: random weights') for note in notes)


def test_without_weights_the_lite_architecture_is_used_and_said(tmp_path, monkeypatch):
    import dsr_ros.benchmark as benchmark
    monkeypatch.setattr(benchmark, '_default_weights', lambda: None)
    models, notes = build_models([4], None, tmp_path)
    assert models[4][0].num_channels == LITE_ARCH['num_channels']
    assert models[4][0].num_blocks == LITE_ARCH['num_blocks']
    assert any('RANDOM weights' in note for note in notes)


@pytest.mark.skipif(importlib.util.find_spec('rclpy') is None, reason='rclpy not installed')
@pytest.mark.skipif(importlib.util.find_spec('dsr_ros.node') is None,
                    reason='dsr_ros.node not present')
def test_benchmark_through_the_node(tmp_path, tiny_weights):
    main(TINY + ['--scales', '4', '--weights', str(tiny_weights), '--precisions', 'fp32',
                 '--tile-size', '0', '--frames', '3', '--budget', '0.5', '--no-process-options',
                 '--node-startup-timeout', '60', '--out', str(tmp_path)])
    report = _load(tmp_path)
    node = {r['stage']: r for r in report['records'] if r['stage'].startswith('node')}
    assert 'error' not in node['node_lockstep'], node['node_lockstep']
    assert node['node_lockstep']['frames'] >= 2 and node['node_lockstep']['median_ms'] > 0
    assert node['node_lockstep']['ratio_to_model'] > 0
    assert node['node_flood']['received'] >= 1 and node['node_flood']['fps'] > 0
    assert node['node_lockstep']['peak_mem_mb'] > 0


def test_conv_macs_match_a_hand_count():
    channels, height, width, scale = 3, 5, 7, 2
    kernel = 6  # x2 projection kernel
    model = DSRNet(scale, channels, num_blocks=1)
    lr, hr = height * width, height * width * scale ** 2
    shallow = lr * channels * 9 + lr * channels * channels * 9 + lr * channels * channels
    up_block = 3 * lr * channels * channels * kernel ** 2  # deconv, conv, deconv
    reconstruction = hr * channels * channels * 9 + hr * channels * 9
    assert count_conv_macs(model, height, width) == shallow + up_block + reconstruction


def test_synthetic_depth_looks_like_a_depth_frame():
    depth = synthetic_depth(60, 80, seed=2)
    assert depth.dtype == np.uint16 and depth.shape == (60, 80)
    valid = depth > 0
    assert 0.8 < valid.mean() < 1.0  # a few sensor holes
    assert 800 <= depth[valid].min() and depth.max() <= 4000
    assert np.array_equal(depth, synthetic_depth(60, 80, seed=2))
    assert not synthetic_depth(60, 80, holes=False).min() == 0


def test_parse_size():
    assert parse_size('160x120') == (160, 120)
    with pytest.raises(Exception):
        parse_size('160')


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc settings')
def test_cpu_tuning_applies_in_a_fresh_process():
    # A child process: the settings are process-wide and cannot be undone.
    code = ('from dsr_ros.cpu_tuning import tune_malloc; import torch; ok = tune_malloc(); '
            'torch.ones(64, 1024, 1024).sum(); print(ok)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == 'True'
    assert malloc_env()['MALLOC_ARENA_MAX'] == '1'
    assert omp_env() == {'OMP_WAIT_POLICY': 'PASSIVE'}
    with pytest.raises(ValueError):
        tune_malloc(0)


def test_cuda_only_variants_keep_cpu_state_clean():
    # The cuDNN autotune variant only toggles a flag around the call; it must restore it.
    from dsr_ros.benchmark import Variant, _model_callable
    before = torch.backends.cudnn.benchmark
    run, _ = _model_callable(DSRNet(4, 4, 1), torch.device('cpu'),
                             Variant('fp32', True, cudnn_benchmark=True), 8, 8)
    assert run().shape == (1, 1, 32, 32)
    assert torch.backends.cudnn.benchmark == before
