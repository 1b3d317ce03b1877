"""Quality numbers of the Pareto table, from the repository's own evaluation commands.

* real-sensor suite: ``python -m training.evaluation sensor`` writes ``sensor.json``;
  per family the SR/bicubic and SR/nearest ratios of MAD and RMSE (< 1: SR is better);
* Middlebury 2005 x4 (paper protocol): ``python -m training.evaluation paper --dataset
  middlebury2005 --scales 4`` writes ``results.json``; the six-scene mean MAD on the 0-255 scale.

Either given as files from an earlier run, or run here as subprocesses (the commands a user
would type), so the numbers in the table are exactly those the commands produce. Rows are
matched to models by label (``--labels`` of the evaluation) or, for the sensor suite, by
checkpoint path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ['RATIOS', 'middlebury_mad', 'run_middlebury', 'run_sensor_suite', 'sensor_ratios']

REPO = Path(__file__).resolve().parents[1]
#: The sensor suite's per-family ratios, as named in sensor.json.
RATIOS = ('sr_over_bicubic_mad', 'sr_over_nearest_mad', 'sr_over_bicubic_rmse',
          'sr_over_nearest_rmse')
BICUBIC_LABEL = 'Bicubic'


def _evaluate(args: List[str], log_path: Path) -> Optional[str]:
    """Run ``python -m training.evaluation ARGS``; None on success, else the reason."""
    command = [sys.executable, '-m', 'training.evaluation', *args]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, 'w', encoding='utf-8') as log:
        result = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        return f'{" ".join(command[1:])} exited with {result.returncode}; see {log_path}'
    return None


def run_sensor_suite(weights: Sequence[str], labels: Sequence[str], out: Path,
                     quick: bool = False) -> Path:
    """The real-sensor suite on every checkpoint; returns the path of its ``sensor.json``."""
    args = ['sensor', '--weights', *weights, '--labels', *labels, '--out', str(out)]
    failure = _evaluate(args + (['--quick'] if quick else []), out / 'evaluate.log')
    if failure:
        raise RuntimeError(failure)
    return out / 'sensor.json'


def run_middlebury(weights: Sequence[str], labels: Sequence[str], out: Path) -> Path:
    """Middlebury 2005 x4 with bicubic; returns the path of its ``results.json``."""
    args = ['paper', '--dataset', 'middlebury2005', '--scales', '4', '--method', 'bicubic',
            '--weights', *weights, '--labels', *labels, '--no-maps', '--out', str(out)]
    failure = _evaluate(args, out / 'evaluate.log')
    if failure:
        raise RuntimeError(failure)
    return out / 'results.json'


def sensor_ratios(path: Path, label: str, weights: str) -> Optional[Dict[str, Any]]:
    """``{family: {ratio: value}}`` of one model in a ``sensor.json``, None if absent."""
    results = json.loads(Path(path).read_text())['results']
    entry = results.get(label)
    if entry is None:
        wanted = os.path.realpath(weights)
        entry = next((e for e in results.values()
                      if os.path.realpath(e.get('weights', '')) == wanted), None)
    if entry is None:
        return None
    return {family: {ratio: float(values[ratio]) for ratio in RATIOS}
            for family, values in entry['summary'].items()}


def middlebury_mad(path: Path, label: str, scale: int = 4) -> Optional[float]:
    """Six-scene mean MAD at ``scale`` of one row of a ``results.json``, None if incomplete."""
    results = json.loads(Path(path).read_text())
    rows = results.get(label)
    if not isinstance(rows, dict):
        return None
    values = [scenes[str(scale)]['mad'] for scene, scenes in rows.items()
              if isinstance(scenes, dict) and str(scale) in scenes]
    if len(values) != 6:  # a missing scene would bias the mean; evaluate leaves it empty too
        return None
    return float(sum(values) / len(values))
