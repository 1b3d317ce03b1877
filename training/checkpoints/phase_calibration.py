"""Measure a checkpoint's point and native alignment on validation frames, and record them.

A net trained on point samples at mixed phases places its output as if every LR sample came
from one fixed HR offset, its *point alignment* (:mod:`dsr_ros.sampling_phase`). Knowing it
turns a known sampling phase (the node's ``sampling_phase``) into an exact whole-pixel shift of
the output. :func:`calibrate` point-samples the sensor suite's **validation** frames (the
held-out Lu views and validation rooms, never a test frame) at every phase (x8: every other
phase), super-resolves each once, and for every candidate alignment ``a`` scores the output
moved by ``phase - a`` (MAD / nearest's MAD, mean over phases and frames); the best ``a`` is
the alignment. It reports, per phase, SR with the phase unknown, SR told the phase, and
nearest. :func:`calibrate_native` measures the *native alignment*: where the net places the
sample of a native camera (area-averaged input, the footprint centred on the pixel) -- the
output of each frame is moved by candidate sub-pixel amounts (quarter pixels, up to one pixel
each way) and the best move says where the net put the sample (``(s - 1) / 2`` when it is
centred, as it should be). :func:`record_alignment` stores both in the checkpoint
(``sampling.point_alignment``, ``sampling.native_alignment``; weights and their SHA-256
unchanged, a provenance revision says what changed and why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from dsr_ros.baselines import filled_frame, upsample_bicubic_masked, upsample_nearest
from dsr_ros.checkpoint import revised_provenance, update_metadata
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_metrics import masked_errors
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.sampling_phase import move_output, shift_output
from training.data import sensor_degradation as sd
from training.evaluation.families import degrade_frame
from training.evaluation.frames import centre_crop, load_frames
from training.evaluation.phases import phases_for

__all__ = ['CROP', 'NATIVE_MOVES', 'VALIDATION_SETS', 'calibrate', 'calibrate_native',
           'markdown', 'record_alignment', 'validation_frames']

VALIDATION_SETS = ('lu_val', 'rooms_val')
#: HR crop (rows, cols) per frame: enough edges, seconds per phase.
CROP = (240, 320)
#: Candidate native moves (HR pixels per axis): quarter pixels up to one pixel each way.
NATIVE_MOVES = tuple(step / 4.0 for step in range(-4, 5))


def _mad(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """MAD over ``mask`` in the unit of the frames, in their precision (the recorded ratios
    were measured so)."""
    return masked_errors(pred, gt, mask, factor=1.0)['mad']


def validation_frames(data_root: Path) -> List[Any]:
    """The suite's validation frames (held-out Lu views, validation rooms), read once for every
    checkpoint and both measurements; a clear error when there are none."""
    frames, missing = load_frames(data_root, VALIDATION_SETS, split='val')
    if not frames:
        raise ValueError(f'no validation frames under {data_root}: {missing}')
    return frames


def calibrate(weights: Path, frames: Sequence[Any]) -> Dict[str, Any]:
    """Per candidate alignment, the mean SR / nearest MAD with the output moved to the phase."""
    # No sampling_phase: the output stays where the net places it, which is what is measured.
    resolver = DepthSuperResolver.from_checkpoint(weights, device='cpu')
    scale = resolver.scale
    phases = phases_for(scale, grid=True)  # every phase (x8: every other one)
    candidates = [(r, c) for r in range(scale) for c in range(scale)]
    # ratio[p][a]: list over frames of MAD(SR moved by p - a) / MAD(nearest)
    ratio: Dict[Tuple[int, int], Dict[Tuple[int, int], List[float]]] = {}
    for frame in frames:
        gt = centre_crop(frame.depth, *CROP)
        filled = filled_frame(gt, valid_mask(gt))
        for phase in phases:
            lr = sd.downsample(filled, scale, 'point', phase=phase).astype(np.float32)
            hr = gt[:lr.shape[0] * scale, :lr.shape[1] * scale]
            sr = resolver.run(lr)
            mask = valid_mask(hr)
            nearest = max(_mad(upsample_nearest(lr, scale), hr, mask), 1e-9)
            per = ratio.setdefault(phase, {})
            for align in candidates:
                moved = shift_output(sr, phase[0] - align[0], phase[1] - align[1])
                per.setdefault(align, []).append(_mad(moved, hr, mask) / nearest)
            per.setdefault('unknown', []).append(_mad(sr, hr, mask) / nearest)
    score = {align: float(np.mean([np.mean(ratio[p][align]) for p in phases]))
             for align in candidates}
    best = min(score, key=score.get)
    per_phase = [{'phase': list(p), 'sr_unknown_over_nearest': float(np.mean(ratio[p]['unknown'])),
                  'sr_told_over_nearest': float(np.mean(ratio[p][best]))} for p in phases]
    return {'weights': str(weights), 'scale': scale, 'point_alignment': list(best),
            'frames': [f'{f.dataset}/{f.name}' for f in frames], 'crop': list(CROP),
            'mean_sr_told_over_nearest': score[best],
            'mean_sr_unknown_over_nearest': float(np.mean(
                [r['sr_unknown_over_nearest'] for r in per_phase])),
            'alignment_scores': {f'{a[0]},{a[1]}': s for a, s in score.items()},
            'per_phase': per_phase}


def calibrate_native(weights: Path, frames: Sequence[Any]) -> Dict[str, Any]:
    """Where the net places a native (area-averaged, centred-footprint) sample: the move of
    its output that minimises SR / bicubic MAD on the validation frames, and the alignment it
    implies (``(s - 1) / 2 - move``)."""
    resolver = DepthSuperResolver.from_checkpoint(weights, device='cpu', native_alignment=None)
    scale = resolver.scale
    moves = [(r, c) for r in NATIVE_MOVES for c in NATIVE_MOVES]
    ratios: Dict[Tuple[float, float], List[float]] = {move: [] for move in moves}
    for index, frame in enumerate(frames):
        gt = centre_crop(frame.depth, *CROP)
        lr = degrade_frame(gt, 'area', scale, np.random.default_rng(index))
        hr = gt[:lr.shape[0] * scale, :lr.shape[1] * scale]
        sr = np.nan_to_num(resolver.run(lr))
        bicubic = upsample_bicubic_masked(lr, scale)
        mask = valid_mask(hr) & valid_mask(bicubic)
        base = max(_mad(bicubic, hr, mask), 1e-9)
        for move in moves:
            ratios[move].append(_mad(move_output(sr, *move), hr, mask) / base)
    score = {move: float(np.mean(values)) for move, values in ratios.items()}
    best = min(score, key=score.get)
    centre = (scale - 1) / 2.0
    return {'native_alignment': [centre - best[0], centre - best[1]],
            'native_best_move': list(best),
            'native_sr_over_bicubic': score[best],
            'native_sr_over_bicubic_unmoved': score[(0.0, 0.0)]}


def record_alignment(path: Path, result: Dict[str, Any]) -> None:
    """Rewrite ``path`` with ``sampling.point_alignment`` and a provenance revision."""

    def with_alignment(metadata: Dict[str, Any]) -> Dict[str, Any]:
        sampling = {'point_alignment': [int(v) for v in result['point_alignment']],
                    'measured_on': ('sensor suite validation split: '
                                    + ', '.join(VALIDATION_SETS)),
                    'mean_sr_told_over_nearest': round(result['mean_sr_told_over_nearest'], 4)}
        changed = 'sampling.point_alignment'
        if 'native_alignment' in result:
            sampling['native_alignment'] = [float(v) for v in result['native_alignment']]
            sampling['native_sr_over_bicubic'] = round(result['native_sr_over_bicubic'], 4)
            centred = result['native_best_move'] == [0.0, 0.0]
            sampling['assumes'] = (
                ('a centred footprint for native input' if centred else
                 f'native samples at {tuple(sampling["native_alignment"])}')
                + f'; point samples at {tuple(sampling["point_alignment"])}')
            changed = 'sampling.point_alignment, sampling.native_alignment'
        before = {k: (metadata.get('sampling') or {}).get(k)
                  for k in ('point_alignment', 'native_alignment')}
        provenance = revised_provenance(
            metadata, changed, before,
            {k: sampling.get(k) for k in ('point_alignment', 'native_alignment')},
            'measured by python -m training.checkpoints calibrate-phase: lets the node move '
            'the output to the sampling geometry in use (decimated at a known phase, or native '
            'and centred)')
        return {'sampling': sampling, 'provenance': provenance}

    update_metadata(path, with_alignment)


def markdown(results: Sequence[Dict[str, Any]]) -> str:
    """The report: per checkpoint, SR / nearest per phase (unknown, told) and the native line."""
    lines = ['# Point alignment (validation frames: held-out Lu views, validation rooms)', '',
             'SR / nearest MAD on point-sampled input, per sampling phase: the phase unknown '
             '(the output as the net places it) and told (moved by phase - alignment).', '']
    for result in results:
        lines += [f'## {Path(result["weights"]).name} (x{result["scale"]}): alignment '
                  f'{tuple(result["point_alignment"])}', '',
                  '| phase | SR / nearest, phase unknown | SR / nearest, phase told |',
                  '|---|---|---|']
        lines += [f'| {tuple(r["phase"])} | {r["sr_unknown_over_nearest"]:.3f} | '
                  f'{r["sr_told_over_nearest"]:.3f} |' for r in result['per_phase']]
        lines += [f'| mean | {result["mean_sr_unknown_over_nearest"]:.3f} | '
                  f'{result["mean_sr_told_over_nearest"]:.3f} |', '']
        if 'native_alignment' in result:
            lines += [f'Native (area-averaged) input: alignment '
                      f'{tuple(result["native_alignment"])} (centred is '
                      f'{(result["scale"] - 1) / 2:g}); SR / bicubic MAD '
                      f'{result["native_sr_over_bicubic_unmoved"]:.3f} as placed, '
                      f'{result["native_sr_over_bicubic"]:.3f} after the best move '
                      f'{tuple(result["native_best_move"])}.', '']
    return '\n'.join(lines)
