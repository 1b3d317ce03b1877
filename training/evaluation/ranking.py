"""Rank candidate models from sensor-suite runs on the validation split, by one fixed score.

    python -m training.evaluation sensor --split val --weights A.pt B.pt --out runs/val
    python -m training.evaluation rank runs/val/sensor.json [more.json ...] --out choice.md

Two fixed scores (``--score``):

* ``camera`` (the default, what the node's default models are chosen by): the mean over the
  families a camera produces (:data:`~training.evaluation.families.CAMERA_FAMILIES`: native
  ones with a centred footprint, and decimated ones with the phase known, as the node runs them
  from camera_info) of ``(SR MAD / baseline MAD + SR RMSE / bicubic RMSE) / 2``, the baseline
  being bicubic for native families and nearest for decimated ones (the camera issue's targets);
* ``balanced`` (the earlier choice): described below.

Why the balanced score: the real-sensor issue counts MAD against the better of bicubic and
nearest *and* RMSE against bicubic, family by family; an L1-trained net wins the first and
loses the second, an L2-trained one the reverse, so a choice between them needs one number
fixed before the candidates are seen. The score is the mean, over the ten families the suite
reports with the phase unknown (nine synthetic ones and the real frames,
:data:`~training.evaluation.families.PHASE_UNKNOWN_FAMILIES`), of
``(SR MAD / min(bicubic MAD, nearest MAD) + SR RMSE / bicubic RMSE) / 2``: lower is better,
1 is a baseline's level. The table beside it shows the issue's headline ratios. Use it on the
validation split only (``--split val``): a choice made on the test split is no test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

from training.evaluation.families import (CAMERA_FAMILIES, NATIVE_FAMILIES, NOISY_FAMILIES,
                                          PHASE_UNKNOWN_FAMILIES)

__all__ = ['balanced_score', 'camera_markdown', 'camera_rows', 'camera_score', 'camera_terms',
           'candidate_rows', 'markdown']

#: Where a table's footnote says the score comes from.
COMMAND = 'python -m training.evaluation rank'


def camera_terms(summary: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Per camera family: the MAD ratio against its baseline (bicubic for native families,
    nearest for decimated ones) and the RMSE ratio against bicubic."""
    missing = [f for f in CAMERA_FAMILIES if f not in summary]
    if missing:
        raise ValueError(f'the run has no {missing} (a suite run from before the camera '
                         'families, or a model without a point alignment?)')
    return {f: {'mad': summary[f]['sr_over_bicubic_mad' if f in NATIVE_FAMILIES
                                  else 'sr_over_nearest_mad'],
                'rmse': summary[f]['sr_over_bicubic_rmse']} for f in CAMERA_FAMILIES}


def camera_score(summary: Dict[str, Dict[str, float]]) -> float:
    """Mean over the camera families of (MAD against its baseline + RMSE against bicubic)/2."""
    terms = camera_terms(summary)
    return sum((t['mad'] + t['rmse']) / 2 for t in terms.values()) / len(terms)


def _results(paths: Sequence[Path]):
    """``(path, label, result)`` of every model in the given ``sensor.json`` files."""
    for path in paths:
        for label, result in json.loads(Path(path).read_text())['results'].items():
            yield path, label, result


def camera_rows(paths: Sequence[Path]) -> List[Dict[str, object]]:
    """One row per model of the given ``sensor.json`` files, best camera score first."""
    rows = []
    for path, label, result in _results(paths):
        terms = camera_terms(result['summary'])
        groups = {'native': [t for f, t in terms.items() if f in NATIVE_FAMILIES],
                  'decimated': [t for f, t in terms.items() if f not in NATIVE_FAMILIES]}
        row: Dict[str, object] = {'label': label, 'source': str(path),
                                  'score': camera_score(result['summary'])}
        for group, items in groups.items():
            for stat in ('mad', 'rmse'):
                row[f'{group}_{stat}'] = sum(t[stat] for t in items) / len(items)
        rows.append(row)
    return sorted(rows, key=lambda row: row['score'])


