"""Run the x8 ablation of issue 12 arm by arm (resumable) and collect its table.

    python tools/run_ablation.py all                       # everything below, in order
    python tools/run_ablation.py stage1 --seed 0           # the shared stage 1 of seed 0
    python tools/run_ablation.py arm full --seed 0         # one arm (forks from its stage 1)
    python tools/run_ablation.py collect                   # evaluate and write the table

Arms (training/configs/ablation_x8_<arm>.yaml): the paper's Table 4 rows ``dsr_only``, ``lo``,
``la``, ``lo_la``, ``full`` with seed 0, and the two main arms ``dsr_only`` and ``full`` with
seeds 0, 1, 2. Every arm of seed k forks from ``RUNS/stage1/seed<k>/stage1_end.pt`` and is run
with ``--resume``, so re-running a command continues where a killed one stopped. Each finished
arm's final DSRNet is exported to ``RESULTS/<arm>/seed<k>/dsrnet.pt``. ``collect`` scores every
exported net on Middlebury 2005 x8 (MAD, 0-255) and the NYUv2 samples x8 (RMSE, cm), and writes
``ablation.json``, ``ablation.csv`` (one row per arm and seed), ``table.md`` (mean +- sample
standard deviation over seeds) and ``ablation.png`` under RESULTS, with each arm's stage-2
loss terms (raw and share of the task loss) and roles from its ``history.csv``.

``--set KEY=VALUE`` is passed to every training run (e.g. a tiny smoke run of the whole driver:
``--set schedule.stage1_epochs=1 --set schedule.stage2_epochs=1 --set data.patches_per_epoch=16``).

No arm forks from a stage 1 whose DSRNet did not beat the bicubic base on the held-out patches
by ``--stage1-margin`` (default 5 %; :func:`training.stall.stage1_problem`): the driver stops
with the numbers (exit 2). The fair ablation of issue 28 is ``python -m training.ablation``.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: training/ is beside tools/
    sys.path.insert(0, str(REPO))
CONFIGS = REPO / 'training' / 'configs'
from training.ablation import train_command  # noqa: E402 - after the sys.path line
#: Arm -> seeds (the Table 4 rows once, the two main arms three times).
ARMS: Dict[str, Sequence[int]] = {'dsr_only': (0, 1, 2), 'lo': (0,), 'la': (0,),
                                  'lo_la': (0,), 'full': (0, 1, 2)}
#: Item 4's last sentence: the two main arms with stage 2 on the real-sensor degradation
#: (ablation_x8_sensor_*.yaml), scored on the real-sensor suite at x8, not the research protocol.
SENSOR_ARMS: Dict[str, Sequence[int]] = {'sensor_dsr_only': (0,), 'sensor_full': (0,)}
LABELS = {'dsr_only': 'DSRNet alone', 'lo': '+ L_O', 'la': '+ L_A', 'lo_la': '+ L_O + L_A',
          'full': '+ L_O + L_A + SPNet (full)', 'full_gated': 'full, L_O gated by teacher',
          'sensor_dsr_only': 'DSRNet alone, sensor degradation',
          'sensor_full': 'full, sensor degradation'}
#: Table 4 of the paper (method.md): Middlebury x8 MAD / NYUv2 x8 RMSE.
PAPER_TABLE4 = {'dsr_only': (0.398, 3.13), 'lo': (0.377, 2.88), 'la': (0.384, 2.93),
                'lo_la': (0.372, 2.85), 'full': (0.356, 2.75)}
DATASETS = {'middlebury2005': 'mad', 'nyuv2': 'rmse'}


def _run(command: List[str], dry_run: bool) -> None:
    print('$ ' + ' '.join(command), flush=True)
    if not dry_run:
        subprocess.run(command, cwd=REPO, check=True)


class Stage1Refused(RuntimeError):
    """The shared stage 1 did not beat the bicubic base by the margin."""


def run_stage1(runs: Path, seed: int, overrides: Sequence[str], dry_run: bool = False,
               margin: float = 0.05) -> Path:
    """Train (or finish) the shared stage 1 of ``seed``; return its ``stage1_end.pt``.

    Refuses (:class:`Stage1Refused`) a stage 1 that did not beat the bicubic base by
    ``margin`` on the held-out patches: arms forked from a stuck DSRNet measure the stall.
    """
    from training.stall import read_history, stage1_problem
    out = runs / 'stage1' / f'seed{seed}'
    state = out / 'stage1_end.pt'
    if not state.exists():
        # Whatever the overrides say, the shared run stops at the end of stage 1.
        _run(train_command('ablation_x8_stage1', out, seed,
                           [*overrides, 'schedule.stage2_epochs=0']), dry_run)
    if not dry_run:
        problem = stage1_problem(read_history(out / 'history.csv'), margin)
        if problem:
            raise Stage1Refused(f'{out}: {problem}')
    return state


def run_arm(arm: str, seed: int, runs: Path, results: Path, overrides: Sequence[str],
            dry_run: bool = False, margin: float = 0.05) -> Path:
    """Stage 2 of one arm from its seed's stage-1 state, then export its final DSRNet."""
    start = run_stage1(runs, seed, overrides, dry_run, margin)
    out = runs / arm / f'seed{seed}'
    _run(train_command(f'ablation_x8_{arm}', out, seed, overrides, start), dry_run)
    target = results / arm / f'seed{seed}' / 'dsrnet.pt'
    _run([sys.executable, '-m', 'training.export', '--run', str(out), '--which', 'final',
          '--out', str(target)], dry_run)
    return target


