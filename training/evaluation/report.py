"""Tables and files of the runs: the paper's table and outputs, the sensor suite's Markdown.

Figures are :mod:`training.evaluation.figures`; the ranking of candidates is
:mod:`training.evaluation.ranking`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from training.evaluation.methods import METHODS
from training.evaluation.protocols import Protocol

__all__ = ['markdown_report', 'markdown_table', 'timing_lines', 'write_outputs']


# ---------------------------------------------------------------------------- paper protocol
def _method_labels(results: Dict[str, Any]) -> List[str]:
    return [m for m in results if m not in ('errors', '_meta')]


def markdown_table(results: Dict[str, Any], metric: str = 'mad') -> str:
    """Table 1 of the paper: rows = methods, columns = scene x scale, then the mean per scale.

    A mean is printed only when the method has a value for every scene at that scale.
    """
    meta = results['_meta']
    scenes, scales = meta['scenes'], meta['scales']
    header = ['Method'] + [f'{s.capitalize()} x{k}' for s in scenes for k in scales]
    header += [f'Mean x{k}' for k in scales]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for method in _method_labels(results):
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
    for method in _method_labels(results):
        by_scale: Dict[int, List[float]] = {}
        for per_scale in results[method].values():
            for scale, entry in per_scale.items():
                by_scale.setdefault(int(scale), []).append(entry['forward_s'])
        parts = [f'x{k}: {np.mean(v) * 1e3:.1f} ms' for k, v in sorted(by_scale.items())]
        lines.append(f'{method}: forward time per image ' + ', '.join(parts))
    return lines


def write_outputs(results: Dict[str, Any], out: Path,
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
        for method in _method_labels(results):
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
        from training.evaluation.figures import save_error_maps
        save_error_maps(maps, out, protocol)


# ---------------------------------------------------------------------------- sensor suite
def markdown_report(results: Dict[str, Dict[str, Any]]) -> str:
    """One table per model: a row per family with the ratios (< 1: SR better) and errors."""
    lines = []
    for label, result in results.items():
        passes = result.get('ensemble_passes', 1)
        seed = result.get('seed', 0)
        notes = (', quick' if result['quick'] else '') + (
            f', {passes}-pass self-ensemble' if passes > 1 else '') + (
            f', seed {seed}' if seed else '')
        lines += [f'### {label} (x{result["scale"]}{notes})', '',
                  '| family | data sets | SR/bicubic MAD | SR/nearest MAD | SR/bicubic RMSE | '
                  'SR/nearest RMSE | SR MAD mm | bicubic MAD mm | nearest MAD mm | '
                  'validity changed |',
                  '|---|---|---|---|---|---|---|---|---|---|']
        for family, entry in result['summary'].items():
            datasets = entry['datasets']
            mean = {m: np.mean([d[m]['mad'] for d in datasets.values()]) for m in METHODS}
            changed = sum(d['became_valid'] + d['became_invalid'] for d in datasets.values())
            lines.append(
                f'| {family} | {", ".join(datasets)} | {entry["sr_over_bicubic_mad"]:.3f} | '
                f'{entry["sr_over_nearest_mad"]:.3f} | {entry["sr_over_bicubic_rmse"]:.3f} | '
                f'{entry["sr_over_nearest_rmse"]:.3f} | {mean["sr"]:.2f} | '
                f'{mean["bicubic"]:.2f} | {mean["nearest"]:.2f} | {changed} |')
        near = [d.get('near_hole_ratio') for e in result['summary'].values()
                for d in e['datasets'].values() if d.get('near_hole_ratio') is not None]
        lines.append('')
        if near:
            lines.append(f'Error within 4 px of holes / same pixels without holes: '
                         f'{np.mean(near):.3f} (mean over data sets).')
        for name, values in result['stability'].items():
            lines.append(f'Frame-to-frame flicker on {name} (mean |e_t - e_t-1|, mm): ' +
                         ', '.join(f'{m} {v:.2f}' for m, v in values.items()))
        lines.append('')
    return '\n'.join(lines)
