"""What a training run keeps on disk: its resumable state and the DSRNet checkpoints it exports.

A state (``last.pt``, ``stage1_end.pt``) is written atomically with a digest of its contents, so
a run killed while saving keeps the previous good one and a corrupted one is refused with one
line (:mod:`training.resume_checks`). Reading one back checks it against the schedule and the
config before a single weight is restored.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any, Dict, List

from dsr_ros.checkpoint import atomic_torch_save, save_checkpoint
from dsr_ros.networks import DSRNet
from training.config import ConfigError
from training.model import CrossTaskModel
from training.resume_checks import (DIGEST_KEY, config_differences, digest_problem,
                                    read_state, state_digest, state_problem)
from training.run_data import checkpoint_normalization
from training.warm_start import mismatch_summary

__all__ = ['STATE_FORMAT', 'continued_provenance', 'export_dsrnet', 'restore_state',
           'write_state']

STATE_FORMAT = 'dsr_ros.training_state/1'


def write_state(state: Dict[str, Any], path: Path) -> None:
    """Atomic write: a run killed while saving keeps the previous good state."""
    state[DIGEST_KEY] = state_digest(state)  # torch does not check its zip CRCs
    atomic_torch_save(state, path)


def restore_state(path: Path, model: CrossTaskModel, config: Dict[str, Any],
                  total_epochs: int, fork: bool) -> Dict[str, Any]:
    """Check the state at ``path``, restore ``model`` from it and return it.

    ``fork`` starts a *different* config from another run's state (e.g. an ablation's
    stage 2 from ``stage1_end.pt`` of a shared stage-1 run, so every arm shares data, seed
    and initialisation): only the networks and optimisers this run has are restored and the
    config may differ. Every refusal is a one-line :class:`ConfigError`.
    """
    try:
        state = read_state(path, STATE_FORMAT)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    problem = state_problem(state, total_epochs) or digest_problem(state)
    if problem:
        raise ConfigError(f'cannot resume from {os.fspath(path)!r}: {problem}')
    if not fork and state['config'] != config:
        keys = config_differences(state['config'], config)
        raise ConfigError(f'cannot resume from {os.fspath(path)!r}: it was written with a '
                          f'different config (differs in {", ".join(keys[:8])}'
                          f'{", ..." if len(keys) > 8 else ""}); start a new --out or '
                          'restore that config')
    try:
        model.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as error:
        raise ConfigError(f'cannot start from {os.fspath(path)!r}: its networks do not '
                          f'match this config ({mismatch_summary(error)})') from None
    return state


def continued_provenance(provenance: Dict[str, Any], state: Dict[str, Any], path: Path,
                         fork: bool) -> Dict[str, Any]:
    """The provenance of a run continued from ``state``.

    A fork keeps its parent's provenance under ``forked_from``; a resumed run keeps the
    provenance it started with (fork included) and notes when it resumed.
    """
    if fork:
        return dict(provenance, forked_from={'path': os.fspath(path),
                                             'epoch': int(state['epoch']),
                                             'config_name': state['config']['name'],
                                             'provenance': state.get('provenance', {})})
    if state.get('provenance'):
        return dict(state['provenance'], resumed=provenance.get('started'))
    return provenance


def export_dsrnet(path: Path, dsrnet: DSRNet, config: Dict[str, Any],
                  provenance: Dict[str, Any], epoch: int, best_val: float,
                  history: List[Dict[str, Any]]) -> Path:
    """Write ``dsrnet`` as a node-ready checkpoint with the run's provenance and held-out log."""
    return save_checkpoint(
        path, dsrnet, normalization=checkpoint_normalization(config),
        provenance=dict(provenance, epoch=epoch,
                        exported=datetime.datetime.now(datetime.timezone.utc).isoformat()),
        metrics={'val_e_dsr': best_val, 'val_history': [
            {k: v for k, v in row.items() if k in ('epoch', 'val_e_dsr', 'role')}
            for row in history]},
        config=config)
