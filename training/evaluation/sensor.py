"""Real-sensor suite: SR against bicubic and nearest on depth degraded like cameras.

``python -m training.evaluation sensor --weights W.pt [W2.pt ...] --out DIR [--quick]``

The paper's protocol (OpenCV-bicubic LR of 8-bit disparity) says little about a real camera.
This suite scores a model the way the node uses it (:meth:`DepthSuperResolver.run` on metric
frames with holes, the checkpoint's own scaling) against nearest-neighbour and bicubic
upsampling of the same LR frame, over the same pixels (GT valid and LR-valid, i.e. the output
mask every method shares).

Frames and splits: :mod:`training.evaluation.frames` (the real frames are **decimated x s by
keeping every s-th pixel, holes kept**); families: :mod:`training.evaluation.families`;
accounting: :mod:`training.evaluation.scores`. Reported per family and data set: MAD and RMSE
(mm) of SR, bicubic and nearest, in the edge band and in flat areas, the invalid-pixel
accounting, the error next to holes relative to the same pixels without holes, and
frame-to-frame stability (mean |e_t - e_{t-1}|) on the PrimeSense sequence and on the demo's
procedural sequence. Outputs: ``sensor.json``, ``sensor.md`` and ``sensor_maps.png``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from dsr_ros.depth_io import valid_mask
from dsr_ros.inference import DepthSuperResolver
from training.evaluation.families import (FAMILIES, HOLE_FAMILIES, PHASE_KNOWN_FAMILIES,
                                          decimate_real, degrade_frame, family_rng,
                                          geometry_of_family, runnable_families)
from training.evaluation.frames import Frame, centre_crop, load_frames
from training.evaluation.methods import METHODS, run_methods
from training.evaluation.report import markdown_report
from training.evaluation.scores import near_hole_ratio, score, summarize, temporal_flicker

__all__ = ['SuiteConfig', 'demo_stability', 'evaluate_suite', 'run_suite']

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteConfig:
    """What to run: ``quick`` crops every frame to ``quick_size`` and keeps one per data set;
    otherwise frames larger than a camera (``max_height`` x ``max_width``, 480 x 640) are
    centre-cropped to it, so Middlebury's 1.4-megapixel scenes cost what a camera frame costs."""

    scale: int = 4
    families: Tuple[str, ...] = FAMILIES
    quick: bool = False
    quick_size: int = 96
    max_height: int = 480
    max_width: int = 640
    seed: int = 0


def _jobs(frames: Sequence[Frame], families: Sequence[str], phase_known: bool
          ) -> List[Tuple[Frame, str]]:
    """Every frame x family to run: the real frames decimated (told the phase when the model
    can be), Ferstl's with its own LR inputs, every other frame in every family."""
    jobs: List[Tuple[Frame, str]] = []
    for frame in frames:
        if frame.dataset == 'real':
            jobs.append((frame, 'real'))
            if phase_known:
                jobs.append((frame, 'real_phase_known'))
        elif frame.dataset == 'ferstl':
            jobs.append((frame, 'ferstl'))
        else:
            jobs.extend((frame, family) for family in families
                        if family != 'real_phase_known')
    return jobs