def camera_markdown(rows: Sequence[Dict[str, object]]) -> str:
    """The camera ranking as a Markdown table."""
    lines = ['| model | camera score | native: SR/bicubic MAD | native: SR/bicubic RMSE | '
             'decimated, phase known: SR/nearest MAD | decimated: SR/bicubic RMSE | source |',
             '|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append(f"| {row['label']} | {row['score']:.4f} | {row['native_mad']:.3f} | "
                     f"{row['native_rmse']:.3f} | {row['decimated_mad']:.3f} | "
                     f"{row['decimated_rmse']:.3f} | {row['source']} |")
    lines += ['', 'camera score: mean over the camera families (native: bicubic baseline; '
              'decimated with the phase known: nearest baseline) of (SR MAD / baseline MAD + '
              f'SR RMSE / bicubic RMSE) / 2; lower is better ({COMMAND}).']
    return '\n'.join(lines) + '\n'


def balanced_score(summary: Dict[str, Dict[str, float]]) -> float:
    """Mean over the phase-unknown families of (MAD against the better baseline + RMSE against
    bicubic) / 2."""
    terms = [(max(summary[f]['sr_over_bicubic_mad'], summary[f]['sr_over_nearest_mad'])
              + summary[f]['sr_over_bicubic_rmse']) / 2 for f in PHASE_UNKNOWN_FAMILIES]
    return sum(terms) / len(terms)


def candidate_rows(paths: Sequence[Path]) -> List[Dict[str, object]]:
    """One row per model in the given ``sensor.json`` files, best balanced score first."""
    rows = []
    families = PHASE_UNKNOWN_FAMILIES
    for path, label, result in _results(paths):
        summary = result['summary']
        missing = [f for f in families if f not in summary]
        if missing:
            raise ValueError(f'{path}: {label} has no {missing} (not a sensor-suite run?)')
        rmse = {f: summary[f]['sr_over_bicubic_rmse'] for f in families}
        worst = max(rmse, key=rmse.get)
        rows.append({
            'label': label, 'source': str(path), 'score': balanced_score(summary),
            'area': summary['area']['sr_over_bicubic_mad'],
            'point': summary['point']['sr_over_nearest_mad'],
            'real': summary['real']['sr_over_nearest_mad'],
            'noisy': (sum(summary[f]['sr_over_bicubic_mad'] for f in NOISY_FAMILIES)
                      / len(NOISY_FAMILIES)),
            'mean_rmse': sum(rmse.values()) / len(rmse), 'worst_rmse': (rmse[worst], worst),
            'beats_both_mad': sum(summary[f]['sr_over_bicubic_mad'] < 1
                                  and summary[f]['sr_over_nearest_mad'] < 1
                                  for f in families),
            'beats_bicubic_rmse': sum(v < 1 for v in rmse.values())})
    return sorted(rows, key=lambda row: row['score'])


def markdown(rows: Sequence[Dict[str, object]]) -> str:
    """The balanced ranking as a Markdown table."""
    count = len(PHASE_UNKNOWN_FAMILIES)
    lines = ['| model | score | area: SR/bicubic MAD | point: SR/nearest MAD | '
             'real: SR/nearest MAD | noisy: SR/bicubic MAD | mean SR/bicubic RMSE | '
             'worst SR/bicubic RMSE | MAD beats both | RMSE beats bicubic | source |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        worst, family = row['worst_rmse']
        lines.append(f"| {row['label']} | {row['score']:.4f} | {row['area']:.3f} | "
                     f"{row['point']:.3f} | {row['real']:.3f} | {row['noisy']:.3f} | "
                     f"{row['mean_rmse']:.3f} | {worst:.3f} ({family}) | "
                     f"{row['beats_both_mad']} of {count} | "
                     f"{row['beats_bicubic_rmse']} of {count} | {row['source']} |")
    lines.append('')
    lines.append('score: mean over the ten families of (SR MAD / better baseline MAD + '
                 f'SR RMSE / bicubic RMSE) / 2; lower is better ({COMMAND}).')
    return '\n'.join(lines) + '\n'
