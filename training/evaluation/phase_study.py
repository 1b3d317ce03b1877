"""How the sampling phase of point-sampled input decides who wins: SR against nearest per phase.

``python -m training.evaluation phase-study dsr_ros/weights/dsrnet_sensor_lite_x4.pt
[more.pt ...] [--oracles-at 2 4 8] [--data-root ../shared/data] [--out results/phase_study]``

A net cannot know where, within s pixels, an edge between two LR samples lies (the phase is
not in the LR image, :mod:`training.evaluation.phases`), and must place it where its training
phases put it on average. Block nearest (what the real-sensor suite calls nearest) puts it
where a *uniformly random* phase puts it on average; phase 0 (ROS image_proc decimation: every
s-th pixel from the first) puts it 1.5 px earlier. This study measures, on the suite's
Middlebury / NYUv2 / Lu frames (480 x 640 centre crops, no noise, no holes), for the phases of
:func:`~training.evaluation.phases.phases_for` the model's scale (every phase on the diagonal
and four off it; all four at x2): SR / nearest and SR / bicubic MAD, an oracle that knows the
phase (nearest with each LR sample at its true HR position) / nearest, which shows how much of
nearest's error is only the unknown phase, and a *phase-blind* oracle / nearest: one that knows
the whole HR scene but not the phase. Since the LR frame of phase p is the phase-0 frame of the
scene shifted by p, the truth is one of s x s shifted copies, equally likely; the per-pixel
median of those copies is the least mean absolute error any phase-blind method can reach (with
a prior over scenes that does not favour a position in the pixel grid), so that ratio is a
floor for SR / nearest with the phase unknown; the per-pixel *mean* of the copies is the least
mean squared error, a floor for SR / bicubic RMSE. The two floors are reached by different
outputs: a target on MAD and one on RMSE can each be within reach of a phase-blind method and
still not both at once. A model that records its point alignment is also run *told* the phase,
and the same median is taken over the moved copies of that told output (*told net, then
phase-blind*): what the best phase-blind choice reaches when the scene is known only as well as
the net knows it when told the phase, a measure of what a phase-blind net of this kind can hope
for. Writes ``phase_study.json`` and ``phase_study.md`` under ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from dsr_ros.baselines import (filled_frame, nearest_at_phase, upsample_bicubic_masked,
                               upsample_nearest)
from dsr_ros.depth_io import valid_mask
from dsr_ros.inference import DepthSuperResolver
from training.data import sensor_degradation as sd
from training.evaluation.frames import centre_crop, load_frames
from training.evaluation.methods import run_told
from training.evaluation.phases import phase_blind_oracle, phase_blind_oracles, phases_for
from training.evaluation.scores import score

__all__ = ['DATASETS', 'RATIOS', 'markdown', 'study']

DATASETS = ('middlebury', 'nyuv2', 'lu')

#: The table's rows: key -> (method, the method it is divided by, error, label). MAD is the
#: `point` target's measure; RMSE against bicubic is the issue's other one. The oracle's median
#: is L1-best, its mean L2-best: each row says how far its target is for any phase-blind method.
RATIOS: Dict[str, Tuple[str, str, str, str]] = {
    'sr_over_nearest': ('sr', 'nearest', 'mad', 'SR / nearest'),
    'sr_over_bicubic': ('sr', 'bicubic', 'mad', 'SR / bicubic'),
    'oracle_over_nearest': ('oracle', 'nearest', 'mad', 'phase-aware nearest / nearest'),
    'blind_oracle_over_nearest': ('blind', 'nearest', 'mad', 'phase-blind oracle / nearest'),
    'told_over_nearest': ('told', 'nearest', 'mad', 'SR told the phase / nearest'),
    'told_blind_over_nearest': ('told_blind', 'nearest', 'mad',
                                'told SR, then phase-blind / nearest'),
    'sr_rmse_over_bicubic': ('sr', 'bicubic', 'rmse', 'RMSE: SR / bicubic'),
    'blind_oracle_rmse_over_bicubic': ('blind', 'bicubic', 'rmse',
                                       'RMSE: phase-blind oracle / bicubic'),
    'blind_mean_rmse_over_bicubic': ('blind_mean', 'bicubic', 'rmse',
                                     'RMSE: phase-blind L2 oracle (mean) / bicubic'),
    'blind_mean_over_nearest': ('blind_mean', 'nearest', 'mad',
                                'phase-blind L2 oracle (mean) / nearest'),
    'told_blind_rmse_over_bicubic': ('told_blind', 'bicubic', 'rmse',
                                     'RMSE: told SR, then phase-blind / bicubic')}


def study(weights: Optional[Path], data_root: Path,
          phases: Optional[Sequence[Tuple[int, int]]] = None,
          scale: Optional[int] = None) -> Dict[str, Any]:
    """Per data set and phase: mean over frames of each ratio of :data:`RATIOS` (MAD, and RMSE
    against bicubic; see the module docstring).

    ``weights=None`` measures the oracles and baselines alone at ``scale`` (no net): the floors
    of a target at any scale, before anyone trains for it."""
    resolver = None
    if weights is not None:
        resolver = DepthSuperResolver.from_checkpoint(weights, device='cpu')
        scale = resolver.scale
    elif scale is None or scale < 2:
        raise ValueError(f'an oracle-only study needs a scale of 2 or more, got {scale!r}')
    # A told phase needs the net's alignment.
    told_known = resolver is not None and resolver.point_alignment is not None
    frames, missing = load_frames(data_root, DATASETS)
    # Each frame's crop and hole-filled copy once; only the sampling phase changes below.
    prepared = []
    for frame in frames:
        gt = centre_crop(frame.depth, 480, 640)
        prepared.append((frame.dataset, gt, filled_frame(gt, valid_mask(gt))))
    table: Dict[str, Dict[str, Dict[str, float]]] = {}
    phases = [phase for phase in (phases or phases_for(scale)) if max(phase) < scale]
    name = weights.name if weights is not None else f'oracles x{scale}'
    bar = tqdm(total=len(phases) * len(prepared), desc=f'phase study {name}', unit='image',
               leave=False)
    for phase in phases:
        ratios: Dict[str, List[Dict[str, float]]] = {}
        for dataset, gt, filled in prepared:
            bar.update()
            lr = sd.downsample(filled, scale, 'point', phase=phase).astype(np.float32)
            nearest = upsample_nearest(lr, scale)
            crop = (slice(0, nearest.shape[0]), slice(0, nearest.shape[1]))
            blind = phase_blind_oracles(filled, scale, phase, ('median', 'mean'))
            outputs = {'bicubic': upsample_bicubic_masked(lr, scale), 'nearest': nearest,
                       'oracle': nearest_at_phase(lr, scale, phase, nearest.shape),
                       'blind': blind['median'][crop], 'blind_mean': blind['mean'][crop]}
            if resolver is not None:
                outputs['sr'] = resolver.run(lr)
            if told_known:
                told = run_told(resolver, lr, phase)
                outputs['told'] = told
                outputs['told_blind'] = phase_blind_oracle(told, scale, phase)[crop]
            errors = score(outputs, gt, lr, scale)
            ratios.setdefault(dataset, []).append({
                key: errors[method][error] / errors[base][error]
                for key, (method, base, error, _) in RATIOS.items() if method in outputs})
        for dataset, values in ratios.items():
            entry = {key: float(np.mean([v[key] for v in values])) for key in values[0]}
            table.setdefault(dataset, {})[f'{phase[0]},{phase[1]}'] = dict(
                entry, frames=len(values))
    bar.close()
    return {'weights': str(weights) if weights is not None else None, 'scale': scale,
            'table': table, 'missing': missing}


def markdown(results: Sequence[Dict[str, Any]]) -> str:
    """One table per model: rows are data sets x ratio, columns phases, plus the mean."""
    lines: List[str] = []
    for result in results:
        phases = list(next(iter(result['table'].values())))  # in the order measured
        title = (Path(result['weights']).name if result['weights'] else 'oracles and baselines')
        lines += [f"### {title} (x{result['scale']})", '',
                  '| data set | ratio | ' + ' | '.join(f'phase {p}' for p in phases)
                  + ' | mean |', '|---|---|' + '---|' * (len(phases) + 1)]
        for dataset, per in result['table'].items():
            for key, (*_, label) in RATIOS.items():
                if key not in per[phases[0]]:
                    continue
                values = [per[p][key] for p in phases]
                lines.append(f'| {dataset} | {label} | '
                             + ' | '.join(f'{v:.3f}' for v in values)
                             + f' | {np.mean(values):.3f} |')
        lines.append('')
    return '\n'.join(lines)
