"""``python -m training.checkpoints``: the checkpoint tools as one command with subcommands.

    python -m training.checkpoints average A.pt B.pt --weights 0.5 0.5 --out soup.pt \\
        --why "L1 run's MAD with the L2 run's RMSE (chosen on the validation split)"
    python -m training.checkpoints lineage W.pt \\
        --entry machine="one lent NVIDIA H100, torch 2.11.0+cu130, bf16 autocast" \\
        --entry round1="python -m training.experiments.train_concurrently --out runs_gpu6 ..."
    python -m training.checkpoints fit-tile 32 dsr_ros/weights/dsrnet_sensor_*.pt
    python -m training.checkpoints half runs_gpu9/paper_x4/best_dsrnet.pt $OUT/paper_x4_fp16.pt
    python -m training.checkpoints calibrate-phase dsr_ros/weights/dsrnet_sensor_lite_x4.pt \\
        [more.pt ...] [--data-root ../shared/data] [--out results/phase_calibration] [--write]

Each subcommand's work is a function of its module (see :mod:`training.checkpoints`); this
module parses, prints, and turns a refusal (a ``ValueError``, which
:class:`dsr_ros.checkpoint.CheckpointError` is) into one line on stderr and the subcommand's
exit status (1 for ``average`` and ``lineage``, 2 for the others), in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from training.checkpoints import average, fit_tile, half, lineage, phase_calibration

__all__ = ['build_parser', 'main']

PROG = 'python -m training.checkpoints'
REPO = Path(__file__).resolve().parents[2]


def _average(args: argparse.Namespace) -> None:
    weights = args.weights or [1.0 / len(args.checkpoints)] * len(args.checkpoints)
    out = average.average_checkpoints(args.checkpoints, weights, args.out, args.why)
    print(f'wrote {out}')


def _lineage(args: argparse.Namespace) -> None:
    written = lineage.record_lineage(args.checkpoint, dict(args.entries))
    print(f'{args.checkpoint}: lineage {sorted(written)}')


def _fit_tile(args: argparse.Namespace) -> None:
    for path in args.checkpoints:  # stops at the first refusal, as the files are in order
        fit_tile.set_fit_tile(path, args.tile, args.why)
        print(f'{path}: fit_tile = {args.tile}')


def _half(args: argparse.Namespace) -> None:
    half.store_half(args.source, args.target, args.why)
    print(f'wrote {args.target} ({args.target.stat().st_size / 2**20:.1f} MiB, fp16 weights)')


def _calibrate_phase(args: argparse.Namespace) -> None:
    """Every checkpoint on the same frames (read once); the report only when all succeeded."""
    results = []
    frames: Optional[List[Any]] = None
    for path in args.weights:
        frames = frames if frames is not None else phase_calibration.validation_frames(
            args.data_root)
        result = phase_calibration.calibrate(path, frames)
        if not args.point_only:
            result.update(phase_calibration.calibrate_native(path, frames))
        results.append(result)
        print(f'{path}: point alignment {tuple(result["point_alignment"])}, SR / nearest '
              f'{result["mean_sr_unknown_over_nearest"]:.3f} (phase unknown) -> '
              f'{result["mean_sr_told_over_nearest"]:.3f} (told)'
              + ('' if args.point_only else
                 f'; native alignment {tuple(result["native_alignment"])} (SR / bicubic '
                 f'{result["native_sr_over_bicubic_unmoved"]:.3f} unmoved, '
                 f'{result["native_sr_over_bicubic"]:.3f} moved)'))
        if args.write:
            phase_calibration.record_alignment(path, result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'phase_calibration.json').write_text(json.dumps(results, indent=1))
    (args.out / 'phase_calibration.md').write_text(phase_calibration.markdown(results))


def _subcommand(commands: Any, name: str, module: Any, handler: Callable[..., None],
                error_code: int) -> argparse.ArgumentParser:
    """A subparser described by the first line of ``module``'s docstring."""
    summary = module.__doc__.split('\n\n')[0]
    parser = commands.add_parser(name, help=summary, description=summary)
    parser.set_defaults(handler=handler, error_code=error_code)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The command line (``python -m training.checkpoints --help``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='Edit or derive DSRNet checkpoints, keeping their history in '
        'the provenance.')
    commands = parser.add_subparsers(dest='command', required=True, metavar='SUBCOMMAND')

    sub = _subcommand(commands, 'average', average, _average, 1)
    sub.add_argument('checkpoints', nargs='+', type=Path)
    sub.add_argument('--weights', nargs='+', type=float, default=None,
                     help='one per checkpoint, summing to 1 (default: equal)')
    sub.add_argument('--out', type=Path, required=True, help='checkpoint to write')
    sub.add_argument('--why', required=True, help='the reason, kept in the provenance')

    sub = _subcommand(commands, 'lineage', lineage, _lineage, 1)
    sub.add_argument('checkpoint', type=Path)
    sub.add_argument('--entry', dest='entries', type=lineage.parse_entry, action='append',
                     required=True, metavar='KEY=VALUE', help='a lineage line (repeatable)')

    sub = _subcommand(commands, 'fit-tile', fit_tile, _fit_tile, 2)
    sub.add_argument('tile', type=int, help='LR tile edge (0 = fit over the whole frame)')
    sub.add_argument('checkpoints', nargs='+', type=Path)
    sub.add_argument('--why', default=fit_tile.REASON, help='the reason, kept in the revision')

    sub = _subcommand(commands, 'half', half, _half, 2)
    sub.add_argument('source', type=Path, help='checkpoint to read')
    sub.add_argument('target', type=Path, help='checkpoint to write (fp16 weights)')
    sub.add_argument('--why', default=half.REASON, help='the reason, kept in the revision')

    sub = _subcommand(commands, 'calibrate-phase', phase_calibration, _calibrate_phase, 2)
    sub.add_argument('weights', nargs='+', type=Path)
    sub.add_argument('--data-root', type=Path, default=REPO.parent / 'shared' / 'data')
    sub.add_argument('--out', type=Path, default=REPO / 'results' / 'phase_calibration')
    sub.add_argument('--write', action='store_true',
                     help='record the measured alignments in each checkpoint')
    sub.add_argument('--point-only', action='store_true',
                     help='measure the point alignment only (not the native one)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand; its exit status (0, or its refusal's code with the reason on
    stderr)."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ValueError as error:  # CheckpointError is a ValueError
        print(f'{PROG} {args.command}: {error}', file=sys.stderr)
        return args.error_code
    return 0
