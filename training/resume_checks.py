"""Is a saved training state fit to resume from? One reason, or '' (no torch work beyond reads).

``--resume`` used to trust ``last.pt``: a state without its history was a KeyError traceback,
one at epoch 999 "resumed" past the schedule and re-exported, and one with NaN weights trained
on (and exported) a NaN model. Each is refused with one line naming what is wrong.

A state also carries :func:`state_digest` (``state_sha256``) of everything in it: torch does not
check its zip entries' CRCs, so a flipped byte in a weight used to resume silently with that
weight changed. :func:`read_state` turns an empty, foreign, corrupted or edited file into one
line, and :func:`config_differences` names the keys a changed config differs in.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

__all__ = ['DIGEST_KEY', 'REQUIRED_PARTS', 'config_differences', 'digest_problem', 'read_state',
           'resume_command', 'state_digest', 'state_problem']

#: The key under which a state stores :func:`state_digest` of the rest of it.
DIGEST_KEY = 'state_sha256'

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


def state_digest(state: Dict[str, Any]) -> str:
    """SHA-256 of a state's every tensor (name, dtype, shape, bytes) and plain value, in key
    order, leaving out :data:`DIGEST_KEY` itself."""
    digest = hashlib.sha256()

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                if where or key != DIGEST_KEY:
                    walk(value[key], f'{where}/{key}')
        elif isinstance(value, (list, tuple)):
            digest.update(f'{where}|{type(value).__name__}{len(value)}|'.encode())
            for index, item in enumerate(value):
                walk(item, f'{where}/{index}')
        elif isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f'{where}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f'{where}|{value!r}|'.encode())
    walk(state, '')
    return digest.hexdigest()


def read_state(path: Path, state_format: str) -> Dict[str, Any]:
    """A training state from ``path``, or ValueError with one line saying why it is unusable.

    Empty files, files torch cannot read and other torch files (a node checkpoint, a foreign
    dictionary) are refused; :func:`digest_problem` checks the content against its digest.
    """
    where = f'cannot resume from {os.fspath(path)!r}'
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'{where}: no such file')
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f'{where}: the file is empty (0 bytes; a copy or disk that failed)')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), '')
        raise ValueError(f'{where}: not a readable torch file of {size} bytes '
                         f'({type(error).__name__}: {first[:160]})') from None
    if not isinstance(state, dict) or state.get('format') != state_format:
        found = state.get('format') if isinstance(state, dict) else type(state).__name__
        raise ValueError(f'{where}: not a training state (format {found!r}, expected '
                         f'{state_format!r})')
    return state


def digest_problem(state: Dict[str, Any]) -> str:
    """Why a state's content does not match its stored digest, or '' (also for states written
    before the digest existed)."""
    stored = state.get(DIGEST_KEY)
    if stored is not None and stored != state_digest(state):
        return ('its content does not match its stored SHA-256 (the file is corrupted or was '
                'edited); resume from a good copy or start again')
    return ''


def config_differences(old: Any, new: Any, where: str = '') -> List[str]:
    """Dotted keys whose values differ between two configs (``data.train``, ``optim.lr``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys: List[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f'{where}.{key}' if where else str(key)
            if key not in old or key not in new:
                keys.append(path)
            else:
                keys.extend(config_differences(old[key], new[key], path))
        return keys
    return [] if old == new else [where or '(whole config)']


def resume_command(module: str, argv: Optional[Sequence[str]] = None) -> str:
    """The command line that continues an interrupted ``python -m module`` run: the same
    arguments (``sys.argv`` when ``argv`` is None) with ``--resume``, quoted for a shell."""
    args = list(sys.argv[1:] if argv is None else argv)
    if '--resume' not in args:
        args.append('--resume')
    return shlex.join(['python', '-m', module, *args])
