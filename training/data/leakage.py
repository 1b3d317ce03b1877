"""Is a training depth map one of the six Middlebury 2005 test scenes? Check by correlation.

Training maps come at other sizes and crops than the test ground truth (full size, third size,
cropped), so an exact comparison cannot find a duplicate. This rescales each candidate over a
small range, takes its central 70 % and searches it with normalised cross-correlation
(``cv2.TM_CCOEFF_NORMED``) in each test scene's third-size disparity and in the
middlebury2005_sun GT reduced by 3. A score above ``threshold`` (default 0.95) flags the map.
The known test scenes of middlebury_lu30 serve as positive controls (0.987-0.999 here).

``python -m training.data.leakage`` prints the table behind ``MSGNET_TEST_SCENE_MAPS`` in
:mod:`training.data.readers` (about 40 s on 2 cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

from training.data.readers import (LU30_TEST_INDICES, MIDDLEBURY2005_SCENES, read_depth_png,
                                   read_mat, shared_data_root)

__all__ = ['best_match', 'test_scene_references', 'scene_scores']


def test_scene_references(data_root: Path) -> Dict[str, List[np.ndarray]]:
    """Per test scene: third-size disp1 and the middlebury2005_sun GT reduced by 3."""
    refs = {}
    for index, scene in enumerate(MIDDLEBURY2005_SCENES, 1):
        third = read_depth_png(data_root / 'middlebury2005_thirdsize' / scene.capitalize()
                               / 'disp1.png')
        full = read_depth_png(data_root / 'middlebury2005_sun' / 'test_gt' / f'{index}.png')
        reduced = cv2.resize(full, (full.shape[1] // 3, full.shape[0] // 3),
                             interpolation=cv2.INTER_AREA)
        refs[scene] = [third, reduced]
    return refs


def best_match(candidate: np.ndarray, reference: np.ndarray,
               scales: Optional[np.ndarray] = None) -> float:
    """Highest NCC of the rescaled candidate's central 70 % anywhere inside ``reference``."""
    scales = np.linspace(0.85, 1.15, 13) if scales is None else scales
    best = -1.0
    for factor in scales:
        height = int(round(candidate.shape[0] * factor))
        width = int(round(candidate.shape[1] * factor))
        resized = cv2.resize(candidate.astype(np.float32), (width, height),
                             interpolation=cv2.INTER_AREA)
        t_h, t_w = int(height * 0.7), int(width * 0.7)
        top, left = (height - t_h) // 2, (width - t_w) // 2
        template = resized[top:top + t_h, left:left + t_w]
        if t_h >= reference.shape[0] or t_w >= reference.shape[1]:
            continue
        score = cv2.matchTemplate(reference.astype(np.float32), template, cv2.TM_CCOEFF_NORMED)
        best = max(best, float(score.max()))
    return best


def scene_scores(candidate: np.ndarray, refs: Dict[str, List[np.ndarray]]) -> Dict[str, float]:
    """Best NCC of ``candidate`` against each test scene (full-size maps reduced by 3)."""
    if candidate.shape[0] > 700:
        candidate = cv2.resize(candidate.astype(np.float32),
                               (candidate.shape[1] // 3, candidate.shape[0] // 3),
                               interpolation=cv2.INTER_AREA)
    return {scene: max(best_match(candidate, ref) for ref in scene_refs)
            for scene, scene_refs in refs.items()}


def main(argv: Optional[List[str]] = None) -> int:
    """Print the scores of the msgnet Middlebury maps and of the lu30 positive controls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', type=Path, default=shared_data_root())
    parser.add_argument('--threshold', type=float, default=0.95)
    args = parser.parse_args(argv)
    refs = test_scene_references(args.data_root)
    candidates = {}
    mat_dir = args.data_root / 'msgnet_training_depth' / 'middlebury'
    for number in range(59, 71):
        candidates[f'Df_{number}'] = read_mat(mat_dir / f'Df_{number}.mat', 'Df')
    for index, scene in zip(LU30_TEST_INDICES, MIDDLEBURY2005_SCENES):
        name = f'Middlebury_{index}'
        candidates[f'lu30 {index} (control: {scene})'] = read_depth_png(
            args.data_root / 'middlebury_lu30' / name / f'{name}_output_depth.png')
    print('| map | ' + ' | '.join(MIDDLEBURY2005_SCENES) + ' | best | flagged |')
    print('|---' * (len(MIDDLEBURY2005_SCENES) + 3) + '|')
    for name, array in candidates.items():
        scores = scene_scores(array.astype(np.float32), refs)
        top = max(scores, key=scores.get)
        flagged = 'YES' if scores[top] >= args.threshold else 'no'
        print(f'| {name} | ' + ' | '.join(f'{scores[s]:.3f}' for s in MIDDLEBURY2005_SCENES)
              + f' | {top} | {flagged} |', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
