"""Bookkeeping of the side-output heads: which received a gradient, and whether L_O may read them.

The paper's ``L_O`` distils the side outputs ``D^n`` of the teacher; a side head means something
only once it has been trained (issue 28). :class:`training.model.CrossTaskModel` counts, per
side-output module, the optimiser steps in which it received a non-zero gradient
(``head_updates``, kept in training states); :func:`untrained_heads_problem` says why an epoch's
distillation would read heads that never did (``checks.untrained_heads``: an error or a loud
warning).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from torch import nn

__all__ = ['HEAD_OPTIMIZER', 'ROLE_TEACHER', 'UntrainedHeadError', 'count_head_updates',
           'saved_head_updates', 'untrained_heads_problem']

#: Stage-2 role (the student) -> the net that teaches.
ROLE_TEACHER = {'dsr': 'DENet', 'de': 'DSRNet'}
#: Side-output module -> the optimiser that updates it.
HEAD_OPTIMIZER = {'sides_sr': 'dsr', 'sides_de': 'de'}


class UntrainedHeadError(ValueError):
    """L_O would distil side outputs of heads that never received a gradient."""


def untrained_heads_problem(config: Dict[str, Any], cross_task: bool,
                            head_updates: Dict[str, int], role: str) -> str:
    """Why this epoch's distillation would read untrained side heads, or ''.

    Stage 1 (``role`` 'both'): the schedule will distil side outputs in stage 2 but stage 1
    gives them no gradient (``loss.side_weight`` 0), so the first teacher's heads stay
    random projections. Stage 2: the teacher's side-output module never received one.
    """
    loss = config['loss']
    if not (cross_task and loss['use_output'] and loss['distill_target'] == 'sides'):
        return ''
    fix = ('set loss.side_weight > 0 (deep supervision of the side outputs, our reading of '
           'the paper) or loss.distill_target: final')
    if role == 'both':
        if int(config['schedule']['stage2_epochs']) and not loss['side_weight']:
            return ('L_O will distil the side outputs D^n in stage 2, but stage 1 trains no '
                    'side head (loss.side_weight is 0): ' + fix)
        return ''
    if role not in ROLE_TEACHER:
        return ''
    heads = 'sides_de' if role == 'dsr' else 'sides_sr'
    if head_updates.get(heads, 0) > 0:
        return ''
    return (f'L_O distils the side outputs of {ROLE_TEACHER[role]}, whose heads ({heads}) '
            'never received a gradient: they are random projections; ' + fix)


def count_head_updates(head_updates: Dict[str, int], modules: Dict[str, nn.Module],
                       stepped: Sequence[str]) -> None:
    """Count a step for every side-output module that the ``stepped`` optimisers update and
    that received a gradient (the others may hold an older step's gradient)."""
    for heads in head_updates:
        if HEAD_OPTIMIZER[heads] in stepped and _received_gradient(modules[heads]):
            head_updates[heads] += 1


def _received_gradient(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` holds a non-zero gradient after a backward."""
    return any(p.grad is not None and bool(p.grad.detach().abs().sum() > 0)
               for p in module.parameters())


def saved_head_updates(state: Dict[str, Any]) -> Dict[str, int]:
    """A state's side-head update counts; states older than the count infer it from their
    config: heads were trained when ``loss.side_weight`` was > 0 for at least one epoch."""
    if 'head_updates' in state:
        return dict(state['head_updates'])
    config = state.get('config') or {}
    trained = bool(config.get('loss', {}).get('side_weight')) and bool(state.get('history'))
    return {'sides_sr': int(trained), 'sides_de': int(trained)}