def _ferstl_pair(frame: Frame, config: SuiteConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Ferstl's given LR input, cropped, and the GT window that lies exactly under it."""
    scale = config.scale
    lr_full = frame.lr_given[scale]
    lr_rows, lr_cols = ((config.quick_size // scale,) * 2 if config.quick
                        else (config.max_height // scale, config.max_width // scale))
    top = max(0, (lr_full.shape[0] - lr_rows) // 2)
    left = max(0, (lr_full.shape[1] - lr_cols) // 2)
    lr = lr_full[top:top + lr_rows, left:left + lr_cols]
    gt = frame.depth[top * scale:(top + lr.shape[0]) * scale,
                     left * scale:(left + lr.shape[1]) * scale]
    return lr, gt


def evaluate_suite(resolver: DepthSuperResolver, frames: Sequence[Frame],
                   config: SuiteConfig = SuiteConfig(), progress: bool = True,
                   keep_maps: bool = False) -> Dict[str, Any]:
    """Score one model on every frame x family; returns per-image rows and summaries."""
    scale = config.scale
    if resolver.scale != scale:
        raise ValueError(f'the model is x{resolver.scale}, the suite runs x{scale}')
    phase_known = resolver.point_alignment is not None
    jobs = _jobs(frames, runnable_families(config.families, phase_known), phase_known)
    rows: List[Dict[str, Any]] = []
    maps: Dict[str, Dict[str, np.ndarray]] = {}
    sequences: Dict[str, Dict[str, list]] = {}
    start = time.perf_counter()
    for frame, family in tqdm(jobs, desc='sensor suite', unit='image', disable=not progress,
                              leave=False):
        gt = (centre_crop(frame.depth, config.quick_size) if config.quick
              else centre_crop(frame.depth, config.max_height, config.max_width))
        rng = family_rng(config.seed, family, frame.name)
        phase = None
        if family in ('real', 'real_phase_known'):
            lr = decimate_real(gt, scale)
            phase = (0, 0) if family == 'real_phase_known' else None
        elif family in PHASE_KNOWN_FAMILIES:
            phase = tuple(int(v) for v in rng.integers(0, scale, 2))
            lr, clean = degrade_frame(gt, family, scale, rng, with_clean=True, phase=phase)
        elif family == 'ferstl':
            lr, gt = _ferstl_pair(frame, config)
        else:
            lr, clean = degrade_frame(gt, family, scale, rng, with_clean=True)
        geometry = geometry_of_family(family, phase)
        outputs = run_methods(resolver, lr, scale, geometry)
        row = {'dataset': frame.dataset, 'frame': frame.name, 'family': family,
               **score(outputs, gt, lr, scale)}
        if family in HOLE_FAMILIES:
            row['near_holes'] = near_hole_ratio(resolver, gt, lr, clean, scale,
                                                with_holes=outputs['sr'], geometry=geometry)
        rows.append(row)
        if keep_maps and family not in maps:
            maps[family] = dict(outputs, gt=gt[:lr.shape[0] * scale, :lr.shape[1] * scale],
                                lr=lr)
        if frame.sequence and family == 'real':
            seq = sequences.setdefault(frame.sequence, {m: [] for m in METHODS + ('mask',)})
            gt_c = gt[:lr.shape[0] * scale, :lr.shape[1] * scale]
            common = valid_mask(gt_c) & valid_mask(outputs['sr'])
            for method in METHODS:
                seq[method].append(np.nan_to_num(outputs[method] - gt_c))
                common &= valid_mask(outputs[method])
            seq['mask'].append(common)
    result = {'scale': scale, 'quick': config.quick, 'seed': config.seed, 'rows': rows,
              'seconds': time.perf_counter() - start,
              'stability': {name: {m: temporal_flicker(seq[m], seq['mask']) for m in METHODS}
                            for name, seq in sequences.items()}}
    result['stability']['demo_scene'] = demo_stability(resolver, scale, config.quick)
    result['summary'] = summarize(rows)
    if keep_maps:
        result['maps'] = maps
    return result


def demo_stability(resolver: DepthSuperResolver, scale: int, quick: bool) -> Dict[str, float]:
    """Temporal flicker on the demo's procedural sequence (noisy LR, exact HR truth)."""
    from dsr_ros.scene import DepthScene, SceneConfig
    scene = DepthScene(SceneConfig(lr_width=40 if quick else 160, lr_height=30 if quick else 120,
                                   scale=scale, encoding='32FC1'))
    errors: Dict[str, list] = {m: [] for m in METHODS + ('mask',)}
    for index in range(3 if quick else 6):
        frame = scene.frame(index)
        outputs = run_methods(resolver, frame.lr, scale)
        common = np.ones(frame.hr_metres.shape, bool)
        for method in METHODS:
            errors[method].append(np.nan_to_num(outputs[method] - frame.hr_metres))
            common &= valid_mask(outputs[method])
        errors['mask'].append(common)
    return {m: temporal_flicker(errors[m], errors['mask']) for m in METHODS}


def run_suite(weights: Sequence[Path], out: Path, data_root: Path,
              labels: Optional[Sequence[str]] = None, quick: bool = False,
              device: str = 'cpu', progress: bool = True, split: str = 'test',
              scaling_tile: int = -1, ensemble_passes: int = 1,
              save_maps: bool = True, seed: int = 0,
              families: Sequence[str] = FAMILIES) -> Dict[str, Any]:
    """The CLI's work: every checkpoint at its own scale; writes JSON, Markdown and a figure.

    ``seed``: what draws each frame's phase, noise and holes (0 gives the reported numbers;
    another seed asks whether they hold on other draws of the same families).

    ``scaling_tile``: the resolver's (-1: each checkpoint's ``fit_tile``; 0: whole frames).
    ``ensemble_passes``: the resolver's self-ensemble (:mod:`dsr_ros.self_ensemble`).
    ``save_maps``: write the error-map figure (the first checkpoint's maps).
    ``families``: the synthetic families to run (the real frames always run).
    """
    frames, missing = load_frames(data_root, quick=quick, split=split)
    if not frames:
        raise ValueError(f'no sensor-suite data under {data_root}: {missing}')
    for name, reason in missing.items():
        LOGGER.warning('sensor suite: %s skipped: %s', name, reason)
    results: Dict[str, Any] = {}
    figure_maps = None
    for index, path in enumerate(weights):
        label = labels[index] if labels else Path(path).stem
        resolver = DepthSuperResolver.from_checkpoint(path, device=device,
                                                      scaling_tile=scaling_tile,
                                                      ensemble_passes=ensemble_passes)
        config = SuiteConfig(scale=resolver.scale, quick=quick, seed=seed,
                             families=tuple(families))
        result = evaluate_suite(resolver, frames, config, progress,
                                keep_maps=save_maps and index == 0)
        figure_maps = result.pop('maps', figure_maps)
        result['weights'] = os.fspath(path)
        result['fit_tile'] = resolver.fit_tile()
        result['ensemble_passes'] = resolver.ensemble_passes
        results[label] = result
    out.mkdir(parents=True, exist_ok=True)
    (out / 'sensor.json').write_text(json.dumps(
        {'results': results, 'split': split, 'seed': seed, 'missing': missing,
         'data_root': os.fspath(data_root)}, indent=1,
        default=float))
    (out / 'sensor.md').write_text(markdown_report(results))
    if figure_maps:
        from training.evaluation.figures import save_figure
        save_figure(figure_maps, out / 'sensor_maps.png')
    return results
