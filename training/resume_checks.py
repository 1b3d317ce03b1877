"""Is a saved training state fit to resume from? One reason, or '' (no torch work beyond reads).

``--resume`` used to trust ``last.pt``: a state without its history was a KeyError traceback,
one at epoch 999 "resumed" past the schedule and re-exported, and one with NaN weights trained
on (and exported) a NaN model. Each is refused with one line naming what is wrong.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import torch

__all__ = ['REQUIRED_PARTS', 'state_problem']

#: What ``Trainer.state_dict`` writes; all of it is needed to continue bit-identically.
REQUIRED_PARTS = ('epoch', 'best_val', 'history', 'config', 'modules', 'optimizers',
                  'schedulers', 'torch_rng')


def state_problem(state: Dict[str, Any], total_epochs: int) -> str:
    """Why ``state`` cannot be resumed under a schedule of ``total_epochs``, or ''."""
    missing = [part for part in REQUIRED_PARTS if part not in state]
    if missing:
        return f'the state lacks {", ".join(missing)} (written by another program or cut short)'
    epoch = state['epoch']
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return f'epoch {epoch!r} is not a non-negative integer'
    if epoch > total_epochs:
        return f'epoch {epoch} is past the schedule of {total_epochs} epochs'
    if not isinstance(state['history'], list) or len(state['history']) > epoch:
        return f'history does not match epoch {epoch}'
    best = state['best_val']
    if not isinstance(best, (int, float)) or math.isnan(best):
        return f'best_val {best!r} is not a number'
    if not isinstance(state['modules'], dict):
        return 'modules is not a dictionary of networks'
    for name, weights in state['modules'].items():
        if not isinstance(weights, dict):
            return f'module {name!r} holds no weights'
        for key, tensor in weights.items():
            if (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
                    and not bool(torch.isfinite(tensor).all())):
                return f'module {name!r} weight {key!r} has non-finite values'
    return ''
