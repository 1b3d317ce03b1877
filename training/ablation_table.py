"""The fair ablation's table: score every exported arm, compare it with DSRNet alone, write it.

Scores (lower is better):

- ``middlebury2005``: mean MAD (0-255) over the six Middlebury 2005 test scenes at the
  table's scale, the paper's protocol (:func:`training.evaluation.paper.evaluate_checkpoint`);
  NYUv2 RMSE (cm) beside it when the samples are present.
- ``sensor_val``: the sensor suite's fixed validation score (:mod:`training.evaluation.ranking`:
  mean over ten families of (MAD against the better baseline + RMSE against bicubic) / 2) on
  the validation split; 1 is a baseline's level. The same score on the test split is reported
  beside it (``test_score``, its own table) and never used for the verdict.

Per arm: every seed, mean +- sample std (ddof 1); per cross-task arm, the paired differences
against the reference arm seed by seed (arm - reference: negative is better), their mean +-
std, the relative gain of the means, and the issue's test: a gain of at least 5 % *and* a mean
paired difference larger than 2 std of the paired differences. Scores are cached beside each
net (``scores.json``, keyed by the file's SHA-256), so collecting again costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

__all__ = ['GAIN_REQUIRED', 'SIGMAS_REQUIRED', 'build_table', 'compare', 'markdown',
           'score_weights', 'write_table']

REPO = Path(__file__).resolve().parents[1]
#: The issue's "done when": at least 5 % better on average, and beyond 2 std of the paired
#: differences.
GAIN_REQUIRED = 0.05
SIGMAS_REQUIRED = 2.0
METRIC_NAMES = {'middlebury2005': 'Middlebury MAD (0-255)', 'sensor_val': 'sensor validation '
                'score (1 = baseline level)'}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def score_weights(weights: Path, metric: str, quick: bool = False,
                  data_root: Optional[Path] = None) -> Dict[str, Any]:
    """Score one exported net (cached in ``scores.json`` beside it); ``score`` None + ``error``
    when the benchmark data are missing."""
    weights = Path(weights)
    cache = weights.parent / 'scores.json'
    digest = _sha256(weights)
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get('sha256') == digest and cached.get('quick') == quick:
            return cached
    try:
        result = _SCORERS[metric](weights, quick, data_root)
    except (OSError, ValueError) as error:
        result = {'score': None, 'error': f'{type(error).__name__}: {error}'}
    result.update(sha256=digest, quick=quick, metric=metric)
    if result.get('score') is not None:
        cache.write_text(json.dumps(result, indent=1) + '\n')
    return result


def _middlebury(weights: Path, quick: bool, data_root: Optional[Path]) -> Dict[str, Any]:
    from training.evaluation.paper import evaluate_checkpoint
    root = None if data_root is None else data_root / 'middlebury2005_sun'
    names = ['art'] if quick else None
    scores = evaluate_checkpoint(weights, 'middlebury2005', data_root=root, names=names)
    if scores['mean_mad'] is None:
        raise ValueError(f'Middlebury 2005 not scored: {scores["errors"]}')
    result = {'score': float(scores['mean_mad']), 'mad': scores['mad']}
    try:
        nyu_root = None if data_root is None else data_root / 'nyuv2_test_subset'
        nyu = evaluate_checkpoint(weights, 'nyuv2', data_root=nyu_root)
        result['nyuv2_rmse_cm'] = nyu['mean_rmse']
    except (OSError, ValueError):
        result['nyuv2_rmse_cm'] = None
    return result


def _sensor_val(weights: Path, quick: bool, data_root: Optional[Path]) -> Dict[str, Any]:
    from training.data.readers import shared_data_root
    from training.evaluation.families import PHASE_UNKNOWN_FAMILIES
    from training.evaluation.ranking import balanced_score
    from training.evaluation.sensor import run_suite
    root = data_root or shared_data_root()
    result: Dict[str, Any] = {}
    for split, key, families in (('val', 'score', 'families'),
                                 ('test', 'test_score', 'test_families')):
        suite = run_suite([weights], weights.parent / f'sensor_{split}', root, labels=['net'],
                          quick=quick, progress=False, split=split, save_maps=False)
        summary = suite['net']['summary']
        missing = [family for family in PHASE_UNKNOWN_FAMILIES if family not in summary]
        if missing:
            raise ValueError(f'the {split} split has no {missing} family')
        result[key] = float(balanced_score(summary))
        result[families] = {f: {k: v for k, v in summary[f].items() if k.startswith('sr_')}
                            for f in PHASE_UNKNOWN_FAMILIES}
    return result


_SCORERS: Dict[str, Callable[[Path, bool, Optional[Path]], Dict[str, Any]]] = {
    'middlebury2005': _middlebury, 'sensor_val': _sensor_val}


def _std(values: Sequence[float]) -> Optional[float]:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def compare(arm: Dict[int, float], reference: Dict[int, float]) -> Dict[str, Any]:
    """Paired comparison of an arm with the reference over the seeds both have."""
    seeds = sorted(set(arm) & set(reference))
    diffs = [arm[s] - reference[s] for s in seeds]
    result: Dict[str, Any] = {'seeds': seeds, 'differences': diffs}
    if not seeds:
        return result
    mean_diff = float(np.mean(diffs))
    std_diff = _std(diffs)
    ref_mean = float(np.mean([reference[s] for s in seeds]))
    gain = -mean_diff / ref_mean if ref_mean else math.nan
    result.update(mean=mean_diff, std=std_diff, gain=gain)
    if std_diff is not None:
        result['sigmas'] = (-mean_diff / std_diff) if std_diff > 0 else \
            (math.inf if mean_diff < 0 else 0.0)
        result['passes'] = bool(gain >= GAIN_REQUIRED and result['sigmas'] > SIGMAS_REQUIRED)
    return result


def build_table(name: str, metric: str, arms: Dict[str, Dict[int, Dict[str, Any]]],
                reference: str, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The table of ``arms`` (arm -> seed -> record with ``score`` or ``refused``)."""
    table: Dict[str, Any] = {'table': name, 'metric': metric,
                             'metric_name': METRIC_NAMES.get(metric, metric),
                             'reference': reference, 'gain_required': GAIN_REQUIRED,
                             'sigmas_required': SIGMAS_REQUIRED,
                             'std': 'sample standard deviation over seeds (ddof=1)',
                             'arms': {}, **(extra or {})}
    scores = _scores(arms, 'score')
    beside = _scores(arms, 'test_score')
    for arm, seeds in arms.items():
        entry = {'per_seed': {str(seed): rec for seed, rec in sorted(seeds.items())},
                 **_summary(arm, scores, reference)}
        if any(beside.values()):
            entry['test'] = _summary(arm, beside, reference)
        table['arms'][arm] = entry
    return table