def stage2_summary(history: Path) -> Dict[str, Any]:
    """Mean stage-2 loss terms and shares of one run, and its roles, from ``history.csv``."""
    if not history.is_file():
        return {}
    with history.open(newline='') as handle:
        rows = [r for r in csv.DictReader(handle) if r.get('stage') == '2']
    keys = sorted({k for r in rows for k in r if k.startswith(('l_', 'share_')) and r[k]})
    return {'epochs': len(rows), 'roles': sorted({r['role'] for r in rows}),
            'terms': {k: float(np.mean([float(r[k]) for r in rows if r.get(k)])) for k in keys}}


def collect(runs: Path, results: Path, datasets: Sequence[str] = tuple(DATASETS),
            arms: Sequence[str] = tuple(ARMS)) -> Dict[str, Any]:
    """Evaluate every exported arm and write the table files under ``results``."""
    from training.evaluate import evaluate_checkpoint
    per_seed: List[Dict[str, Any]] = []
    for arm in arms:
        for weights in sorted((results / arm).glob('seed*/dsrnet.pt')):
            seed = int(weights.parent.name[4:])
            row = {'arm': arm, 'seed': seed, 'weights': str(weights.relative_to(results))}
            for dataset in datasets:
                summary = evaluate_checkpoint(weights, dataset)
                row[dataset] = summary[f'mean_{DATASETS[dataset]}']
            row['stage2'] = stage2_summary(runs / arm / f'seed{seed}' / 'history.csv')
            per_seed.append(row)
    table = {}
    for arm in arms:
        rows = [r for r in per_seed if r['arm'] == arm]
        if not rows:
            continue
        table[arm] = {'label': LABELS.get(arm, arm), 'seeds': [r['seed'] for r in rows]}
        for dataset in datasets:
            values = [r[dataset] for r in rows if r[dataset] is not None]
            table[arm][dataset] = {
                'mean': float(np.mean(values)) if values else None,
                'std': float(np.std(values, ddof=1)) if len(values) > 1 else None}
    sensor = collect_sensor(runs, results)
    report = {'scale': 8, 'metrics': DATASETS, 'arms': table, 'runs': per_seed,
              'sensor_arms': sensor,
              'paper_table4': PAPER_TABLE4,
              'std': 'sample standard deviation over seeds (ddof=1)'}
    results.mkdir(parents=True, exist_ok=True)
    (results / 'ablation.json').write_text(json.dumps(report, indent=2) + '\n')
    _write_csv(results / 'ablation.csv', per_seed, datasets)
    (results / 'table.md').write_text(markdown(report, datasets) + '\n')
    _plot(results / 'ablation.png', table, datasets)
    return report


def collect_sensor(runs: Path, results: Path, data_root: Optional[Path] = None,
                   quick: bool = False) -> Dict[str, Any]:
    """Score the exported sensor arms on the real-sensor suite at x8 (``RESULTS/sensor/``).

    Returns, per arm, the suite's per-family ratios (SR/bicubic and SR/nearest, MAD and RMSE)
    and its stage-2 loss terms; empty when no sensor arm has been exported.
    """
    arms = [(arm, results / arm / f'seed{seed}' / 'dsrnet.pt')
            for arm, seeds in SENSOR_ARMS.items() for seed in seeds]
    arms = [(arm, path) for arm, path in arms if path.is_file()]
    if not arms:
        return {}
    from training.data.readers import shared_data_root
    from training.sensor_suite import run_suite
    suite = run_suite([path for _, path in arms], results / 'sensor',
                      data_root or shared_data_root(), labels=[LABELS[arm] for arm, _ in arms],
                      quick=quick, progress=False)
    return {arm: {'weights': str(path.relative_to(results)),
                  'families': {family: {k: v for k, v in entry.items() if k.startswith('sr_')}
                               for family, entry in suite[LABELS[arm]]['summary'].items()},
                  'stage2': stage2_summary(runs / arm / path.parent.name / 'history.csv')}
            for arm, path in arms}


