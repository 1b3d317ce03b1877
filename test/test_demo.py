"""dsr_demo end to end (scene -> publisher -> dsr_node process -> metrics, PNG) and its helpers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from conftest import REPO

from dsr_ros.weights import default_weights_path


def _run_demo(argv, timeout=150) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=REPO, env=dict(os.environ), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _table_value(stdout: str, name: str) -> str:
    match = re.search(rf'^{re.escape(name)}\s+(\S+)', stdout, re.MULTILINE)
    assert match, f'{name!r} missing from:\n{stdout}'
    return match.group(1)


def _check_png(path: Path) -> None:
    image = cv2.imread(str(path))
    assert image is not None, path
    assert image.shape[1] > 3 * image.shape[0]  # five panels side by side


@pytest.mark.skipif(default_weights_path() is not None,
                    reason='a model is shipped; the untrained path is not taken')
def test_demo_without_weights_says_untrained_and_reports(tmp_path):
    out = tmp_path / 'demo'
    result = _run_demo([sys.executable, '-m', 'dsr_ros.ros.demo', '--out', str(out),
                        '--frames', '8'])
    stdout = result.stdout
    assert 'UNTRAINED' in stdout
    assert '160x120 -> 640x480 (x4)' in stdout
    assert _table_value(stdout, 'frames in (published)') == '8'
    received = int(_table_value(stdout, 'frames out (received)'))
    assert 1 <= received <= 8
    assert int(_table_value(stdout, 'dropped by the node')) <= 8 - received
    assert _table_value(stdout, 'median latency (publish -> SR received)') != 'n/a'
    for row in ('bicubic (OpenCV)', 'SR (dsr_node)'):
        match = re.search(rf'^{re.escape(row)}\s+(\S+)\s+(\S+)', stdout, re.MULTILINE)
        mad, rmse = (float(value) for value in match.groups())
        assert 0 < mad <= rmse
    _check_png(out / 'demo.png')
    assert 'super-resolving x4' in (out / 'node.log').read_text()


def test_demo_console_script_with_weights_and_32fc1(tmp_path, tiny_checkpoint):
    script = Path(sys.executable).parent / 'dsr_demo'
    if not script.exists():
        pytest.skip('dsr_demo console script not installed (pip install -e .)')
    out = tmp_path / 'demo'
    result = _run_demo([str(script), '--weights', str(tiny_checkpoint), '--encoding', '32FC1',
                        '--width', '48', '--height', '32', '--frames', '5', '--out', str(out)])
    assert 'UNTRAINED' not in result.stdout
    assert '48x32 -> 192x128 (x4), 32FC1' in result.stdout
    assert int(_table_value(result.stdout, 'frames out (received)')) >= 1
    _check_png(out / 'demo.png')


def test_demo_refuses_a_bad_checkpoint(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_text('not a checkpoint')
    result = subprocess.run([sys.executable, '-m', 'dsr_ros.ros.demo', '--weights', str(bad),
                             '--out', str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert 'cannot use checkpoint' in result.stderr and 'Traceback' not in result.stderr
