"""The starting model against the fine-tuned one on a fine-tune's held-out frames.

The training loop selects on its own held-out error (normalised units, random patches); a
user wants to know what changes on whole frames as the node runs them. This module runs both
checkpoints through :class:`dsr_ros.inference.DepthSuperResolver` (their own scaling and
``fit_tile``) on the held-out frames, degraded the ways a camera delivers them, and scores
them against nearest and bicubic upsampling over the same pixels
(:func:`training.evaluation.scores.score`):

* ``native``: every LR pixel the mean of its ``s x s`` block (a camera at its own resolution);
* ``decimated, phase [0, 0] told``: every ``s``-th pixel kept from the top-left (image_proc's
  crop_decimate), the node told ``sampling_phase: [0, 0]``;
* ``decimated, phase unknown``: the same frames, ``sampling_phase`` left at ``[-1, -1]``;
* ``real LR frames``, instead of the three above when the fine-tune trained on a bag's real
  LR/HR pairs: the held-out LR frames as the node gets them, against their HR frames.

:func:`check_alignment` measures where a net places point samples on the same frames, so an
inherited ``sampling.point_alignment`` is checked rather than trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from dsr_ros.baselines import upsample_bicubic_masked, upsample_nearest
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_metrics import masked_errors
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.sampling_geometry import SamplingGeometry
from dsr_ros.sampling_phase import shift_output
from training.data.patches import METRIC_UNITS
from training.data.sample import RGBDSample
from training.evaluation.families import decimate_real, degrade_frame
from training.evaluation.frames import centre_crop
from training.evaluation.methods import run_told
from training.evaluation.scores import score

__all__ = ['GEOMETRIES', 'check_alignment', 'compare_models', 'held_out_frames',
           'held_out_pairs', 'markdown_table']

#: Sampling geometry -> its words in the table.
GEOMETRIES = {'native': 'native (area-averaged)',
              'decimated_known': 'decimated, phase [0, 0] told',
              'decimated_unknown': 'decimated, phase unknown'}
#: The row of a bag's real LR frames (:func:`held_out_pairs`).
REAL_LABEL = 'real LR frames (the bag\'s LR topic)'
BASELINES = ('nearest', 'bicubic')


def _evenly_spaced(items: Sequence[Any], limit: int) -> List[Any]:
    """At most ``limit`` of ``items``, evenly spaced from the first to the last."""
    if not items:
        return []
    picks = np.unique(np.linspace(0, len(items) - 1, min(limit, len(items))).round())
    return [items[int(index)] for index in picks]


def held_out_frames(samples: Sequence[RGBDSample], scale: int, limit: int = 8
                    ) -> List[np.ndarray]:
    """Up to ``limit`` evenly spaced held-out frames in metres (NaN = invalid), at most
    480 x 640 (centre crop) and cropped to a multiple of ``scale``."""
    frames = []
    for sample in _evenly_spaced([s for s in samples if s.unit in METRIC_UNITS], limit):
        depth = np.where(sample.valid, sample.depth * METRIC_UNITS[sample.unit], np.nan)
        depth = centre_crop(depth.astype(np.float32), 480, 640)
        rows, cols = (depth.shape[0] // scale) * scale, (depth.shape[1] // scale) * scale
        frames.append(np.ascontiguousarray(depth[:rows, :cols]))
    return frames


def held_out_pairs(samples: Sequence[RGBDSample], scale: int, limit: int = 8,
                   geometry: Optional[SamplingGeometry] = None
                   ) -> List[Tuple[np.ndarray, np.ndarray, Optional[SamplingGeometry]]]:
    """Up to ``limit`` evenly spaced held-out ``(HR, real LR, geometry)`` in metres (NaN =
    invalid), the same centre crop (at most 480 x 640, on the LR grid) of both."""
    pairs = []
    for sample in _evenly_spaced([s for s in samples
                                  if s.unit in METRIC_UNITS and scale in s.lr_inputs], limit):
        metres = METRIC_UNITS[sample.unit]
        hr = np.where(sample.valid, sample.depth * metres, np.nan).astype(np.float32)
        lr = sample.lr_inputs[scale] * metres
        lr = np.where(valid_mask(lr), lr, np.nan).astype(np.float32)
        rows, cols = min(lr.shape[0], 480 // scale), min(lr.shape[1], 640 // scale)
        top, left = (lr.shape[0] - rows) // 2, (lr.shape[1] - cols) // 2
        pairs.append((np.ascontiguousarray(hr[top * scale:(top + rows) * scale,
                                              left * scale:(left + cols) * scale]),
                      np.ascontiguousarray(lr[top:top + rows, left:left + cols]), geometry))
    return pairs


def _inputs(gt: np.ndarray, geometry: str, scale: int, seed: int
            ) -> Tuple[np.ndarray, Optional[Tuple[int, int]]]:
    if geometry == 'native':
        return degrade_frame(gt, 'area', scale, np.random.default_rng(seed)), None
    return decimate_real(gt, scale), ((0, 0) if geometry == 'decimated_known' else None)


def compare_models(models: Dict[str, Path], frames: Sequence[np.ndarray], scale: int,
                   seed: int = 0, pairs: Optional[Sequence[tuple]] = None
                   ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{geometry: {method: {'mad', 'rmse'}}}`` in mm, mean over ``frames``; methods are the
    labels of ``models`` plus nearest and bicubic. A model without a point alignment is not
    scored where the phase is told (the node would refuse that combination). With ``pairs``
    (:func:`held_out_pairs`) the one row is the real LR frames against their HR frames."""
    resolvers = {label: DepthSuperResolver.from_checkpoint(path, device='cpu')
                 for label, path in models.items()}
    table: Dict[str, Dict[str, Dict[str, float]]] = {}
    for geometry in (['real'] if pairs else GEOMETRIES):
        sums: Dict[str, Dict[str, List[float]]] = {}
        for index, gt in enumerate(frames if geometry != 'real' else [p[0] for p in pairs]):
            if geometry == 'real':
                lr, told = pairs[index][1], pairs[index][2]
            else:
                lr, phase = _inputs(gt, geometry, scale, seed + index)
            outputs = {'nearest': upsample_nearest(lr, scale),
                       'bicubic': upsample_bicubic_masked(lr, scale)}
            for label, resolver in resolvers.items():
                if geometry == 'real':
                    outputs[label] = resolver.run(lr, geometry=told)
                elif phase is None or resolver.point_alignment is not None:
                    outputs[label] = run_told(resolver, lr, phase)
            scores = score(outputs, gt, lr, scale)
            for method in outputs:
                entry = sums.setdefault(method, {'mad': [], 'rmse': []})
                entry['mad'].append(scores[method]['mad'])
                entry['rmse'].append(scores[method]['rmse'])
        table[geometry] = {method: {key: float(np.nanmean(values)) for key, values in v.items()}
                           for method, v in sums.items()}
    return table


