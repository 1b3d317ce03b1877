"""Rank candidate models from sensor-suite runs on the validation split, by one fixed score.

    python -m training.evaluate --suite sensor --split val --weights A.pt B.pt --out runs/val
    python tools/rank_candidates.py runs/val/sensor.json [more.json ...] --out choice.md

Two fixed scores (``--score``):

* ``camera`` (the default, what the node's default models are chosen by): the mean over the
  families a camera produces (``training.sensor_suite.CAMERA_FAMILIES``: native ones with a
  centred footprint, and decimated ones with the phase known, as the node runs them from
  camera_info) of ``(SR MAD / baseline MAD + SR RMSE / bicubic RMSE) / 2``, the baseline being
  bicubic for native families and nearest for decimated ones (the camera issue's targets);
* ``balanced`` (the earlier choice): described below.

Why the balanced score: the real-sensor issue counts MAD against the better of bicubic and
nearest *and* RMSE against bicubic, family by family; an L1-trained net wins the first and
loses the second, an L2-trained one the reverse, so a choice between them needs one number
fixed before the candidates are seen. The score is the mean, over the ten families the suite
reports with the phase unknown (nine synthetic ones and the real frames), of
``(SR MAD / min(bicubic MAD, nearest MAD) + SR RMSE / bicubic RMSE) / 2``: lower is better,
1 is a baseline's level. The table beside it shows the issue's headline ratios. Use it on the
validation split only (``--split val``): a choice made on the test split is no test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

#: The families with the phase unknown: what the balanced score averages over.
FAMILIES = ('area', 'point', 'bilinear', 'cubic', 'aa_cubic', 'gaussian', 'area_tof',
            'point_sl', 'point_holes', 'real')
NOISY = ('area_tof', 'point_sl')


def _camera_families():
    """The suite's own lists (one definition), importable when run as a script too."""
    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from training.sensor_suite import CAMERA_FAMILIES, NATIVE_FAMILIES
    return CAMERA_FAMILIES, NATIVE_FAMILIES


def camera_terms(summary: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Per camera family: the MAD ratio against its baseline (bicubic for native families,
    nearest for decimated ones) and the RMSE ratio against bicubic."""
    families, native = _camera_families()
    missing = [f for f in families if f not in summary]
    if missing:
        raise ValueError(f'the run has no {missing} (a suite run from before the camera '
                         'families, or a model without a point alignment?)')
    return {f: {'mad': summary[f]['sr_over_bicubic_mad' if f in native
                                  else 'sr_over_nearest_mad'],
                'rmse': summary[f]['sr_over_bicubic_rmse']} for f in families}


def camera_score(summary: Dict[str, Dict[str, float]]) -> float:
    """Mean over the camera families of (MAD against its baseline + RMSE against bicubic)/2."""
    terms = camera_terms(summary)
    return sum((t['mad'] + t['rmse']) / 2 for t in terms.values()) / len(terms)


def camera_rows(paths: Sequence[Path]) -> List[Dict[str, object]]:
    """One row per model of the given ``sensor.json`` files, best camera score first."""
    _, native = _camera_families()
    rows = []
    for path in paths:
        for label, result in json.loads(Path(path).read_text())['results'].items():
            terms = camera_terms(result['summary'])
            groups = {'native': [t for f, t in terms.items() if f in native],
                      'decimated': [t for f, t in terms.items() if f not in native]}
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
              'SR RMSE / bicubic RMSE) / 2; lower is better (tools/rank_candidates.py).']
    return '\n'.join(lines) + '\n'


def balanced_score(summary: Dict[str, Dict[str, float]]) -> float:
    """Mean over :data:`FAMILIES` of (MAD against the better baseline + RMSE against bicubic)/2."""
    terms = [(max(summary[f]['sr_over_bicubic_mad'], summary[f]['sr_over_nearest_mad'])
              + summary[f]['sr_over_bicubic_rmse']) / 2 for f in FAMILIES]
    return sum(terms) / len(terms)


def candidate_rows(paths: Sequence[Path]) -> List[Dict[str, object]]:
    """One row per model in the given ``sensor.json`` files, best score first."""
    rows = []
    for path in paths:
        for label, result in json.loads(Path(path).read_text())['results'].items():
            summary = result['summary']
            missing = [f for f in FAMILIES if f not in summary]
            if missing:
                raise ValueError(f'{path}: {label} has no {missing} (not a sensor-suite run?)')
            rmse = {f: summary[f]['sr_over_bicubic_rmse'] for f in FAMILIES}
            worst = max(rmse, key=rmse.get)
            rows.append({
                'label': label, 'source': str(path), 'score': balanced_score(summary),
                'area': summary['area']['sr_over_bicubic_mad'],
                'point': summary['point']['sr_over_nearest_mad'],
                'real': summary['real']['sr_over_nearest_mad'],
                'noisy': sum(summary[f]['sr_over_bicubic_mad'] for f in NOISY) / len(NOISY),
                'mean_rmse': sum(rmse.values()) / len(rmse), 'worst_rmse': (rmse[worst], worst),
                'beats_both_mad': sum(summary[f]['sr_over_bicubic_mad'] < 1
                                      and summary[f]['sr_over_nearest_mad'] < 1
                                      for f in FAMILIES),
                'beats_bicubic_rmse': sum(v < 1 for v in rmse.values())})
    return sorted(rows, key=lambda row: row['score'])


def markdown(rows: Sequence[Dict[str, object]]) -> str:
    """The ranking as a Markdown table."""
    lines = ['| model | score | area: SR/bicubic MAD | point: SR/nearest MAD | '
             'real: SR/nearest MAD | noisy: SR/bicubic MAD | mean SR/bicubic RMSE | '
             'worst SR/bicubic RMSE | MAD beats both | RMSE beats bicubic | source |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        worst, family = row['worst_rmse']
        lines.append(f"| {row['label']} | {row['score']:.4f} | {row['area']:.3f} | "
                     f"{row['point']:.3f} | {row['real']:.3f} | {row['noisy']:.3f} | "
                     f"{row['mean_rmse']:.3f} | {worst:.3f} ({family}) | "
                     f"{row['beats_both_mad']} of {len(FAMILIES)} | "
                     f"{row['beats_bicubic_rmse']} of {len(FAMILIES)} | {row['source']} |")
    lines.append('')
    lines.append('score: mean over the ten families of (SR MAD / better baseline MAD + '
                 'SR RMSE / bicubic RMSE) / 2; lower is better (tools/rank_candidates.py).')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('sensor_json', nargs='+', type=Path,
                        help='sensor.json of validation-split suite runs')
    parser.add_argument('--out', type=Path, default=None, help='Markdown file to write')
    parser.add_argument('--score', choices=('camera', 'balanced'), default='camera',
                        help='camera (default): the families cameras produce, as the node runs '
                             'them; balanced: the random-phase families of earlier choices')
    args = parser.parse_args(argv)
    try:
        text = (camera_markdown(camera_rows(args.sensor_json)) if args.score == 'camera'
                else markdown(candidate_rows(args.sensor_json)))
    except (OSError, ValueError, KeyError) as error:
        print(f'rank_candidates: {error}', file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(text)
    print(text, end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
