"""Average the weights of DSRNet checkpoints fine-tuned from one parent (a "model soup").

Why: two fine-tunings of one parent with different losses (L1 only: sharp, better MAD;
L1 + L2: edges placed where the error is least in the mean, better RMSE) sit close enough
in weight space that their average is a net in between (Wortsman et al., "Model soups", ICML
2022), at no training cost and no run-time cost. Only checkpoints of the same architecture,
scale and depth scaling are averaged; anything else is refused with the path and the reason.
The output's provenance is the first input's, plus an ``averaged_from`` entry naming every
input (path, SHA-256 of its weights, its weight in the average) and why. A measured point
alignment is not carried over (it belongs to the inputs): rerun
``python -m training.checkpoints calibrate-phase``.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Sequence

from dsr_ros.checkpoint import load_checkpoint, save_checkpoint

__all__ = ['average_checkpoints']


def average_checkpoints(paths: Sequence[Path], weights: Sequence[float], out: Path,
                        why: str) -> Path:
    """Write the weighted average of ``paths``' DSRNets to ``out``; return ``out``."""
    if len(paths) < 2 or len(paths) != len(weights):
        raise ValueError(f'need two or more checkpoints and one weight each, got {len(paths)} '
                         f'checkpoints and {len(weights)} weights')
    if any(w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f'weights must be >= 0 and sum to 1, got {list(weights)}')
    loaded = [load_checkpoint(path) for path in paths]
    model, first = loaded[0]
    for path, (other, metadata) in zip(paths[1:], loaded[1:]):
        if other.arch_kwargs() != model.arch_kwargs():
            raise ValueError(f'{path}: architecture {other.arch_kwargs()} differs from '
                             f'{paths[0]}\'s {model.arch_kwargs()}')
        if metadata.get('normalization') != first.get('normalization'):
            raise ValueError(f'{path}: depth scaling {metadata.get("normalization")} differs '
                             f'from {paths[0]}\'s {first.get("normalization")}')
    states = [net.state_dict() for net, _ in loaded]
    averaged = {}
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            averaged[key] = sum(w * state[key].double() for w, state in zip(weights, states)
                                ).to(tensor.dtype)
        else:
            averaged[key] = tensor
    model.load_state_dict(averaged)
    provenance = dict(first.get('provenance') or {})
    provenance['averaged_from'] = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'inputs': [{'path': str(path), 'weights_sha256': metadata.get('weights_sha256'),
                    'weight': float(w)}
                   for path, (_, metadata), w in zip(paths, loaded, weights)],
        'why': why}
    return save_checkpoint(out, model, normalization=first.get('normalization'),
                           provenance=provenance, config=first.get('config'))
