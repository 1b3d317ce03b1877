"""The fair cross-task ablation of issue 28: arms x seeds, resumable, one table per protocol.

    python -m training.ablation run --table research_x8 --resume     # train, export, collect
    python -m training.ablation run --table sensor_x4 --arms dsr_alone full_guided \
        full_guided_balanced --resume
    python -m training.ablation collect --table research_x8          # the table only

Tables (:data:`TABLES`): ``research_x8`` (the paper's protocol, Middlebury x8 MAD) and
``sensor_x4`` (the sensor degradation at x4, the sensor suite's validation score, the test
split's beside it), each with three arms: ``dsr_alone`` (DSRNet alone), ``full_denet`` (DSRNet +
L_O + L_A + SPNet taught by the paper's DENet) and ``full_guided`` (the same, taught by the
guided teacher, which sees RGB and the LR depth at training time only); ``sensor_x4`` adds
``full_guided_balanced`` (rho1 = rho2 = 0.5). Every arm of seed k forks from a stage 1 of seed k:
``stage1_denet`` (DSRNet + DENet; ``full_denet`` forks from it, and ``dsr_alone`` in
``research_x8``) or ``stage1_guided`` (DSRNet + guided teacher; the guided arms, and
``dsr_alone`` in ``sensor_x4``). Their DSRNets are the same weights (same seed, same depth
patches, separate optimisers; the table records whether they are bit-identical), so arms share
data, initialisation and budget. Configs: ``training/configs/ablation_x8_*`` and
``ablation_x4_sensor_*``.

Layout: ``RUNS/<table>/<stage1_teacher | arm>/seed<k>/`` (training runs: states, histories) and
``RESULTS/<table>/<arm>/seed<k>/`` (``dsrnet.pt``: the arm's final DSRNet in fp16;
``history.csv``; ``config.json``; ``gate.json`` when a teacher gate ran; ``scores.json``),
``RESULTS/<table>/stage1_<teacher>/seed<k>/history.csv`` and ``RESULTS/<table>/table.json``,
``table.md`` (:mod:`training.ablation_table`).

Checks: a stage 1 whose DSRNet does not beat the bicubic base on held-out patches by
``--stage1-margin`` (default 5 %) is refused and nothing forks from it (the driver stops, exit
2); an arm whose teacher fails the teacher gate is recorded as refused, with the gate's
sentence, and the others go on. Every training runs with ``--resume``: a killed driver run with
``--resume`` continues where it stopped, finished steps are skipped. Without ``--resume`` the
driver refuses a ``RUNS/<table>`` that already holds runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from training import ablation_table
from training.stall import DEFAULT_MARGIN, read_history, stage1_problem

__all__ = ['Stage1Refused', 'TABLES', 'TableSpec', 'collect', 'main', 'run_table']

LOGGER = logging.getLogger('training.ablation')
REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'training' / 'configs'


@dataclass(frozen=True)
class TableSpec:
    """One ablation table: its stage-1 runs, its arms (config, stage 1) and its score."""

    scale: int
    stage1: Dict[str, str]
    arms: Dict[str, Tuple[str, str]]
    metric: str
    reference: str = 'dsr_alone'
    seeds: Tuple[int, ...] = (0, 1, 2)


def _spec(prefix: str, scale: int, metric: str, alone_from: str = 'denet',
          extra_arms: Sequence[str] = ()) -> TableSpec:
    """``alone_from``: the stage 1 DSRNet alone forks from. Both stage 1s of a seed end with
    bit-identical DSRNets (checked by :func:`_same_dsrnet` when both exist), so either is fair;
    the sensor table forks from the guided one, which its cross-task arm needs anyway, and
    trains no DENet stage 1 unless ``full_denet`` is asked for. ``extra_arms``: further
    guided-teacher arms (config ``<prefix>_<arm>``)."""
    stage1 = {'denet': f'{prefix}_stage1_denet', 'guided': f'{prefix}_stage1_guided'}
    arms = {'dsr_alone': (f'{prefix}_dsr_alone', alone_from),
            'full_denet': (f'{prefix}_full_denet', 'denet'),
            'full_guided': (f'{prefix}_full_guided', 'guided')}
    arms.update({arm: (f'{prefix}_{arm}', 'guided') for arm in extra_arms})
    return TableSpec(scale, stage1, arms, metric)


#: sensor_x4's ``full_guided_balanced``: the guided arm with rho1 = rho2 = 0.5, which gives
#: distillation the share of the student's loss it has at x8 (the sensor task loss carries a
#: x10 L2 term that shrinks every other term's share about five-fold).
TABLES: Dict[str, TableSpec] = {'research_x8': _spec('ablation_x8', 8, 'middlebury2005'),
                                'sensor_x4': _spec('ablation_x4_sensor', 4, 'sensor_val',
                                                   alone_from='guided',
                                                   extra_arms=('full_guided_balanced',))}


class Stage1Refused(RuntimeError):
    """A stage 1 did not beat the bicubic base by the margin: no arm may fork from it."""


class StepFailed(RuntimeError):
    """A training or export step failed for a reason other than the teacher gate."""


def train_command(config: str, out: Path, seed: int, overrides: Sequence[str],
                  init_from: Optional[Path] = None) -> List[str]:
    """The ``training.train`` command of one ablation run (resumable, seeded, overridden)."""
    command = [sys.executable, '-m', 'training.train', '--config',
               str(CONFIGS / f'{config}.yaml'), '--out', str(out), '--resume', '--no-progress',
               '--set', f'seed={seed}']
    for item in overrides:
        command += ['--set', item]
    if init_from is not None:
        command += ['--init-from', str(init_from)]
    return command


def _run(command: List[str], dry_run: bool) -> int:
    print('$ ' + ' '.join(command), flush=True)
    if dry_run:
        return 0
    return subprocess.run(command, cwd=REPO, check=False).returncode


def _copy(source: Path, target: Path) -> None:
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


#: Stage-1 runs a dry run has already printed (a dry run trains nothing, so no file says so).
_PLANNED: set = set()


def run_stage1(spec: TableSpec, teacher: str, seed: int, runs: Path, results: Path,
               overrides: Sequence[str], margin: float, dry_run: bool = False) -> Path:
    """Train (or finish) the stage 1 of ``teacher`` and ``seed``; refuse it below the margin."""
    out = runs / f'stage1_{teacher}' / f'seed{seed}'
    state = out / 'stage1_end.pt'
    if dry_run:
        if out in _PLANNED:
            return state
        _PLANNED.add(out)
    if not state.exists():
        # whatever the overrides say, a stage-1 run stops at the end of stage 1
        command = train_command(spec.stage1[teacher], out, seed,
                                [*overrides, 'schedule.stage2_epochs=0'])
        if _run(command, dry_run):
            raise StepFailed(f'stage 1 ({teacher}, seed {seed}) failed; see its log above')
    if dry_run:
        return state
    _copy(out / 'history.csv', results / f'stage1_{teacher}' / f'seed{seed}' / 'history.csv')
    problem = stage1_problem(read_history(out / 'history.csv'), margin)
    if problem:
        raise Stage1Refused(f'{out}: {problem}; no arm forks from it (change the recipe, '
                            'e.g. optim.warmup_steps, and train it again)')
    return state


def _gate(run: Path) -> Optional[Dict[str, Any]]:
    path = run / 'gate.json'
    return json.loads(path.read_text()) if path.is_file() else None


def run_arm(spec: TableSpec, arm: str, seed: int, runs: Path, results: Path,
            overrides: Sequence[str], margin: float, dry_run: bool = False) -> str:
    """Stage 2 of one arm, forked from its stage 1; export its final DSRNet in fp16.

    Returns 'done', 'refused' (the teacher gate) or 'planned' (dry run).
    """
    config, teacher = spec.arms[arm]
    target = results / arm / f'seed{seed}'
    if (target / 'dsrnet.pt').is_file():
        return 'done'
    start = run_stage1(spec, teacher, seed, runs, results, overrides, margin, dry_run)
    out = runs / arm / f'seed{seed}'
    gate = _gate(out)
    if gate is None or gate['passed']:
        code = _run(train_command(config, out, seed, overrides, start), dry_run)
        gate = _gate(out)
        if code and not (gate and not gate['passed']):
            raise StepFailed(f'{arm} seed {seed} failed; see its log above (finished epochs '
                             'are kept: run the same command again)')
    if dry_run:
        return 'planned'
    target.mkdir(parents=True, exist_ok=True)
    for name in ('history.csv', 'config.json', 'gate.json'):
        _copy(out / name, target / name)
    if gate and not gate['passed']:
        print(f'{arm} seed {seed}: refused by the teacher gate: {gate["reason"]}', flush=True)
        return 'refused'
    export_half(out, target / 'dsrnet.pt')
    return 'done'


def export_half(run: Path, target: Path) -> None:
    """The run's final DSRNet, node-ready, stored in fp16 by
    :func:`training.checkpoints.half.store_half` (checked, hashed, revision recorded, loaded
    back)."""
    from training.checkpoints.half import store_half
    from training.export import export_run
    full = run / 'final_export_fp32.pt'
    export_run(run, full, which='final')
    try:
        store_half(full, target, 'the fair ablation keeps every arm\'s net in fp16')
    except ValueError as error:
        raise StepFailed(f'storing {full} in fp16 failed: {error}') from error
    full.unlink()


def run_table(name: str, runs: Path, results: Path, arms: Sequence[str],
              seeds: Sequence[int], overrides: Sequence[str], margin: float,
              dry_run: bool = False) -> Dict[str, Dict[int, str]]:
    """Every arm of every seed, seed by seed (each seed's stage 1 first)."""
    spec = TABLES[name]
    status: Dict[str, Dict[int, str]] = {arm: {} for arm in arms}
    for seed in seeds:
        for arm in arms:
            status[arm][seed] = run_arm(spec, arm, seed, runs, results, overrides, margin,
                                        dry_run)
    return status


def _stage1_facts(spec: TableSpec, runs: Path, seeds: Sequence[int],
                  margin: float) -> Dict[str, Any]:
    """Per stage-1 run: its last held-out error against the base, stalls, and the margin."""
    facts: Dict[str, Any] = {}
    for teacher in spec.stage1:
        for seed in seeds:
            rows = [r for r in read_history(runs / f'stage1_{teacher}' / f'seed{seed}'
                                            / 'history.csv') if r.get('stage') == '1']
            if not rows:
                continue
            last = rows[-1]
            facts[f'{teacher}/seed{seed}'] = {
                'epochs': len(rows), 'val_e_dsr': float(last['val_e_dsr']),
                'val_e_base': float(last.get('val_e_base') or 'nan'),
                'val_e_teacher': float(last.get('val_e_de') or 'nan'),
                'stalled_epochs': sum(int(float(r.get('stalled') or 0)) for r in rows),
                'margin': margin,
                'refused': stage1_problem(rows, margin) or None}
    facts.update(_same_dsrnet(runs, seeds))
    return facts


def _same_dsrnet(runs: Path, seeds: Sequence[int]) -> Dict[str, Any]:
    """Whether both stage 1s of a seed end with bit-identical DSRNets (the arms' common start)."""
    import torch
    same = {}
    for seed in seeds:
        paths = [runs / f'stage1_{teacher}' / f'seed{seed}' / 'stage1_end.pt'
                 for teacher in ('denet', 'guided')]
        if all(p.is_file() for p in paths):
            a, b = (torch.load(p, map_location='cpu', weights_only=True)['modules']['dsrnet']
                    for p in paths)
            same[f'seed{seed}'] = all(torch.equal(a[k], b[k]) for k in a)
    return {'dsrnet_identical_across_stage1': same} if same else {}


def _budget(spec: TableSpec, results: Path, arms: Sequence[str]) -> Dict[str, Any]:
    """DSRNet's HR training pixels per arm (stage 1 + stage 2).

    From the arm's histories when they count them (``hr_pixels_seen``, ``rgb_pixels_seen`` of
    the last row: what the runs trained on, per seed), else from its config (epochs x patches x
    patch area; ``hr_pixels_from: config``).
    """
    budget = {}
    for arm in arms:
        configs = sorted((results / arm).glob('seed*/config.json'))
        if not configs:
            continue
        config = json.loads(configs[0].read_text())
        data, schedule = config['data'], config['schedule']
        epochs = int(schedule['stage1_epochs']) + int(schedule['stage2_epochs'])
        budget[arm] = {'epochs': epochs, 'patches_per_epoch': data['patches_per_epoch'],
                       'patch_size': data['patch_size'],
                       'hr_pixels': epochs * data['patches_per_epoch'] * data['patch_size'] ** 2,
                       'hr_pixels_from': 'config'}
        seen = _pixels_seen(config_path.parent / 'history.csv' for config_path in configs)
        if seen:
            budget[arm].update(seen, hr_pixels=seen['hr_pixels_seen'][0],
                               hr_pixels_from='history')
    return budget


def _pixels_seen(histories: Iterable[Path]) -> Dict[str, List[float]]:
    """Per seed, the last history row's cumulative pixel counts ({} unless every seed has them)."""
    seen: Dict[str, List[float]] = {'hr_pixels_seen': [], 'rgb_pixels_seen': []}
    for path in histories:
        rows = read_history(path)
        last = rows[-1] if rows else {}
        for name, values in seen.items():
            try:
                values.append(float(last[name]))
            except (KeyError, TypeError, ValueError):
                return {}
    if not seen['hr_pixels_seen'] or not all(math.isfinite(v) for v in seen['hr_pixels_seen']):
        return {}
    return seen


def collect(name: str, runs: Path, results: Path, arms: Sequence[str], seeds: Sequence[int],
            margin: float, quick: bool = False, data_root: Optional[Path] = None
            ) -> Dict[str, Any]:
    """Score every exported arm and write ``RESULTS/table.json`` and ``table.md``."""
    spec = TABLES[name]
    stage1 = _stage1_facts(spec, runs, seeds, margin)
    records: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for arm in arms:
        records[arm] = {}
        for seed in seeds:
            folder = results / arm / f'seed{seed}'
            gate = _gate(folder)
            refused_start = (stage1.get(f'{spec.arms[arm][1]}/seed{seed}') or {}).get('refused')
            if (folder / 'dsrnet.pt').is_file():
                record = ablation_table.score_weights(folder / 'dsrnet.pt', spec.metric, quick,
                                                      data_root)
            elif gate and not gate['passed']:
                record = {'score': None, 'refused': gate['reason']}
            elif refused_start:
                # no arm forks from a stage 1 below the margin: the seed is out of the table
                record = {'score': None, 'refused': f'its stage 1 was refused: {refused_start}'}
            else:
                continue
            if gate:
                record['gate'] = {k: gate[k] for k in ('e_teacher', 'e_student', 'e_constant',
                                                       'e_image_median', 'passed')}
            records[arm][seed] = record
    table = ablation_table.build_table(
        name, spec.metric, records, spec.reference,
        {'scale': spec.scale, 'quick_eval': quick, 'stage1': stage1,
         'budget': _budget(spec, results, arms)})
    ablation_table.write_table(table, results)
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=('run', 'collect'))
    parser.add_argument('--table', choices=sorted(TABLES), required=True)
    parser.add_argument('--arms', nargs='+', default=None, help='default: all of the table\'s')
    parser.add_argument('--seeds', nargs='+', type=int, default=None, help='default: 0 1 2')
    parser.add_argument('--runs', type=Path, default=REPO / 'runs' / 'ablation_fair')
    parser.add_argument('--results', type=Path, default=REPO / 'results' / 'ablation_fair')
    parser.add_argument('--resume', action='store_true',
                        help='continue the runs already under RUNS/<table>')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='passed to every training run')
    parser.add_argument('--stage1-margin', type=float, default=DEFAULT_MARGIN,
                        help='how much better than the bicubic base (held-out) a stage 1 must '
                             'end, relative (default 0.05)')
    parser.add_argument('--quick-eval', action='store_true',
                        help='smoke runs only: score on one scene / the quick sensor suite')
    parser.add_argument('--no-collect', action='store_true', help='train and export only')
    parser.add_argument('--data-root', type=Path, default=None,
                        help='benchmark data (default ../shared/data)')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    spec = TABLES[args.table]
    arms = args.arms or list(spec.arms)
    unknown = [arm for arm in arms if arm not in spec.arms]
    if unknown:
        parser.error(f'unknown arm(s) {unknown}; {args.table} has {list(spec.arms)}')
    if spec.reference not in arms:
        arms = [spec.reference] + arms  # paired differences need the reference arm
    seeds = args.seeds if args.seeds is not None else list(spec.seeds)
    runs, results = args.runs / args.table, args.results / args.table
    if args.command == 'run':
        if not args.resume and not args.dry_run and runs.is_dir() and any(runs.iterdir()):
            print(f'{runs} already holds runs: pass --resume to continue them, or another '
                  '--runs', file=sys.stderr)
            return 1
        try:
            status = run_table(args.table, runs, results, arms, seeds, args.overrides,
                               args.stage1_margin, args.dry_run)
        except Stage1Refused as error:
            print(f'ablation: refused: {error}', file=sys.stderr)
            return 2
        except StepFailed as error:
            print(f'ablation: {error}', file=sys.stderr)
            return 1
        print(json.dumps(status), flush=True)
        if args.dry_run or args.no_collect:
            return 0
    table = collect(args.table, runs, results, arms, seeds, args.stage1_margin,
                    args.quick_eval, args.data_root)
    print(ablation_table.markdown(table))
    return 0


if __name__ == '__main__':
    sys.exit(main())
