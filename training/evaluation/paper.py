"""The paper-protocol run: bicubic and DSRNet checkpoints on the depth-SR test sets.

``python -m training.evaluation paper --dataset middlebury2005
--data-root ../shared/data/middlebury2005_sun --scales 2 4 8 16 [--method bicubic]
[--weights A.pt B.pt --labels a b] [--names art ...] --out DIR``

Protocols: :mod:`training.evaluation.protocols`; rows: :mod:`training.evaluation.methods`.
``--round-uint8`` rounds every method's output to uint8 before the errors on 8-bit data (as a
MATLAB harness storing uint8 images would); ``_meta.sr_rounding`` and the printed report say
which was used.

Outputs in ``--out``: ``results.json`` (``{method: {scene: {scale: {mad, rmse, forward_s}}}}``
plus ``errors`` and ``_meta``), ``results.csv``, ``table.md``, ``maps/<method>/<scene>_x<s>.png``
(absolute error maps) and ``overview.png``. A scene that cannot be read, or a method that fails
on it, is listed under ``errors`` and the mean of that scale is left empty rather than averaged
over fewer scenes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from dsr_ros.depth_metrics import abs_error, errors as mad_rmse
from training.data.readers import DataError
from training.data.sample import RGBDSample
from training.evaluation.frames import cached_scenes, read_scenes
from training.evaluation.methods import Method, checkpoint_method, model_method
from training.evaluation.protocols import PROTOCOLS, lr_and_gt
from training.evaluation.report import write_outputs

__all__ = ['evaluate_checkpoint', 'evaluate_methods', 'evaluate_model']

LOGGER = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]


def evaluate_methods(methods: Sequence[Method], dataset: str = 'middlebury2005',
                     data_root: Optional[PathLike] = None, scales: Sequence[int] = (2, 4, 8, 16),
                     names: Optional[Sequence[str]] = None, out_dir: Optional[PathLike] = None,
                     save_maps: bool = True,
                     samples: Optional[Sequence[RGBDSample]] = None,
                     progress: bool = True, round_uint8: bool = False) -> Dict[str, Any]:
    """Score every method on every scene and scale; write the outputs when ``out_dir`` is set.

    ``round_uint8`` rounds every prediction on 8-bit data (``disparity_8bit``) to 0..255
    integers before the errors are computed.

    Returns ``{method: {scene: {scale: {'mad', 'rmse', 'forward_s'}}}, 'errors': {...},
    '_meta': {...}}``. Scales are int keys here (strings in results.json). Pass ``samples``
    to reuse scenes already read (the training loop evaluates every few epochs).
    """
    if dataset not in PROTOCOLS:
        raise ValueError(f'unknown dataset {dataset!r}; known: {sorted(PROTOCOLS)}')
    protocol = PROTOCOLS[dataset]
    scales = [int(s) for s in scales]
    errors: Dict[str, str] = {}
    if samples is None:
        samples, errors = read_scenes(dataset, data_root, names)
    read = {s.name for s in samples}
    scene_names = [s.name for s in samples] + [n for n in errors if n not in read]
    results: Dict[str, Any] = {m.label: {} for m in methods}
    maps: Dict[Tuple[str, str, int], np.ndarray] = {}
    jobs = [(m, s, k) for m in methods for s in samples for k in scales
            if m.scales is None or k in m.scales]
    bar = tqdm(jobs, desc=f'evaluating {dataset}', unit='image', disable=not progress,
               leave=False)
    for method, sample, scale in bar:
        try:
            lr, gt, valid = lr_and_gt(sample, scale, protocol.shipped_lr)
            pred, seconds = method.predict(lr.astype(np.float32), sample, scale)
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {pred.shape} does not match GT {gt.shape}')
            if round_uint8 and sample.unit == 'disparity_8bit':
                pred = np.clip(np.rint(pred), 0, 255)
            pred_u = pred.astype(np.float64) * protocol.factor
            gt_u = gt.astype(np.float64) * protocol.factor
            mad, rmse = mad_rmse(pred_u, gt_u, valid, protocol.crop)
            entry = {'mad': mad, 'rmse': rmse, 'forward_s': seconds}
        except (DataError, ValueError, RuntimeError) as error:
            key = f'{method.label}/{sample.name}/x{scale}'
            errors[key] = f'{type(error).__name__}: {error}'
            LOGGER.error('%s: %s', key, error)
            continue
        results[method.label].setdefault(sample.name, {})[scale] = entry
        if save_maps and out_dir is not None:
            maps[(method.label, sample.name, scale)] = abs_error(pred_u, gt_u, valid)
    for method in methods:
        if method.scales is not None and not set(method.scales) & set(scales):
            errors[method.label] = (f'scale x{method.scales[0]} is not among the evaluated '
                                    f'scales {scales}')
    results['errors'] = errors
    results['_meta'] = {
        'dataset': dataset, 'data_root': os.fspath(data_root) if data_root else None,
        'scales': scales, 'scenes': scene_names, 'unit': protocol.unit_label,
        'crop': protocol.crop, 'shipped_lr': protocol.shipped_lr,
        'sr_rounding': 'uint8 on 8-bit data' if round_uint8 else 'none (float outputs)',
        'methods': {m.label: _jsonable(m.info) for m in methods},
    }
    if out_dir is not None:
        write_outputs(results, Path(out_dir), maps, protocol)
    return results


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------- one model
def _summary(results: Dict[str, Any], label: str, scale: int) -> Dict[str, Any]:
    per_scene = {scene: per[scale] for scene, per in results[label].items() if scale in per}
    scenes = results['_meta']['scenes']
    complete = len(per_scene) == len(scenes) and bool(scenes)
    return {
        'scale': scale, 'unit': results['_meta']['unit'],
        'mad': {scene: entry['mad'] for scene, entry in per_scene.items()},
        'rmse': {scene: entry['rmse'] for scene, entry in per_scene.items()},
        'mean_mad': float(np.mean([e['mad'] for e in per_scene.values()])) if complete else None,
        'mean_rmse': (float(np.mean([e['rmse'] for e in per_scene.values()]))
                      if complete else None),
        'forward_s': float(np.mean([e['forward_s'] for e in per_scene.values()]))
        if per_scene else None,
        'errors': results['errors'],
    }


def _evaluate_one(method: Method, scale: int, dataset: str, data_root: Optional[PathLike],
                  names: Optional[Sequence[str]]) -> Dict[str, Any]:
    """One method at one scale on the cached scenes, read errors included."""
    samples, read_errors = cached_scenes(dataset, data_root, names)
    results = evaluate_methods([method], dataset, data_root, [scale], names, samples=samples,
                               progress=False)
    results['errors'].update(read_errors)
    results['_meta']['scenes'] += [n for n in read_errors if n not in results['_meta']['scenes']]
    return _summary(results, method.label, scale)


def evaluate_checkpoint(path: PathLike, dataset: str = 'middlebury2005',
                        data_root: Optional[PathLike] = None,
                        names: Optional[Sequence[str]] = None, device: str = 'cpu',
                        tile_size: int = 0) -> Dict[str, Any]:
    """MAD/RMSE per scene of one checkpoint at its own scale (Middlebury x4 for a x4 net).

    Returns ``{'scale', 'unit', 'mad': {scene: x}, 'rmse': {scene: x}, 'mean_mad',
    'mean_rmse', 'forward_s', 'errors'}``; ``mean_*`` is None when a scene failed. Scenes are
    read once per process and cached.
    """
    method = checkpoint_method(path, device=device, tile_size=tile_size)
    return _evaluate_one(method, method.scales[0], dataset, data_root, names)


def evaluate_model(model: Any, normalization: Dict[str, Any],
                   dataset: str = 'middlebury2005', data_root: Optional[PathLike] = None,
                   names: Optional[Sequence[str]] = None, device: Optional[str] = None,
                   tile_size: int = 0) -> Dict[str, Any]:
    """Like :func:`evaluate_checkpoint` for an in-memory DSRNet.

    The net runs in eval mode on its own device (unless ``device`` says otherwise) and is put
    back into the train/eval mode it had, so the training loop can call this between epochs.
    """
    was_training = model.training
    try:
        method = model_method(model, normalization, 'model', device, tile_size)
        return _evaluate_one(method, int(model.scale), dataset, data_root, names)
    finally:
        model.train(was_training)