def _scores(arms: Dict[str, Dict[int, Dict[str, Any]]], key: str
            ) -> Dict[str, Dict[int, float]]:
    return {arm: {seed: rec[key] for seed, rec in seeds.items() if rec.get(key) is not None}
            for arm, seeds in arms.items()}


def _summary(arm: str, scores: Dict[str, Dict[int, float]], reference: str) -> Dict[str, Any]:
    """Mean +- std of one arm's scores and, but for the reference, its paired comparison."""
    values = list(scores[arm].values())
    summary = {'mean': float(np.mean(values)) if values else None, 'std': _std(values)}
    if arm != reference and reference in scores:
        summary['paired'] = compare(scores[arm], scores[reference])
    return summary


def write_table(table: Dict[str, Any], out: Path) -> None:
    """``table.json`` and ``table.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / 'table.json').write_text(json.dumps(table, indent=1, default=_json) + '\n')
    (out / 'table.md').write_text(markdown(table) + '\n')


def _json(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f'not JSON: {type(value)}')


def _num(value: Optional[float], digits: int = 4) -> str:
    return '' if value is None or not math.isfinite(value) else f'{value:.{digits}f}'


def markdown(table: Dict[str, Any]) -> str:
    """Per-seed scores, mean +- std, paired differences and the verdict of every arm (and the
    test split's, when the records have it, as a second table beside)."""
    seeds = sorted({int(s) for entry in table['arms'].values() for s in entry['per_seed']})
    notes: List[str] = []
    lines = [f'## {table["table"]}: {table["metric_name"]}, lower is better', '',
             *_score_rows(table, seeds, 'score', notes)]
    lines += ['', f'Verdict: gain >= {table["gain_required"]:.0%} of the reference\'s mean and a '
              f'mean paired difference beyond {table["sigmas_required"]:g} std of the paired '
              'differences (negative differences are better). std: ' + table['std'] + '.']
    if any('test' in entry for entry in table['arms'].values()):
        lines += ['', '### The same score on the test split (reported beside it, never used to '
                  'decide)', '', *_score_rows(table, seeds, 'test_score', [])]
    if notes:
        lines += ['', 'Refused:', *notes]
    for key, title in (('stage1', 'Stage 1 against the bicubic base (held-out patches)'),
                       ('budget', 'Budget per run (DSRNet)')):
        if table.get(key):
            lines += ['', f'{title}:', '', '```', json.dumps(table[key], indent=1,
                                                             default=_json), '```']
    return '\n'.join(lines)


def _score_rows(table: Dict[str, Any], seeds: Sequence[int], key: str,
                notes: List[str]) -> List[str]:
    """The Markdown table of one score (``score`` or ``test_score``); refusals go to notes."""
    lines = ['| arm | ' + ' | '.join(f'seed {s}' for s in seeds)
             + f' | mean +- std | paired diff vs {table["reference"]} | gain | verdict |',
             '|---|' + '---|' * (len(seeds) + 4)]
    for arm, arm_entry in table['arms'].items():
        entry = arm_entry if key == 'score' else arm_entry.get('test', {})
        cells = []
        for seed in seeds:
            record = arm_entry['per_seed'].get(str(seed), {})
            if record.get('refused'):
                cells.append('refused')
                notes.append(f'- {arm} seed {seed}: {record["refused"]}')
            elif record.get(key) is not None:
                cells.append(_num(record[key]))
            else:
                cells.append('n/a' if not record else f'n/a ({record.get("error", "")[:40]})')
        mean = '' if entry.get('mean') is None else _num(entry['mean']) + (
            f' +- {_num(entry["std"])}' if entry['std'] is not None else '')
        paired = entry.get('paired', {})
        diff, gain, verdict = '', '', ''
        if paired.get('mean') is not None:
            diff = _num(paired['mean']) + (f' +- {_num(paired["std"])}'
                                           if paired.get('std') is not None else '')
            gain = f'{paired["gain"]:.1%}'
            verdict = ('' if 'passes' not in paired else
                       ('passes' if paired['passes'] else 'does not pass')
                       + f' ({paired["sigmas"]:.1f} std)')
        lines.append(f'| {arm} | ' + ' | '.join(cells) + f' | {mean} | {diff} | {gain} | '
                     f'{verdict} |')
    return lines
