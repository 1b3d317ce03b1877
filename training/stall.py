"""Training that cannot silently stall: flag epochs at the residual base, refuse a stuck stage 1.

A global-residual DSRNet predicts a correction to the bicubic upsampling of its input. At lr
1e-3 that branch can die in the first steps: the net then outputs exactly the base, and its
held-out error equals the base's for many epochs (measured: 7 / 3 / 15 epochs for three seeds
of the x8 ablation, one of which never recovered at 1e-3). Nothing in a loss curve says so, and
a stuck seed reads as "seed spread". Hence:

- every epoch's history row carries ``val_e_base`` (the residual base's held-out error on the
  same patches and pixels), ``val_over_base`` and ``stalled`` (1 when ``|e_dsr - e_base| <=
  checks.stall_rel_tol x e_base``, default 0.5 %: measured, a dead branch sat at 1.0003 and
  then 1.0012 x the base while its bias drifted), and a stalled epoch is logged as a warning;
- :func:`stage1_problem` is what an ablation driver asks before forking arms from a stage 1:
  the last stage-1 epoch must beat the base by a stated margin (default 5 %).

The cure is ``optim.init: residual`` (:mod:`training.weight_init`: features that carry the input
from the first step) with residual side heads; this module only makes a stall visible and
refuses to build on one.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

__all__ = ['DEFAULT_MARGIN', 'flag_epoch', 'is_stalled', 'read_history', 'stage1_problem']

LOGGER = logging.getLogger('training.train')
#: How much better than the residual base a stage 1 must end (ablation drivers' default).
DEFAULT_MARGIN = 0.05


def is_stalled(error: float, base: float, rel_tol: float) -> bool:
    """Whether a held-out ``error`` equals the base's ``base`` within ``rel_tol`` (relative)."""
    if not (math.isfinite(error) and math.isfinite(base)):
        return False
    return abs(error - base) <= rel_tol * abs(base)


def flag_epoch(val: Dict[str, float], config: Dict[str, Any], epoch: int) -> Dict[str, Any]:
    """History fields of an epoch's stall check (and a warning when it stalled)."""
    base = float(val.get('e_base', math.nan))
    error = float(val['e_dsr'])
    tolerance = float(config['checks']['stall_rel_tol'])
    stalled = is_stalled(error, base, tolerance)
    if stalled:
        LOGGER.warning('epoch %d: DSRNet is stuck at its residual base: held-out error %.6g '
                       'equals the base\'s %.6g within %.2g (relative); its residual branch '
                       'learns nothing (optim.init: residual cures it, docs/cross_task.md)',
                       epoch, error, base, tolerance)
    return {'val_e_base': base, 'val_over_base': error / base if base > 0 else math.nan,
            'stalled': int(stalled)}


def read_history(path: Path) -> List[Dict[str, str]]:
    """The rows of a run's ``history.csv`` (empty when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline='') as handle:
        return list(csv.DictReader(handle))


def stage1_problem(rows: Sequence[Dict[str, Any]], margin: float = DEFAULT_MARGIN) -> str:
    """Why a stage 1 may not be built on ('' when it may).

    It must have finished stage-1 epochs with the base's held-out error logged, and its last
    stage-1 epoch must satisfy ``val_e_dsr <= (1 - margin) x val_e_base``.
    """
    stage1 = [row for row in rows if str(row.get('stage')) == '1']
    if not stage1:
        return 'no finished stage-1 epoch in its history'
    last = stage1[-1]
    if last.get('val_e_base') in (None, '', 'nan'):
        return (f'epoch {last["epoch"]} has no val_e_base (history written before the stall '
                'check): train stage 1 again')
    error, base = float(last['val_e_dsr']), float(last['val_e_base'])
    stalled = sum(int(float(row.get('stalled') or 0)) for row in stage1)
    if error <= (1.0 - margin) * base:
        return ''
    return (f'stage 1 did not beat the bicubic base by {margin:.0%}: held-out error '
            f'{error:.6g} at epoch {last["epoch"]} against the base\'s {base:.6g} '
            f'({error / base:.3f} x; {stalled} stalled stage-1 epoch(s))')
