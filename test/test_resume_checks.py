"""``training.train --resume`` refuses a state it cannot honestly continue (issue 11).

A finished smoke run's ``last.pt`` is edited the three ways a probe found resuming wrongly: a
part missing (was a KeyError traceback), an epoch past the schedule (was "resumed" and
re-exported), NaN weights (trained on and exported a NaN model). Each must end the command with
exit status 1 and one error line naming the reason, leaving the run's files as they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / 'training' / 'configs' / 'smoke.yaml'


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'training.train', '--config', str(SMOKE),
                           '--out', str(out), '--no-progress', *extra], cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope='module')
def finished_state(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp('run')
    result = _train(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out / 'last.pt', map_location='cpu', weights_only=True)


def _nan_weights(state: dict) -> dict:
    modules = {name: dict(weights) for name, weights in state['modules'].items()}
    key = next(iter(modules['dsrnet']))
    modules['dsrnet'][key] = torch.full_like(modules['dsrnet'][key], float('nan'))
    return {**state, 'modules': modules}


@pytest.mark.parametrize('edit,fragment', [
    (lambda s: {k: v for k, v in s.items() if k != 'history'}, 'the state lacks history'),
    (lambda s: {**s, 'epoch': 999}, 'epoch 999 is past the schedule of 3 epochs'),
    (_nan_weights, "module 'dsrnet' weight"),
], ids=['missing_history', 'epoch_999', 'nan_weights'])
def test_resume_refuses_with_one_line(finished_state, tmp_path, edit, fragment):
    state = tmp_path / 'last.pt'
    torch.save(edit(finished_state), state)
    before = state.read_bytes()
    result = _train(tmp_path, '--resume')
    errors = [line for line in result.stderr.splitlines() if 'ERROR' in line]
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(errors) == 1 and fragment in errors[0], result.stderr[-3000:]
    assert 'cannot resume from' in errors[0]
    assert 'Traceback' not in result.stderr
    assert state.read_bytes() == before
    assert not (tmp_path / 'final_dsrnet.pt').exists()