def _write_csv(path: Path, rows: List[Dict[str, Any]], datasets: Sequence[str]) -> None:
    with path.open('w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['arm', 'seed', *datasets, 'weights'])
        for row in rows:
            writer.writerow([row['arm'], row['seed'], *[row[d] for d in datasets],
                             row['weights']])


def _cell(entry: Dict[str, Any]) -> str:
    if entry['mean'] is None:
        return ''
    return f"{entry['mean']:.3f}" + (f" +- {entry['std']:.3f}" if entry['std'] is not None
                                     else '')


def markdown(report: Dict[str, Any], datasets: Sequence[str]) -> str:
    """The ablation table: mean +- std per arm, seeds, and the paper's Table 4 for reference."""
    names = {'middlebury2005': 'Middlebury x8 MAD', 'nyuv2': 'NYUv2 x8 RMSE (cm)'}
    header = ['Arm', 'seeds'] + [names.get(d, d) for d in datasets] + ['paper (MAD / RMSE)']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for arm, entry in report['arms'].items():
        paper = PAPER_TABLE4.get(arm)
        lines.append('| ' + ' | '.join(
            [entry['label'], ','.join(map(str, entry['seeds']))]
            + [_cell(entry[d]) for d in datasets]
            + [f'{paper[0]} / {paper[1]}' if paper else '']) + ' |')
    return '\n'.join(lines)


def _plot(path: Path, table: Dict[str, Any], datasets: Sequence[str]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.5), squeeze=False)
    arms = list(table)
    for axis, dataset in zip(axes[0], datasets):
        means = [table[a][dataset]['mean'] or 0.0 for a in arms]
        stds = [table[a][dataset]['std'] or 0.0 for a in arms]
        axis.bar(range(len(arms)), means, yerr=stds, capsize=4, color='tab:blue')
        axis.set_xticks(range(len(arms)), [LABELS.get(a, a) for a in arms], rotation=30,
                        ha='right', fontsize=7)
        axis.set_title(f'{dataset} x8 ({DATASETS[dataset].upper()})')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=('all', 'stage1', 'arm', 'collect'))
    parser.add_argument('arm', nargs='?', help='arm name for "arm" (see ARMS, or full_gated)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--runs', type=Path, default=REPO / 'runs' / 'ablation_x8')
    parser.add_argument('--results', type=Path, default=REPO / 'results' / 'ablation_x8')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='passed to every training run')
    parser.add_argument('--arms', nargs='*', default=list(ARMS),
                        help='research-protocol arms for all/collect (the sensor pair: '
                        '"arm sensor_full", "arm sensor_dsr_only"; collect scores them too)')
    parser.add_argument('--datasets', nargs='*', default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    parser.add_argument('--stage1-margin', type=float, default=0.05,
                        help='how much better than the bicubic base (held-out) a stage 1 must '
                             'end before arms fork from it (default 0.05)')
    args = parser.parse_args(argv)
    try:
        if args.command == 'stage1':
            run_stage1(args.runs, args.seed, args.overrides, args.dry_run, args.stage1_margin)
        elif args.command == 'arm':
            if not args.arm or not (CONFIGS / f'ablation_x8_{args.arm}.yaml').is_file():
                parser.error(f'unknown arm {args.arm!r}; known: {list(ARMS) + ["full_gated"]}')
            run_arm(args.arm, args.seed, args.runs, args.results, args.overrides, args.dry_run,
                    args.stage1_margin)
        elif args.command == 'all':
            for arm in args.arms:
                for seed in ARMS.get(arm, (0,)):
                    run_arm(arm, seed, args.runs, args.results, args.overrides, args.dry_run,
                            args.stage1_margin)
        if args.command in ('all', 'collect') and not args.dry_run:
            report = collect(args.runs, args.results, args.datasets, args.arms)
            print(markdown(report, args.datasets))
    except Stage1Refused as error:
        print(f'run_ablation: refused: {error}', file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f'run_ablation: a step failed ({error}); fix it and run the same command again '
              '(finished steps are kept)', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
