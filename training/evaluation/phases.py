"""Sampling phases of point-sampled input: which phases are measured, and the phase-blind floor.

A point-sampled LR pixel (i, j) is the HR pixel (s i + r, s j + c) for a phase (r, c) that the
LR image does not reveal: phase (r, c) of a scene is phase (0, 0) of the same scene shifted by
(r, c). Used by the phase study (:mod:`training.evaluation.phase_study`) and the point-alignment
calibration of checkpoints.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from dsr_ros.sampling_phase import shift_output

__all__ = ['REDUCERS', 'phase_blind_oracle', 'phase_blind_oracles', 'phases_for']

Phase = Tuple[int, int]


def phases_for(scale: int, grid: bool = False) -> Tuple[Phase, ...]:
    """The phases (row, col) measured at ``scale``.

    ``grid=False`` (the phase study): the diagonal, then four off it (at x2 that is all four
    phases; at x4 the eight of the eighth session's study). ``grid=True`` (the point-alignment
    calibration, which needs every position the net may place a sample at): every phase at x2
    and x4, every other one at x8 (16 phases).
    """
    if grid:
        step = max(1, scale // 4)
        return tuple((r, c) for r in range(0, scale, step) for c in range(0, scale, step))
    half = scale // 2
    off = ((0, half), (half, 0), (1, scale - 1), (scale - 1, 1))
    phases = [(k, k) for k in range(scale)] + [p for p in off if p[0] != p[1]]
    return tuple(dict.fromkeys(phases))


#: The per-pixel statistics of the candidate truths: median (L1-best), mean (L2-best).
REDUCERS = {'median': np.median, 'mean': np.mean}


def phase_blind_oracle(hr: np.ndarray, scale: int, phase: Phase,
                       statistic: str = 'median') -> np.ndarray:
    """The best estimate of ``hr`` from its phase-``phase`` point samples *and* ``hr`` itself,
    the phase unknown: the per-pixel ``median`` (least mean absolute error) or ``mean`` (least
    mean squared error) of the ``scale**2`` candidate truths.

    ``hr`` may also be an *estimate* of the scene placed at phase ``phase`` (a net's output
    when told the phase): the median is then the best phase-blind choice given that estimate.

    Sampled at phase ``p``, the scene looks exactly like the scene moved by ``q - p`` sampled
    at phase ``q``; so, knowing the scene up to that move, candidate ``q`` is ``hr`` moved by
    ``q - p`` (edge pixels repeated), and over the equally likely ``q`` the median minimises
    the expected absolute error at every pixel, the mean the expected squared error.
    """
    return phase_blind_oracles(hr, scale, phase, (statistic,))[statistic]


def phase_blind_oracles(hr: np.ndarray, scale: int, phase: Phase,
                        statistics: Sequence[str]) -> Dict[str, np.ndarray]:
    """:func:`phase_blind_oracle` for several ``statistics`` at once: the ``scale**2`` moved
    copies are built once (64 HR frames at x8) and each statistic reduces the same stack."""
    unknown = [name for name in statistics if name not in REDUCERS]
    if unknown:
        raise ValueError(f'statistic must be one of {sorted(REDUCERS)}, got {unknown[0]!r}')
    candidates = np.stack([shift_output(hr, q0 - phase[0], q1 - phase[1])
                           for q0 in range(scale) for q1 in range(scale)])
    return {name: REDUCERS[name](candidates, axis=0).astype(np.float32) for name in statistics}
