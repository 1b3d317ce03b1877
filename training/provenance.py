"""What a training state or exported checkpoint says about how it was made.

Enough to rebuild the run: the config as merged, the files it came from (with SHA-256), the
command-line overrides, the code revision (and whether the tree had uncommitted changes), the
data specs and sample names, the machine and library versions, and, for a forked ablation
arm, the provenance of the state it started from.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from training.config import config_chain
from training.data.sample import RGBDSample

__all__ = ['build_provenance', 'git_state']

_REPO = Path(__file__).resolve().parents[1]


def git_state() -> Dict[str, Any]:
    """``{'git_revision': sha, 'git_dirty': bool}``; empty strings outside a git checkout.

    ``DSR_ROS_GIT_REVISION``, when set, wins: whoever copied the tree to another machine (a
    lent GPU) says which commit it is, and the copy's own ``.git`` may be stale (the lent H100's
    reported an older commit plus 'dirty'). Its dirtiness is then unknown (``None``).
    """
    copied = os.environ.get('DSR_ROS_GIT_REVISION', '').strip()
    if copied:
        return {'git_revision': copied, 'git_dirty': None}

    def run(*args: str) -> str:
        try:
            return subprocess.run(['git', *args], capture_output=True, text=True, cwd=_REPO,
                                  timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ''
    revision = run('rev-parse', 'HEAD')
    dirty = bool(run('status', '--porcelain', '--untracked-files=no')) if revision else False
    return {'git_revision': revision, 'git_dirty': dirty}


def build_provenance(config: Dict[str, Any], config_path: str,
                     train: Sequence[RGBDSample], val: Sequence[RGBDSample],
                     overrides: Sequence[str] = (), dropped: Sequence[str] = (),
                     world: int = 1, device: Optional[str] = None) -> Dict[str, Any]:
    """Provenance of a run about to start (see the module docstring)."""
    files = []
    for path in config_chain(config_path):
        files.append({'path': os.fspath(path),
                      'sha256': hashlib.sha256(Path(path).read_bytes()).hexdigest()})
    return {
        'config_path': config_path,
        'config_files': files,
        'overrides': list(overrides),
        'seed': config['seed'],
        'command': ' '.join([os.path.basename(sys.executable), '-m', 'training.train']
                            + sys.argv[1:]),
        **git_state(),
        'train_data': [dict(spec) for spec in config['data']['train']],
        'val_data': [dict(spec) for spec in config['data']['val']],
        'train_samples': len(train),
        'train_sample_names': [s.name for s in train],
        'train_dropped_overlaps': list(dropped),
        'val_samples': [s.name for s in val],
        'host': platform.node(),
        'python': platform.python_version(),
        'torch': str(torch.__version__),
        'device': device,
        'world_size': world,
        'started': datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
