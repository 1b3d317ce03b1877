"""``python -m training.finetune`` on bags written like a robot's driver writes them.

Every run is a real fine-tune (real bag, real training steps, real export) with the smallest
budget that still trains: a few optimizer steps. The README's lines run as written.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.weights import shipped_weights
from driver_bag import COLOR, DEPTH, DEPTH_INFO, write_driver_bag

REPO = Path(__file__).resolve().parents[1]
README_BEGIN, README_END = '<!-- finetune-begin -->', '<!-- finetune-end -->'


def finetune(*args: str, cwd: Path, steps: int = 2, timeout: float = 300
             ) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, as a user runs it (one torch thread, no ../shared)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1',
               DSR_FINETUNE_MAX_STEPS=str(steps), DSR_SHARED_DATA=str(cwd / 'no_shared'))
    return subprocess.run([sys.executable, '-m', 'training.finetune', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def readme_lines() -> list:
    """The shell lines between the README's fine-tune markers."""
    text = (REPO / 'README.md').read_text()
    if README_BEGIN not in text or README_END not in text:
        pytest.skip(f'README.md has no {README_BEGIN} ... {README_END} section yet')
    block = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    code = re.search(r'```bash\n(.*?)```', block, re.S)
    if code is None and 'to be written' in block:
        pytest.skip('the fine-tune section of README.md is still a placeholder')
    assert code, 'the fine-tune section of README.md has no bash block'
    return [line for line in code.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize('storage,rgb', [('mcap', True), ('sqlite3', False),
                                         ('sqlite3', True), ('mcap', False)])
def test_the_readme_lines_run_as_written(tmp_path, storage, rgb):
    lines = readme_lines()
    record = [line for line in lines if line.startswith('ros2 bag record')]
    assert record, 'the README must show how the bag is recorded'
    bag = tmp_path / shlex.split(record[0])[shlex.split(record[0]).index('-o') + 1]
    write_driver_bag(bag, storage, rgb=rgb)  # what `ros2 bag record` would have written
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1',
               DSR_FINETUNE_MAX_STEPS='2', DSR_SHARED_DATA=str(tmp_path / 'no_shared'))
    launch = None
    for line in lines:
        words = shlex.split(line)
        if words[:2] == ['ros2', 'launch']:
            launch = dict(word.split(':=', 1) for word in words if ':=' in word)
            continue
        if words[0] == 'ros2':
            continue
        assert words[:2] == ['python', '-m'], line
        result = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f'{line}\n{result.stdout}\n{result.stderr}'
        assert 'Traceback' not in result.stderr
        if 'training.bag_info' in line:
            assert '16UC1' in result.stdout and '160x120' in result.stdout
        if 'training.finetune' in line:
            assert 'held out' in result.stdout and 'native (area-averaged)' in result.stdout
            assert ('RGB' in result.stderr and 'unused' in result.stderr) == rgb
    weights = tmp_path / launch['weights_path']
    assert weights.is_file(), f'no export: {weights} (did two steps stop improving?)'
    for phase in ([0, 0], [-1, -1]):
        resolver = DepthSuperResolver.from_checkpoint(weights, sampling_phase=phase)
        assert resolver.run(torch.full((30, 40), 1.5).numpy()).shape == (120, 160)


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """One fine-tune of the shipped tiny x4 on an RGB-D mcap bag, exported regardless."""
    root = tmp_path_factory.mktemp('finetune')
    bag = write_driver_bag(root / 'bag', 'mcap', rgb=True)
    result = finetune('--bag', 'bag', '--out', 'run', '--model', 'tiny', '--export-anyway',
                      cwd=root, steps=4)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, bag, result


def test_the_export_carries_what_the_node_needs(tiny_run):
    root, bag, result = tiny_run
    export = root / 'run' / 'dsrnet_finetuned.pt'
    start_path = shipped_weights('tiny', 4)
    _, start = load_checkpoint(start_path)
    _, meta = load_checkpoint(export)
    assert meta['normalization'] == start['normalization']
    assert meta['normalization']['fit_tile'] == 0  # the shipped tiny's, not the recipe's 32
    assert meta['sampling']['point_alignment'] == start['sampling']['point_alignment']
    assert meta['sampling']['held_out_check']['frames'] > 0
    provenance = meta['provenance']
    assert provenance['start_model']['sha256'] == hashlib.sha256(
        start_path.read_bytes()).hexdigest()
    assert provenance['start_model']['provenance'] == start['provenance']
    files = provenance['bags'][0]['digest']['files']
    assert files['metadata.yaml'] == hashlib.sha256(
        (bag / 'metadata.yaml').read_bytes()).hexdigest()
    topics = provenance['bags'][0]['topics']
    assert (topics['depth']['topic'], topics['info']['topic'], topics['rgb']['topic']) == (
        DEPTH, DEPTH_INFO, COLOR)
    assert topics['rgb_info']['camera_info']['k'][0] > 0  # each stream's camera_info
    assert provenance['bags'][0]['pairing_tolerance_s'] == 0.02
    assert 'unused' in provenance['rgb']['why'] and provenance['rgb']['largest_offset_ms'] == 7.0
    held = provenance['held_out'][0]
    assert held['frames'] == 6 and held['start_s'] == pytest.approx(2.4)
    assert 'held out bag: 2.40-2.90 s into the bag (6 frames' in result.stdout
    # each epoch's held-out error is shown after the epoch
    assert re.search(r'epoch 1: held-out error \d\.\d+ after it \(start \d\.\d+\)', result.stdout)
    for geometry in ('native (area-averaged)', 'decimated, phase [0, 0] told',
                     'decimated, phase unknown'):
        assert geometry in result.stdout


def test_the_node_starts_with_the_export(tiny_run, node_processes):
    from conftest import start_node
    root, _, _ = tiny_run
    node = start_node(root / 'node.log', parameters={
        'weights_path': str(root / 'run' / 'dsrnet_finetuned.pt'), 'device': 'cpu',
        'sampling_phase': [0, 0]})
    node_processes.append(node)
    node.wait_for_log('super-resolving x4', timeout=120)
    assert node.alive(), node.log()


def test_a_fine_tune_that_cannot_help_exports_nothing_and_says_so(tmp_path):
    write_driver_bag(tmp_path / 'train', 'sqlite3', rgb=False, frames=12)
    write_driver_bag(tmp_path / 'other', 'sqlite3', rgb=False, frames=4, scene_seed=7)
    # one step at a rate far too high for a trained net, held out on another scene
    result = finetune('--bag', 'train', '--val-bag', 'other', '--out', 'run', '--model', 'tiny',
                      '--lr', '0.05', cwd=tmp_path, steps=1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'the starting model stays the best on the held-out frames: no new file written' \
        in result.stdout
    assert not (tmp_path / 'run' / 'dsrnet_finetuned.pt').exists()
    assert 'last epoch' in result.stdout  # the table still compares what was tried
