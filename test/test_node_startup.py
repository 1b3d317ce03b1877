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

from dsr_ros.ros_args import node_command
from dsr_ros.weights import default_weights_path

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


@pytest.mark.skipif(default_weights_path() is not None,
                    reason='a default model is shipped, so an empty weights_path is valid')
def test_no_weights_and_no_shipped_model():
    result = _run_node({'weights_path': ''})
    _assert_one_error_line(result, 'no model', 'weights_path')


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_cuda_requested_without_cuda(tiny_checkpoint):
    result = _run_node({'weights_path': str(tiny_checkpoint), 'device': 'cuda:1'})
    _assert_one_error_line(result, 'CUDA is not available')