def markdown_table(table: Dict[str, Dict[str, Dict[str, float]]], labels: Sequence[str],
                   frames: int) -> str:
    """One row per geometry: MAD / RMSE (mm) of each model and baseline, and each model's
    ratio to nearest and bicubic (< 1: better than that baseline)."""
    head = ['sampling geometry'] + [f'{m} MAD / RMSE mm' for m in (*labels, *BASELINES)] + [
        f'{m} / {b} MAD, RMSE' for m in labels for b in BASELINES]
    lines = [f'Held-out frames: {frames} (whole frames through the node\'s resolver)', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for geometry, methods in table.items():
        cells = [GEOMETRIES.get(geometry, REAL_LABEL)]
        for method in (*labels, *BASELINES):
            value = methods.get(method)
            cells.append('-' if value is None else f'{value["mad"]:.2f} / {value["rmse"]:.2f}')
        for method in labels:
            for base in BASELINES:
                value, ref = methods.get(method), methods[base]
                cells.append('-' if value is None else
                             f'{value["mad"] / ref["mad"]:.3f}, {value["rmse"] / ref["rmse"]:.3f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def check_alignment(path: Path, frames: Sequence[np.ndarray], scale: int) -> Dict[str, Any]:
    """Where the net at ``path`` places point samples, measured on ``frames`` decimated at
    phase [0, 0]: the output (phase not told) moved by ``-a`` for every candidate ``a``; the
    candidate with the lowest mean MAD is the alignment. Returns it with the MAD per
    candidate (mm)."""
    resolver = DepthSuperResolver.from_checkpoint(path, device='cpu')  # phase not told
    candidates = [(r, c) for r in range(scale) for c in range(scale)]
    mads: Dict[Tuple[int, int], List[float]] = {a: [] for a in candidates}
    for gt in frames:
        out = resolver.run(decimate_real(gt, scale))
        truth = gt[:out.shape[0], :out.shape[1]]
        for row, col in candidates:
            moved = shift_output(out, -row, -col)
            mask = valid_mask(truth) & valid_mask(moved)
            if mask.any():
                # MAD in metres at the frames' precision, then mm (as the recorded ones)
                mads[(row, col)].append(masked_errors(moved, truth, mask, factor=1.0)['mad'] * 1e3)
    means = {a: float(np.mean(v)) if v else float('nan') for a, v in mads.items()}
    finite = {a: v for a, v in means.items() if np.isfinite(v)}
    measured = min(finite, key=finite.get) if finite else None
    return {'measured': None if measured is None else list(measured), 'frames': len(frames),
            'mad_mm_by_alignment': {f'{r},{c}': round(v, 4) for (r, c), v in means.items()}}
