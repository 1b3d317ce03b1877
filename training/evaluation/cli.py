"""``python -m training.evaluation <paper|sensor|phase-study|rank> ...``: the one command line.

* ``paper``: the paper protocol's tables (:mod:`training.evaluation.paper`);
* ``sensor``: the real-sensor suite (:mod:`training.evaluation.sensor`);
* ``phase-study``: SR against nearest per sampling phase (:mod:`training.evaluation.phase_study`);
* ``rank``: rank candidates from validation-split ``sensor.json`` files
  (:mod:`training.evaluation.ranking`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from dsr_ros.self_ensemble import ENSEMBLE_PASSES
from training.evaluation.families import FAMILY_SETS
from training.evaluation.methods import BASELINES
from training.evaluation.protocols import PROTOCOLS

__all__ = ['main']

LOGGER = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
PROG = 'python -m training.evaluation'


def _common(parser: argparse.ArgumentParser, data_root_help: str) -> None:
    """The options of both model runs: checkpoints, labels, data, output, device, maps."""
    parser.add_argument('--data-root', type=Path, default=None, help=data_root_help)
    parser.add_argument('--labels', nargs='*', default=None, help='row labels for --weights')
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--no-maps', action='store_true', help='skip error-map images')


def _paper_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', default='middlebury2005', choices=sorted(PROTOCOLS))
    _common(parser, 'data set folder (default: its folder under ../shared/data)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 4, 8, 16])
    parser.add_argument('--method', nargs='*', default=None, choices=sorted(BASELINES),
                        help='baseline rows: bicubic (OpenCV, a = -0.75), bicubic_matlab '
                             '(a = -0.5, uint8: the paper\'s row); default: bicubic when no '
                             '--weights is given')
    parser.add_argument('--weights', type=Path, nargs='*', default=[],
                        help='DSRNet checkpoints; each fills the column of its own scale')
    parser.add_argument('--names', nargs='*', default=None, help='only these scenes')
    parser.add_argument('--tile-size', type=int, default=0,
                        help='LR tile edge for large inputs on small memory (0 = whole image)')
    parser.add_argument('--round-uint8', action='store_true',
                        help='round every output to uint8 before MAD/RMSE on 8-bit data')


def _sensor_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--weights', type=Path, nargs='+', required=True,
                        help='DSRNet checkpoints (bicubic and nearest are always scored)')
    _common(parser, 'the shared data folder (default: ../shared/data)')
    parser.add_argument('--quick', action='store_true',
                        help='one small crop per data set (seconds)')
    parser.add_argument('--split', choices=['test', 'val'], default='test',
                        help='test (the reported numbers) or val (held-out frames to choose '
                             'recipes and checkpoints on)')
    parser.add_argument('--families', choices=('all', 'camera'), default='all',
                        help='every family, or the camera families (native and decimated with '
                             'the phase known, as the node runs them) and the random phase')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the drawn phases, noise and holes (0: the reported '
                             'numbers; others: the same families drawn afresh)')
    parser.add_argument('--scaling-tile', type=int, default=-1,
                        help="LR tile a range scaling is fitted over (-1: the checkpoint's "
                             'fit_tile, 0: whole frames)')
    parser.add_argument('--ensemble-passes', type=int, default=1, choices=ENSEMBLE_PASSES,
                        help='forward passes over flipped copies of each frame, averaged '
                             '(dsr_ros.self_ensemble; 1 = none)')


def _phase_study_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('weights', nargs='*', type=Path)
    parser.add_argument('--oracles-at', type=int, nargs='+', default=[], metavar='SCALE',
                        help='also measure the oracles and baselines alone (no net) at these '
                             'scales: the floors of a target before anyone trains for it')
    parser.add_argument('--data-root', type=Path, default=None,
                        help='default: ../shared/data beside the repository')
    parser.add_argument('--out', type=Path, default=REPO / 'results' / 'phase_study')


def _rank_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('sensor_json', nargs='+', type=Path,
                        help='sensor.json of validation-split suite runs')
    parser.add_argument('--out', type=Path, default=None, help='Markdown file to write')
    parser.add_argument('--score', choices=('camera', 'balanced'), default='camera',
                        help='camera (default): the families cameras produce, as the node runs '
                             'them; balanced: the random-phase families of earlier choices')


def _run_paper(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Returns 0, or 1 when a scene failed."""
    from training.evaluation.methods import checkpoint_method
    from training.evaluation.paper import evaluate_methods
    from training.evaluation.report import markdown_table, timing_lines
    _check_labels(args, parser)
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
            print(f'evaluation: {error}', file=sys.stderr)
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


