"""Benchmark harness: bicubic and DSRNet checkpoints on the depth-SR test sets, paper protocol.

``python -m training.evaluate --dataset middlebury2005
--data-root ../shared/data/middlebury2005_sun --scales 2 4 8 16 [--method bicubic]
[--weights A.pt B.pt --labels a b] [--names art ...] --out DIR``

Protocol (see /work/shared/docs/method.md, "Evaluation protocol"):

- ``middlebury2005`` and ``ferstl_noisy``: the LR inputs shipped with the set (for Ferstl the
  noisy ones); MAD and RMSE on the 0-255 disparity scale, full resolution, no border crop.
- every other set: the ground truth (cropped to a multiple of the scale, holes filled by their
  nearest valid neighbour first) is degraded with :func:`training.data.degradation.degrade`
  (OpenCV INTER_CUBIC, rounded to uint8 for 8-bit disparity); errors over valid GT pixels.
  ``nyuv2``: RMSE/MAD in centimetres with the usual 6-pixel border crop. ``lu_rgbd6``: the
  per-image normalised 0-255 scale. ``msgnet_testsets`` and ``middlebury_thirdsize``: 0-255.
- ``bicubic`` = OpenCV INTER_CUBIC upsampling (a = -0.75) of the LR input (float, not
  rounded); ``bicubic_matlab`` = MATLAB's bicubic ``imresize`` (a = -0.5, uint8 output on 8-bit
  data, :mod:`training.matlab_resize`), which reproduces the paper's bicubic row.
- ``--round-uint8`` rounds every method's output to uint8 before the errors on 8-bit data
  (as a MATLAB harness storing uint8 images would); ``_meta.sr_rounding`` and the printed
  report say which was used.
- a checkpoint runs on the LR input prepared by :func:`dsr_ros.inference.prepare_net_input`
  (the node's path: holes filled, mask channel for mask-aware nets) with the checkpoint's own
  scaling when it accepts the set's unit, otherwise the min-max of the LR input's valid pixels
  (e.g. a metric model on 8-bit disparity); the output is mapped back to the unit. Its scale
  decides the one column it fills.

Outputs in ``--out``: ``results.json`` (``{method: {scene: {scale: {mad, rmse, forward_s}}}}``
plus ``errors`` and ``_meta``), ``results.csv``, ``table.md``, ``maps/<method>/<scene>_x<s>.png``
(absolute error maps) and ``overview.png``. A scene that cannot be read, or a method that fails
on it, is listed under ``errors`` and the mean of that scale is left empty rather than averaged
over fewer scenes.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from dsr_ros.self_ensemble import ENSEMBLE_PASSES
from training.data.degradation import degrade, upsample_bicubic
from training.data.readers import DataError, list_samples, load_samples
from training.data.sample import RGBDSample
from training.metrics import abs_error, mad, rmse

__all__ = ['PROTOCOLS', 'Method', 'bicubic_method', 'bicubic_matlab_method', 'BASELINES',
           'checkpoint_method', 'evaluate_methods', 'evaluate_checkpoint', 'evaluate_model',
           'markdown_table', 'main']

LOGGER = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Protocol:
    """How one data set is scored: which LR, which unit the errors are reported in, crop."""

    shipped_lr: bool
    unit_label: str
    factor: float = 1.0
    crop: int = 0
    error_range: float = 10.0  # colour-map range of the error images, in the reported unit
    primary: str = 'mad'  # the metric the literature reports for this set


PROTOCOLS: Dict[str, Protocol] = {
    'middlebury2005': Protocol(True, '0-255 disparity'),
    'ferstl_noisy': Protocol(True, '0-255 disparity (noisy LR inputs)'),
    'msgnet_testsets': Protocol(False, '0-255 disparity'),
    'middlebury_thirdsize': Protocol(False, '0-255 disparity (valid pixels only)'),
    'lu_rgbd6': Protocol(False, '0-255 (per-image normalised depth)'),
    'nyuv2': Protocol(False, 'cm (6-pixel border crop)', factor=100.0, crop=6,
                      error_range=20.0, primary='rmse'),
}

#: ``predict(lr, sample, scale) -> (hr_prediction, forward_seconds)``, in the sample's unit.
Predictor = Callable[[np.ndarray, RGBDSample, int], Tuple[np.ndarray, float]]


@dataclass
class Method:
    """A row of the table: a label, a predictor and the scales it can do (None = any)."""

    label: str
    predict: Predictor
    scales: Optional[Tuple[int, ...]] = None
    info: Dict[str, Any] = field(default_factory=dict)


def bicubic_method() -> Method:
    """OpenCV INTER_CUBIC upsampling of the LR input, the paper's baseline row."""
    def predict(lr: np.ndarray, sample: RGBDSample, scale: int) -> Tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = upsample_bicubic(lr, scale)
        return out, time.perf_counter() - start
    return Method('Bicubic', predict)


