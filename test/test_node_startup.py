"""Start-up failures of dsr_node: one clear error line on stderr, exit status 1, no traceback.

A robot's launch system shows the first lines of a dying node; a traceback there hides the one
thing the user must fix (usually the weights path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIG, REPO

from dsr_ros.ros.ros_args import node_command
from dsr_ros.weights import shipped_models

CONSOLE_SCRIPT = Path(sys.executable).parent / 'dsr_node'


def _run_node(parameters: dict, executable=None) -> subprocess.CompletedProcess:
    argv = node_command(executable, params_file=CONFIG, parameters=parameters)
    return subprocess.run(argv, cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)


def _assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert '[ERROR]' in lines[0] and 'dsr_node' in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert 'Traceback' not in result.stdout + result.stderr


def test_missing_weights_file(tmp_path):
    missing = tmp_path / 'nowhere.pt'
    result = _run_node({'weights_path': str(missing)})
    _assert_one_error_line(result, 'cannot use checkpoint', str(missing), 'does not exist')


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason='dsr_node console script not installed '
                    '(run pip install -e .)')
def test_garbage_weights_file_through_the_console_script(tmp_path):
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'this is not a torch checkpoint\n' * 10)
    result = _run_node({'weights_path': str(garbage)}, executable=[str(CONSOLE_SCRIPT)])
    _assert_one_error_line(result, 'cannot use checkpoint', 'not a readable torch checkpoint')


def test_no_weights_and_no_shipped_model_for_the_scale():
    result = _run_node({'weights_path': '', 'scale': 16, 'device': 'cpu'})
    _assert_one_error_line(result, 'no model', 'for x16', 'weights_path')


def test_an_unshipped_rung_is_refused_with_what_is_shipped():
    result = _run_node({'weights_path': '', 'model': 'paper', 'scale': 8, 'device': 'cpu'})
    _assert_one_error_line(result, 'no shipped paper model for x8', 'shipped:', 'paper x4')


def test_the_node_runs_and_logs_a_self_ensemble(tmp_path, tiny_checkpoint, node_processes):
    from conftest import start_node
    node = start_node(tmp_path / 'node.log', parameters={
        'weights_path': str(tiny_checkpoint), 'ensemble_passes': 4, 'device': 'cpu'})
    node_processes.append(node)
    node.wait_for_log('super-resolving x4', timeout=120)
    assert '(4-pass self-ensemble)' in node.log()
    assert node.alive()


def test_a_bad_number_of_ensemble_passes_is_refused(tiny_checkpoint):
    result = _run_node({'weights_path': str(tiny_checkpoint), 'ensemble_passes': 3})
    _assert_one_error_line(result, 'ensemble_passes must be one of (1, 2, 4, 8), got 3')


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_cuda_requested_without_cuda(tiny_checkpoint):
    result = _run_node({'weights_path': str(tiny_checkpoint), 'device': 'cuda:1'})
    _assert_one_error_line(result, 'CUDA is not available')


@pytest.mark.skipif(len(shipped_models().get(4, {})) < 2,
                    reason='model auto needs two shipped x4 rungs to choose between')
def test_model_auto_times_the_rungs_and_logs_its_choice(tmp_path, node_processes):
    """Nothing keeps up with 1 kHz: auto times the smallest rung first, stops there (the larger
    ones are slower still) and says it is too slow."""
    from conftest import start_node
    node = start_node(tmp_path / 'node.log', parameters={
        'weights_path': '', 'model': 'auto', 'expected_rate_hz': 1000.0, 'device': 'cpu',
        'precision': 'fp32', 'expected_input_width': 40, 'expected_input_height': 30})
    node_processes.append(node)
    node.wait_for_log('model auto: tiny', timeout=120)
    log = node.log()
    choice = next(line for line in log.splitlines() if 'model auto:' in line)
    assert 'too slow for 1000 Hz' in choice and '[median per frame: tiny ' in choice
    assert 'lite' not in choice and 'at 40x30 input' in log
