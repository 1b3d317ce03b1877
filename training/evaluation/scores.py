"""The suite's accounting: errors over shared pixels, edge band and flat areas, validity, holes.

MAD and RMSE themselves are :mod:`dsr_ros.depth_metrics` (one definition with the demo). Here:
which pixels every method is scored over (GT valid and LR valid, i.e. the output mask every
method shares), the edge band (within ``s`` px of a GT discontinuity) against flat areas, the
invalid-pixel accounting (LR holes, output pixels that changed validity: must be 0), the error
next to punched holes relative to the same pixels without them, frame-to-frame flicker, and
the per-family summary of a suite run.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

from dsr_ros.baselines import filled_frame, upsample_nearest
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_metrics import masked_errors
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.sampling_geometry import SamplingGeometry
from training.data.sensor_noise import edge_jump
from training.evaluation.methods import METHODS

__all__ = ['edge_band', 'near_hole_ratio', 'score', 'summarize', 'temporal_flicker']


def edge_band(gt: np.ndarray, scale: int) -> np.ndarray:
    """HR pixels within ``scale`` px of a GT depth discontinuity (a 3 % relative jump)."""
    filled = filled_frame(gt, valid_mask(gt))
    edges = edge_jump(filled) > 0.03 * np.maximum(filled, 1e-3)
    return cv2.dilate(edges.astype(np.uint8), np.ones((2 * scale + 1, 2 * scale + 1),
                                                      np.uint8)) > 0


def score(outputs: Dict[str, np.ndarray], gt: np.ndarray, lr: np.ndarray, scale: int
          ) -> Dict[str, Any]:
    """Errors (mm) of every method over the shared pixels, edge band and flat split, validity."""
    height, width = lr.shape[0] * scale, lr.shape[1] * scale
    gt = gt[:height, :width]
    lr_valid_up = upsample_nearest(valid_mask(lr), scale)
    common = valid_mask(gt) & lr_valid_up
    for out in outputs.values():
        common &= valid_mask(out)
    band = edge_band(gt, scale)
    result: Dict[str, Any] = {}
    for method, out in outputs.items():
        result[method] = dict(masked_errors(out, gt, common),
                              edge=masked_errors(out, gt, common & band),
                              flat=masked_errors(out, gt, common & ~band))
    if 'sr' in outputs:  # the oracle-only phase study scores baselines and oracles alone
        sr_valid = valid_mask(outputs['sr'])
        result['validity'] = {'lr_holes': int((~valid_mask(lr)).sum()),
                              'became_valid': int((sr_valid & ~lr_valid_up).sum()),
                              'became_invalid': int((~sr_valid & lr_valid_up).sum())}
    return result


def near_hole_ratio(resolver: DepthSuperResolver, gt: np.ndarray, lr_holes: np.ndarray,
                    lr_clean: np.ndarray, scale: int, radius: int = 4,
                    with_holes: Optional[np.ndarray] = None,
                    geometry: Optional[SamplingGeometry] = None) -> Dict[str, float]:
    """SR error within ``radius`` HR px of punched holes, relative to the same pixels when the
    same LR frame has no such holes (``lr_clean``).

    Issue 8's criterion: holes may not spoil their valid neighbours by more than 10 %.
    ``with_holes``: the SR output of ``lr_holes`` when the caller has it already; both runs
    use ``geometry``.
    """
    holes = ~valid_mask(lr_holes) & valid_mask(lr_clean)
    if with_holes is None:
        with_holes = resolver.run(lr_holes, geometry=geometry)
    without = resolver.run(lr_clean, geometry=geometry)
    height, width = with_holes.shape
    near = cv2.dilate(upsample_nearest(holes, scale).astype(np.uint8),
                      np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    mask = near & valid_mask(with_holes) & valid_mask(gt[:height, :width])
    err_holes = masked_errors(with_holes, gt[:height, :width], mask)
    err_clean = masked_errors(without, gt[:height, :width], mask)
    return {'mad_with_holes': err_holes['mad'], 'mad_without_holes': err_clean['mad'],
            'ratio': err_holes['mad'] / max(err_clean['mad'], 1e-9), 'pixels': err_holes['pixels']}


def temporal_flicker(errors: List[np.ndarray], masks: List[np.ndarray]) -> float:
    """Mean |e_t - e_{t-1}| in mm over pixels valid in both frames (lower = steadier)."""
    values = []
    for index in range(1, len(errors)):
        mask = masks[index] & masks[index - 1]
        if mask.any():
            values.append(masked_errors(errors[index], errors[index - 1], mask,
                                        factor=1.0)['mad'])
    return float(np.mean(values)) * 1000.0 if values else float('nan')


def summarize(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per family: mean over data sets of the per-data-set mean MAD/RMSE and their ratios."""
    families: Dict[str, Dict[str, list]] = {}
    for row in rows:
        per = families.setdefault(row['family'], {}).setdefault(row['dataset'], [])
        per.append(row)
    summary: Dict[str, Any] = {}
    for family, datasets in families.items():
        entry: Dict[str, Any] = {'datasets': {}}
        for dataset, items in datasets.items():
            means = {m: {k: float(np.nanmean([r[m][k] for r in items])) for k in ('mad', 'rmse')}
                     for m in METHODS}
            means['edge_mad'] = {m: float(np.nanmean([r[m]['edge']['mad'] for r in items]))
                                 for m in METHODS}
            means['flat_mad'] = {m: float(np.nanmean([r[m]['flat']['mad'] for r in items]))
                                 for m in METHODS}
            means['became_valid'] = sum(r['validity']['became_valid'] for r in items)
            means['became_invalid'] = sum(r['validity']['became_invalid'] for r in items)
            if 'near_holes' in items[0]:
                means['near_hole_ratio'] = float(np.nanmean([r['near_holes']['ratio']
                                                             for r in items]))
            entry['datasets'][dataset] = means
        for ratio, (num, den, key) in {
                'sr_over_bicubic_mad': ('sr', 'bicubic', 'mad'),
                'sr_over_nearest_mad': ('sr', 'nearest', 'mad'),
                'sr_over_bicubic_rmse': ('sr', 'bicubic', 'rmse'),
                'sr_over_nearest_rmse': ('sr', 'nearest', 'rmse')}.items():
            entry[ratio] = float(np.mean([d[num][key] / d[den][key]
                                          for d in entry['datasets'].values()]))
        summary[family] = entry
    return summary