def bicubic_matlab_method() -> Method:
    """MATLAB-style bicubic (a = -0.5, uint8 result on 8-bit data): the paper's bicubic row."""
    from training.matlab_resize import imresize_bicubic

    def predict(lr: np.ndarray, sample: RGBDSample, scale: int) -> Tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = imresize_bicubic(lr, scale, to_uint8=sample.unit == 'disparity_8bit')
        return out.astype(np.float32), time.perf_counter() - start
    return Method('Bicubic (MATLAB)', predict, info={'kernel': 'cubic a=-0.5, uint8 output'})


#: Baseline rows by ``--method`` name.
BASELINES: Dict[str, Callable[[], Method]] = {'bicubic': bicubic_method,
                                              'bicubic_matlab': bicubic_matlab_method}


def evaluate_model_method(model: Any, normalization: Dict[str, Any], label: str,
                          device: Optional[str] = None, tile_size: int = 0) -> Method:
    """A :class:`Method` for an in-memory DSRNet (e.g. the training loop's current net).

    ``device`` defaults to where the model already is, so a net training on CUDA is not moved;
    the memory format is left alone (``channels_last=False``).
    """
    from dsr_ros.inference import DepthSuperResolver
    if device is None:
        device = str(next(model.parameters()).device)
    resolver = DepthSuperResolver(model, normalization, device=device, tile_size=tile_size,
                                  channels_last=False)
    return _resolver_method(resolver, label, dict(normalization))


def checkpoint_method(path: PathLike, label: Optional[str] = None, device: str = 'cpu',
                      tile_size: int = 0) -> Method:
    """A :class:`Method` for a DSRNet checkpoint file (its scale is the only one it fills)."""
    from dsr_ros.inference import DepthSuperResolver
    resolver = DepthSuperResolver.from_checkpoint(path, device=device, tile_size=tile_size)
    info = {'path': os.fspath(path), 'normalization': resolver.scaling.to_dict(),
            'arch': resolver.metadata.get('arch'), 'scale': resolver.scale}
    return _resolver_method(resolver, label or Path(path).stem, info)


def _resolver_method(resolver: Any, label: str, info: Dict[str, Any]) -> Method:
    from dsr_ros.depth_io import valid_mask
    from dsr_ros.depth_scaling import DepthScaling
    from dsr_ros.inference import prepare_net_input
    scaling = resolver.scaling
    info = dict(info, normalization=scaling.to_dict())

    def predict(lr: np.ndarray, sample: RGBDSample, scale: int) -> Tuple[np.ndarray, float]:
        # Not valid_mask for relative depth: lu_rgbd6 maps each image's nearest point to 0,
        # a measurement there, not a hole (see training.data.readers.lu).
        valid = valid_mask(lr) if sample.unit != 'relative' else np.isfinite(lr)
        if not valid.any():
            raise ValueError('LR input has no valid pixel')
        unit = {'metre': 'm'}.get(sample.unit, sample.unit)
        # A metric model on disparity or relative depth: the LR input's own min-max range.
        used = scaling if scaling.accepts(unit) else DepthScaling('range')
        net_in, affine = prepare_net_input(lr, valid, used, resolver.in_channels, unit)
        start = time.perf_counter()
        out = resolver.run_prepared(net_in)
        seconds = time.perf_counter() - start
        return affine.inverse(out), seconds

    return Method(label, predict, (int(resolver.scale),), info)


