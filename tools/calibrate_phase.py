"""Measure a checkpoint's point alignment on validation frames and (optionally) record it.

    python tools/calibrate_phase.py dsr_ros/weights/dsrnet_sensor_lite_x4.pt [more.pt ...] \
        [--data-root ../shared/data] [--out results/phase_calibration] [--write]

A net trained on point samples at mixed phases places its output as if every LR sample came
from one fixed HR offset, its *point alignment* (:mod:`dsr_ros.sampling_phase`). Knowing it
turns a known sampling phase (the node's ``sampling_phase``) into an exact whole-pixel shift of
the output. This script point-samples the sensor suite's **validation** frames (the held-out
Lu views and validation rooms, never a test frame) at every phase (x8: every other phase),
super-resolves each once, and for every candidate alignment ``a`` scores the output moved by
``phase - a`` (MAD / nearest's MAD, mean over phases and frames); the best ``a`` is the
alignment. It reports, per phase, SR with the phase unknown, SR told the phase, and nearest.
It also measures the *native alignment*: where the net places the sample of a native camera
(area-averaged input, the footprint centred on the pixel) -- the output of each frame is moved by
candidate sub-pixel amounts (quarter pixels, up to one pixel each way) and the best move says
where the net put the sample (``(s - 1) / 2`` when it is centred, as it should be).
``--write`` stores both in the checkpoint (``sampling.point_alignment``,
``sampling.native_alignment``; weights and their SHA-256 unchanged, a provenance revision says
what changed and why).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: training/ is beside tools/
    sys.path.insert(0, str(REPO))

VALIDATION_SETS = ('lu_val', 'rooms_val')
#: HR crop (rows, cols) per frame: enough edges, seconds per phase.
CROP = (240, 320)


def phases_for(scale: int) -> List[Tuple[int, int]]:
    """Every phase at x2 and x4; every other one at x8 (16 phases)."""
    step = max(1, scale // 4)
    return [(r, c) for r in range(0, scale, step) for c in range(0, scale, step)]


def validation_frames(data_root: Path) -> List[Any]:
    """The suite's validation frames (held-out Lu views, validation rooms), read once for every
    checkpoint and both measurements; a clear error when there are none."""
    from training.sensor_suite import load_frames
    frames, missing = load_frames(data_root, VALIDATION_SETS, split='val')
    if not frames:
        raise ValueError(f'no validation frames under {data_root}: {missing}')
    return frames


def calibrate(weights: Path, frames: Sequence[Any]) -> Dict[str, Any]:
    """Per candidate alignment, the mean SR / nearest MAD with the output moved to the phase."""
    from dsr_ros.depth_io import valid_mask
    from dsr_ros.inference import DepthSuperResolver
    from dsr_ros.sampling_phase import shift_output
    from training.data import sensor_degradation as sd
    from training.sensor_suite import _crop, filled_frame, upsample_nearest
    resolver = DepthSuperResolver.from_checkpoint(weights, device='cpu')
    resolver.sampling_phase = None  # measure the net's own placement
    scale = resolver.scale
    phases = phases_for(scale)
    candidates = [(r, c) for r in range(scale) for c in range(scale)]
    # ratio[p][a]: list over frames of MAD(SR moved by p - a) / MAD(nearest)
    ratio: Dict[Tuple[int, int], Dict[Tuple[int, int], List[float]]] = {}
    for frame in frames:
        gt = _crop(frame.depth, *CROP)
        filled = filled_frame(gt, valid_mask(gt))
        for phase in phases:
            lr = sd.downsample(filled, scale, 'point', phase=phase).astype(np.float32)
            hr = gt[:lr.shape[0] * scale, :lr.shape[1] * scale]
            sr = resolver.run(lr)
            mask = valid_mask(hr)
            nearest = np.abs(upsample_nearest(lr, scale)[mask] - hr[mask]).mean()
            per = ratio.setdefault(phase, {})
            for align in candidates:
                moved = shift_output(sr, phase[0] - align[0], phase[1] - align[1])
                per.setdefault(align, []).append(
                    float(np.abs(moved[mask] - hr[mask]).mean() / max(nearest, 1e-9)))
            per.setdefault('unknown', []).append(
                float(np.abs(sr[mask] - hr[mask]).mean() / max(nearest, 1e-9)))
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


#: Candidate native moves (HR pixels per axis): quarter pixels up to one pixel each way.
NATIVE_MOVES = tuple(step / 4.0 for step in range(-4, 5))


def calibrate_native(weights: Path, frames: Sequence[Any]) -> Dict[str, Any]:
    """Where the net places a native (area-averaged, centred-footprint) sample: the move of
    its output that minimises SR / bicubic MAD on the validation frames, and the alignment it
    implies (``(s - 1) / 2 - move``)."""
    from dsr_ros.depth_io import valid_mask
    from dsr_ros.inference import DepthSuperResolver
    from dsr_ros.sampling_phase import move_output
    from training.sensor_suite import _crop, degrade_frame, upsample_bicubic_masked
    resolver = DepthSuperResolver.from_checkpoint(weights, device='cpu', native_alignment=None)
    scale = resolver.scale
    moves = [(r, c) for r in NATIVE_MOVES for c in NATIVE_MOVES]
    ratios: Dict[Tuple[float, float], List[float]] = {move: [] for move in moves}
    for index, frame in enumerate(frames):
        gt = _crop(frame.depth, *CROP)
        lr = degrade_frame(gt, 'area', scale, np.random.default_rng(index))
        hr = gt[:lr.shape[0] * scale, :lr.shape[1] * scale]
        sr = np.nan_to_num(resolver.run(lr))
        bicubic = upsample_bicubic_masked(lr, scale)
        mask = valid_mask(hr) & valid_mask(bicubic)
        base = max(float(np.abs(bicubic[mask] - hr[mask]).mean()), 1e-9)
        for move in moves:
            moved = move_output(sr, *move)
            ratios[move].append(float(np.abs(moved[mask] - hr[mask]).mean()) / base)
    score = {move: float(np.mean(values)) for move, values in ratios.items()}
    best = min(score, key=score.get)
    centre = (scale - 1) / 2.0
    return {'native_alignment': [centre - best[0], centre - best[1]],
            'native_best_move': list(best),
            'native_sr_over_bicubic': score[best],
            'native_sr_over_bicubic_unmoved': score[(0.0, 0.0)]}


def record_alignment(path: Path, result: Dict[str, Any]) -> None:
    """Rewrite ``path`` with ``sampling.point_alignment`` and a provenance revision."""
    from dsr_ros.checkpoint import revised_provenance, update_metadata

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
            'measured by tools/calibrate_phase.py: lets the node move the output to the '
            'sampling geometry in use (decimated at a known phase, or native and centred)')
        return {'sampling': sampling, 'provenance': provenance}

    update_metadata(path, with_alignment)


def markdown(results: Sequence[Dict[str, Any]]) -> str:
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('weights', nargs='+', type=Path)
    parser.add_argument('--data-root', type=Path, default=REPO.parent / 'shared' / 'data')
    parser.add_argument('--out', type=Path, default=REPO / 'results' / 'phase_calibration')
    parser.add_argument('--write', action='store_true',
                        help='record the measured alignments in each checkpoint')
    parser.add_argument('--point-only', action='store_true',
                        help='measure the point alignment only (not the native one)')
    args = parser.parse_args(argv)
    results = []
    frames: Optional[List[Any]] = None
    for path in args.weights:
        try:
            frames = frames if frames is not None else validation_frames(args.data_root)
            result = calibrate(path, frames)
            if not args.point_only:
                result.update(calibrate_native(path, frames))
        except ValueError as error:  # CheckpointError is a ValueError
            print(f'calibrate_phase: {error}', file=sys.stderr)
            return 2
        results.append(result)
        print(f'{path}: point alignment {tuple(result["point_alignment"])}, SR / nearest '
              f'{result["mean_sr_unknown_over_nearest"]:.3f} (phase unknown) -> '
              f'{result["mean_sr_told_over_nearest"]:.3f} (told)'
              + ('' if args.point_only else
                 f'; native alignment {tuple(result["native_alignment"])} (SR / bicubic '
                 f'{result["native_sr_over_bicubic_unmoved"]:.3f} unmoved, '
                 f'{result["native_sr_over_bicubic"]:.3f} moved)'))
        if args.write:
            record_alignment(path, result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'phase_calibration.json').write_text(json.dumps(results, indent=1))
    (args.out / 'phase_calibration.md').write_text(markdown(results))
    return 0


if __name__ == '__main__':
    sys.exit(main())