def _check_labels(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.labels is not None and len(args.labels) != len(args.weights):
        parser.error(f'--labels needs one label per --weights file ({len(args.weights)})')


def _run_sensor(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from training.data.readers import shared_data_root
    from training.evaluation.report import markdown_report
    from training.evaluation.sensor import run_suite
    _check_labels(args, parser)
    try:
        results = run_suite(args.weights, args.out, args.data_root or shared_data_root(),
                            args.labels, args.quick, args.device, split=args.split,
                            scaling_tile=args.scaling_tile,
                            ensemble_passes=args.ensemble_passes,
                            save_maps=not args.no_maps, seed=args.seed,
                            families=FAMILY_SETS[args.families])
    except ValueError as error:  # CheckpointError is a ValueError
        print(f'evaluation: {error}', file=sys.stderr)
        return 2
    print(markdown_report(results))
    print(f'wrote {args.out}/sensor.json, sensor.md'
          + ('' if args.no_maps else ', sensor_maps.png'))
    return 0


def _run_phase_study(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from training.data.readers import shared_data_root
    from training.evaluation.phase_study import markdown, study
    if not args.weights and not args.oracles_at:
        parser.error('give checkpoints, --oracles-at SCALE, or both')
    if any(scale < 2 for scale in args.oracles_at):
        parser.error(f'--oracles-at scales must be 2 or more, got {args.oracles_at}')
    data_root = args.data_root or shared_data_root()
    if not data_root.is_dir():
        parser.error(f'no data under {data_root} (give --data-root)')
    results = ([study(path, data_root) for path in args.weights]
               + [study(None, data_root, scale=scale) for scale in args.oracles_at])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'phase_study.json').write_text(json.dumps(results, indent=1) + '\n')
    report = markdown(results)
    (args.out / 'phase_study.md').write_text(report)
    print(report)
    return 0


def _run_rank(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from training.evaluation import ranking
    try:
        text = (ranking.camera_markdown(ranking.camera_rows(args.sensor_json))
                if args.score == 'camera'
                else ranking.markdown(ranking.candidate_rows(args.sensor_json)))
    except (OSError, ValueError, KeyError) as error:
        print(f'rank: {error}', file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(text)
    print(text, end='')
    return 0


Runner = Callable[[argparse.Namespace, argparse.ArgumentParser], int]
#: Subcommand -> (help, options, runner).
COMMANDS: Dict[str, tuple] = {
    'paper': ('bicubic and DSRNet checkpoints on a depth-SR test set, paper protocol',
              _paper_parser, _run_paper),
    'sensor': ('the real-sensor suite: SR against bicubic and nearest on camera-like depth',
               _sensor_parser, _run_sensor),
    'phase-study': ('SR against nearest per sampling phase, beside the phase-blind floors',
                    _phase_study_parser, _run_phase_study),
    'rank': ('rank candidates from validation-split sensor.json files by one fixed score',
             _rank_parser, _run_rank),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` and run the subcommand; returns its exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='Evaluate depth SR: the paper tables, the real-sensor suite, the '
        'phase study, and the ranking of candidates.')
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    parsers: Dict[str, argparse.ArgumentParser] = {}
    for name, (help_text, add_options, _) in COMMANDS.items():
        parsers[name] = commands.add_parser(name, help=help_text, description=help_text)
        add_options(parsers[name])
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    runner: Runner = COMMANDS[args.command][2]
    return runner(args, parsers[args.command])