# ---------------------------------------------------------------------------- core
def _lr_and_gt(sample: RGBDSample, scale: int,
               shipped: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The LR input, the GT it must reproduce and the GT validity, per the set's protocol."""
    if shipped:
        if scale not in sample.lr_inputs:
            raise DataError(sample.source, f'no shipped LR input for x{scale}')
        return sample.lr_inputs[scale], sample.depth, sample.valid
    height = sample.depth.shape[0] // scale * scale
    width = sample.depth.shape[1] // scale * scale
    gt = sample.depth[:height, :width]
    valid = sample.valid[:height, :width]
    if not valid.any():
        raise DataError(sample.source, 'no valid ground-truth pixel')
    from dsr_ros.inference import fill_invalid
    filled = fill_invalid(gt.astype(np.float32), valid)
    lr = degrade(filled, scale, round_to_uint8=sample.unit == 'disparity_8bit')
    return lr, gt, valid


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
        samples, errors = _read_scenes(dataset, data_root, names)
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
            lr, gt, valid = _lr_and_gt(sample, scale, protocol.shipped_lr)
            pred, seconds = method.predict(lr.astype(np.float32), sample, scale)
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {pred.shape} does not match GT {gt.shape}')
            if round_uint8 and sample.unit == 'disparity_8bit':
                pred = np.clip(np.rint(pred), 0, 255)
            pred_u = pred.astype(np.float64) * protocol.factor
            gt_u = gt.astype(np.float64) * protocol.factor
            entry = {'mad': mad(pred_u, gt_u, valid, protocol.crop),
                     'rmse': rmse(pred_u, gt_u, valid, protocol.crop),
                     'forward_s': seconds}
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
        write_outputs(results, methods, Path(out_dir), maps, protocol)
    return results


def _read_scenes(dataset: str, data_root: Optional[PathLike],
                 names: Optional[Sequence[str]]) -> Tuple[List[RGBDSample], Dict[str, str]]:
    """Read scene by scene so that one unreadable file costs one scene, reported by name."""
    spec: Dict[str, Any] = {'type': dataset}
    if data_root is not None:
        spec['root'] = os.fspath(data_root)
    if names:
        spec['names'] = list(names)
    samples, errors = [], {}
    for name in list_samples(spec):
        try:
            samples.extend(load_samples(dict(spec, names=[name])))
        except DataError as error:
            errors[name] = str(error)
            LOGGER.error('scene %s cannot be read: %s', name, error)
    return samples, errors


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------- outputs
def markdown_table(results: Dict[str, Any], metric: str = 'mad') -> str:
    """Table 1 of the paper: rows = methods, columns = scene x scale, then the mean per scale.

    A mean is printed only when the method has a value for every scene at that scale.
    """
    meta = results['_meta']
    scenes, scales = meta['scenes'], meta['scales']
    methods = [m for m in results if m not in ('errors', '_meta')]
    header = ['Method'] + [f'{s.capitalize()} x{k}' for s in scenes for k in scales]
    header += [f'Mean x{k}' for k in scales]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for method in methods:
        row = [method]
        per = results[method]
        for scene in scenes:
            for scale in scales:
                value = per.get(scene, {}).get(scale, {}).get(metric)
                row.append('' if value is None else f'{value:.3f}')
        for scale in scales:
            values = [per.get(s, {}).get(scale, {}).get(metric) for s in scenes]
            row.append(f'{np.mean(values):.3f}' if values and None not in values else '')
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def timing_lines(results: Dict[str, Any]) -> List[str]:
    """Mean forward time per image, per method and scale."""
    lines = []
    for method in (m for m in results if m not in ('errors', '_meta')):
        by_scale: Dict[int, List[float]] = {}
        for per_scale in results[method].values():
            for scale, entry in per_scale.items():
                by_scale.setdefault(int(scale), []).append(entry['forward_s'])
        parts = [f'x{k}: {np.mean(v) * 1e3:.1f} ms' for k, v in sorted(by_scale.items())]
        lines.append(f'{method}: forward time per image ' + ', '.join(parts))
    return lines


def write_outputs(results: Dict[str, Any], methods: Sequence[Method], out: Path,
                  maps: Dict[Tuple[str, str, int], np.ndarray], protocol: Protocol) -> None:
    """results.json, results.csv, table.md, error-map PNGs and overview.png under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    serial = {key: ({scene: {str(k): v for k, v in per.items()} for scene, per in value.items()}
                    if key not in ('errors', '_meta') else value)
              for key, value in results.items()}
    (out / 'results.json').write_text(json.dumps(serial, indent=2, sort_keys=False) + '\n')
    unit = results['_meta']['unit']
    with (out / 'results.csv').open('w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['method', 'scene', 'scale', 'mad', 'rmse', 'forward_s', 'unit'])
        for method in (m for m in results if m not in ('errors', '_meta')):
            for scene, per in results[method].items():
                for scale, entry in sorted(per.items()):
                    writer.writerow([method, scene, scale, f'{entry["mad"]:.6f}',
                                     f'{entry["rmse"]:.6f}', f'{entry["forward_s"]:.6f}', unit])
    dataset = results['_meta']['dataset']
    text = [f'MAD ({unit}), {dataset}', '', markdown_table(results, 'mad'), '',
            f'RMSE ({unit}), {dataset}', '', markdown_table(results, 'rmse'), '']
    text += timing_lines(results)
    if results['errors']:
        text += ['', 'Errors:'] + [f'- {k}: {v}' for k, v in results['errors'].items()]
    (out / 'table.md').write_text('\n'.join(text) + '\n')
    if maps:
        _save_maps(maps, out, protocol)


def _save_maps(maps: Dict[Tuple[str, str, int], np.ndarray], out: Path,
               protocol: Protocol) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    for (method, scene, scale), error in tqdm(maps.items(), desc='error maps', leave=False,
                                              disable=len(maps) < 8):
        folder = out / 'maps' / _safe(method)
        folder.mkdir(parents=True, exist_ok=True)
        plt.imsave(folder / f'{_safe(scene)}_x{scale}.png', error, cmap='inferno', vmin=0.0,
                   vmax=protocol.error_range)
    methods = sorted({m for m, _, _ in maps})
    scenes = list(dict.fromkeys(s for _, s, _ in maps))
    scales = sorted({k for _, _, k in maps})
    fig, axes = plt.subplots(len(scenes), len(methods) * len(scales), squeeze=False,
                             figsize=(2.2 * len(methods) * len(scales), 1.9 * len(scenes)))
    image = None
    for row, scene in enumerate(scenes):
        for m_index, method in enumerate(methods):
            for k_index, scale in enumerate(scales):
                axis = axes[row][m_index * len(scales) + k_index]
                axis.set_xticks([])
                axis.set_yticks([])
                error = maps.get((method, scene, scale))
                if error is not None:
                    step = max(1, max(error.shape) // 400)
                    image = axis.imshow(error[::step, ::step], cmap='inferno', vmin=0,
                                        vmax=protocol.error_range)
                if row == 0:
                    axis.set_title(f'{method} x{scale}', fontsize=8)
                if m_index == 0 and k_index == 0:
                    axis.set_ylabel(scene, fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label=f'|error| ({protocol.unit_label})')
    fig.savefig(out / 'overview.png', dpi=80)
    plt.close(fig)


def _safe(name: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)


# ---------------------------------------------------------------------------- training hook
_SCENE_CACHE: Dict[Tuple[str, str, Tuple[str, ...]], Tuple[List[RGBDSample], Dict]] = {}


def _cached_scenes(dataset: str, data_root: Optional[PathLike],
                   names: Optional[Sequence[str]]) -> Tuple[List[RGBDSample], Dict[str, str]]:
    key = (dataset, os.fspath(data_root) if data_root else '', tuple(names or ()))
    if key not in _SCENE_CACHE:
        _SCENE_CACHE[key] = _read_scenes(dataset, data_root, names)
    return _SCENE_CACHE[key]


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
    scale = method.scales[0]
    samples, read_errors = _cached_scenes(dataset, data_root, names)
    results = evaluate_methods([method], dataset, data_root, [scale], names, samples=samples,
                               progress=False)
    results['errors'].update(read_errors)
    results['_meta']['scenes'] += [n for n in read_errors if n not in results['_meta']['scenes']]
    return _summary(results, method.label, scale)


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
        method = evaluate_model_method(model, normalization, 'model', device, tile_size)
        scale = int(model.scale)
        samples, read_errors = _cached_scenes(dataset, data_root, names)
        results = evaluate_methods([method], dataset, data_root, [scale], names,
                                   samples=samples, progress=False)
    finally:
        model.train(was_training)
    results['errors'].update(read_errors)
    results['_meta']['scenes'] += [n for n in read_errors if n not in results['_meta']['scenes']]
    return _summary(results, method.label, scale)


# ---------------------------------------------------------------------------- CLI
def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point (see the module docstring); returns 0, or 1 when a scene failed."""
    parser = argparse.ArgumentParser(description='Evaluate depth SR methods, paper protocol.')
    parser.add_argument('--dataset', default='middlebury2005', choices=sorted(PROTOCOLS))
    parser.add_argument('--data-root', type=Path, default=None,
                        help='data set folder (default: its folder under ../shared/data)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 4, 8, 16])
    parser.add_argument('--method', nargs='*', default=None, choices=sorted(BASELINES),
                        help='baseline rows: bicubic (OpenCV, a = -0.75), bicubic_matlab '
                             '(a = -0.5, uint8: the paper\'s row); default: bicubic when no '
                             '--weights is given')
    parser.add_argument('--weights', type=Path, nargs='*', default=[],
                        help='DSRNet checkpoints; each fills the column of its own scale')
    parser.add_argument('--labels', nargs='*', default=None, help='row labels for --weights')
    parser.add_argument('--names', nargs='*', default=None, help='only these scenes')
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--tile-size', type=int, default=0,
                        help='LR tile edge for large inputs on small memory (0 = whole image)')
    parser.add_argument('--no-maps', action='store_true', help='skip error-map images')
    parser.add_argument('--round-uint8', action='store_true',
                        help='round every output to uint8 before MAD/RMSE on 8-bit data')
    parser.add_argument('--suite', choices=['paper', 'sensor'], default='paper',
                        help='paper: the data set protocol above; sensor: the real-sensor '
                             'suite of training.sensor_suite (every data set, every family)')
    parser.add_argument('--quick', action='store_true',
                        help='sensor suite on one small crop per data set (seconds)')
    parser.add_argument('--split', choices=['test', 'val'], default='test',
                        help='sensor suite frames: test (the reported numbers) or val (held-out '
                             'frames to choose recipes and checkpoints on)')
    parser.add_argument('--families', choices=('all', 'camera'), default='all',
                        help='sensor suite: every family, or the camera families (native and '
                             'decimated with the phase known, as the node runs them) and the '
                             'random phase')
    parser.add_argument('--seed', type=int, default=0,
                        help='sensor suite: seed of the drawn phases, noise and holes (0: the '
                             'reported numbers; others: the same families drawn afresh)')
    parser.add_argument('--scaling-tile', type=int, default=-1,
                        help='sensor suite: LR tile a range scaling is fitted over (-1: the '
                             "checkpoint's fit_tile, 0: whole frames)")
    parser.add_argument('--ensemble-passes', type=int, default=1, choices=ENSEMBLE_PASSES,
                        help='sensor suite: forward passes over flipped copies of each frame, '
                             'averaged (dsr_ros.self_ensemble; 1 = none)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    if args.labels is not None and len(args.labels) != len(args.weights):
        parser.error(f'--labels needs one label per --weights file ({len(args.weights)})')
    if args.suite == 'sensor':
        return _sensor_main(args, parser)
    baselines = args.method or ([] if args.weights else ['bicubic'])
    methods = [BASELINES[name]() for name in baselines]
    used = {m.label for m in methods}
    for index, path in enumerate(args.weights):
        label = args.labels[index] if args.labels else path.stem
        while label in used:
            label += "'"
        used.add(label)
        try:
            method = checkpoint_method(path, label, args.device, args.tile_size)
        except ValueError as error:  # CheckpointError is a ValueError
            print(f'evaluate: {error}', file=sys.stderr)
            return 2
        if method.scales[0] not in args.scales:
            LOGGER.warning('%s is a x%d model; adding that scale to the table', label,
                           method.scales[0])
            args.scales.append(method.scales[0])
        methods.append(method)
    results = evaluate_methods(methods, args.dataset, args.data_root, sorted(set(args.scales)),
                               args.names, args.out, save_maps=not args.no_maps,
                               round_uint8=args.round_uint8)
    unit = results['_meta']['unit']
    print(f'SR outputs before the errors: {results["_meta"]["sr_rounding"]}')
    primary = PROTOCOLS[args.dataset].primary
    for metric in (primary, 'rmse' if primary == 'mad' else 'mad'):
        print(f'\n{metric.upper()} ({unit}), {args.dataset}:\n')
        print(markdown_table(results, metric))
    print()
    for line in timing_lines(results):
        print(line)
    if results['errors']:
        print('\nErrors (not averaged in):')
        for key, message in results['errors'].items():
            print(f'  {key}: {message}')
    print(f'\nwrote {args.out}/results.json, results.csv, table.md'
          + ('' if args.no_maps else ', maps/, overview.png'))
    return 1 if results['errors'] else 0


def _sensor_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from training.data.readers import shared_data_root
    from training.sensor_suite import FAMILY_SETS, markdown_report, run_suite
    if not args.weights:
        parser.error('--suite sensor needs --weights (bicubic and nearest are always scored)')
    try:
        results = run_suite(args.weights, args.out, args.data_root or shared_data_root(),
                            args.labels, args.quick, args.device, split=args.split,
                            scaling_tile=args.scaling_tile,
                            ensemble_passes=args.ensemble_passes,
                            save_maps=not args.no_maps, seed=args.seed,
                            families=FAMILY_SETS[args.families])
    except ValueError as error:  # CheckpointError is a ValueError
        print(f'evaluate: {error}', file=sys.stderr)
        return 2
    print(markdown_report(results))
    print(f'wrote {args.out}/sensor.json, sensor.md'
          + ('' if args.no_maps else ', sensor_maps.png'))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
