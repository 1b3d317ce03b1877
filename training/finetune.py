"""Fine-tune a shipped model on your robot's bags in one command; never export a worse one.

    python -m training.finetune --bag BAG [--bag BAG ...] --out DIR [--model lite|tiny|PATH.pt]
        [--scale 4] [--minutes 20] [--val-fraction 0.2 | --val-bag BAG] [--resume]

Topics are found when the bag leaves one choice (``--depth-topic``, ``--info-topic``,
``--rgb-topic``, ``--lr-topic`` otherwise). The recipe is the starting model's own (its
checkpoint's config, :mod:`training.finetune_recipe`); LR inputs come from its sensor model
applied to the bag's depth, or, when the bag also holds the same scene at 1/scale the size on a
second depth topic, from those real LR frames (:mod:`training.finetune_pairs`: the net's input
is what the node will see, the HR frame its target). The last part of each bag (or
``--val-bag``) is held out as whole stretches (:mod:`training.finetune_data`). The starting
weights are scored on it before the first epoch and stay the candidate to beat: the export
``DIR/dsrnet_finetuned.pt`` is written only when a fine-tuned epoch beats them
(``--export-anyway`` writes the best, whichever it is). It carries the starting model's
normalization and sampling, and provenance naming the bags, topics, held-out stretches and the
starting model. The run ends with the table of :mod:`training.finetune_report`. Ctrl-C keeps the
finished epochs and prints the ``--resume`` command. ``DSR_FINETUNE_MAX_STEPS`` (environment)
caps the optimizer steps, for smoke tests.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from dsr_ros.checkpoint import load_checkpoint
from training.config import ConfigError
from training.finetune_data import BagSource, load_bag, split_held_out
from training.finetune_recipe import (file_sha256, load_start, recipe_config, resolve_model,
                                      write_node_checkpoint)
from training.model import TrainingDiverged
from training.provenance import git_state
from training.resume_checks import read_state, resume_command

__all__ = ['EXPORT_NAME', 'main']

LOGGER = logging.getLogger('training.finetune')
EXPORT_NAME = 'dsrnet_finetuned.pt'
MAX_EPOCHS = 10000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--bag', action='append', required=True, type=Path, help='rosbag2 folder (repeatable)')
    add('--out', required=True, type=Path, help='run folder (training state, logs, export)')
    add('--model', default=None, help='tiny | lite | paper (shipped, at --scale) or a .pt; '
        'default: the node\'s default rung at the scale')
    add('--scale', type=int, default=None, help='upscale factor (default: the model\'s, or 4)')
    add('--depth-topic', default=None)
    add('--info-topic', default=None, help='depth camera_info (default: the depth sibling)')
    add('--rgb-topic', default=None, help='colour topic, or "none"')
    add('--lr-topic', default=None, help='depth topic of real LR frames at 1/scale the HR size '
        '(default: the only such topic; "none": the sensor model)')
    add('--tolerance', type=float, default=0.02, help='largest depth/RGB stamp gap, seconds')
    add('--minutes', type=float, default=20.0, help='training time budget (checked after '
        'each epoch; at least one epoch runs)')
    add('--max-steps', type=int, default=None, help='stop after this many optimizer steps')
    add('--val-fraction', type=float, default=0.2, help='held-out share at the end of each bag')
    add('--val-gap', type=float, default=1.0, help='seconds before a held-out stretch not used')
    add('--val-bag', action='append', default=[], type=Path, help='hold out this whole bag')
    add('--max-frames', type=int, default=600, help='frames kept per bag (evenly spaced)')
    add('--epoch-patches', type=int, default=512, help='patches per (short) epoch')
    add('--table-frames', type=int, default=8, help='held-out frames in the final table')
    add('--lr', type=float, default=None, help='learning rate (default: the recipe\'s)')
    add('--threads', type=int, default=0, help='torch threads (0: torch\'s default)')
    add('--device', default='auto')
    add('--seed', type=int, default=0)
    add('--resume', action='store_true', help='continue from OUT/last.pt')
    add('--export-anyway', action='store_true',
        help='write the export even when the starting model stays the best')
    add('--no-progress', action='store_true')
    add('--verbose', action='store_true', help='the training loop\'s full epoch lines')
    return parser


def _read_bags(args: argparse.Namespace, want_rgb: bool, scale: int) -> tuple:
    read = dict(depth=args.depth_topic, info=args.info_topic, rgb=args.rgb_topic,
                tolerance=args.tolerance, max_frames=args.max_frames, want_rgb=want_rgb,
                scale=scale, lr=args.lr_topic)
    sources = [load_bag(path, **read) for path in args.bag]
    vals = [load_bag(path, **read) for path in args.val_bag]
    for source in sources + vals:
        LOGGER.info('%s: depth %s, camera_info %s, rgb %s, real LR %s; %d frames kept '
                    '(every %d)', source.path, source.topics['depth'],
                    source.topics['info'] or 'none', source.topics['rgb'] or 'none',
                    source.topics.get('lr') or 'none', len(source.samples), source.every)
    return sources, vals


def _degradation(sources: Sequence[BagSource]) -> str:
    """Where the LR inputs come from, in the words the console and the provenance give:
    every bag's real LR topic, or the sensor model (a mix would train on two things)."""
    paired = [s for s in sources if s.pairs]
    if not paired:
        return 'sensor model (the starting model\'s recipe applied to the bag\'s depth)'
    if len(paired) < len(sources):
        raise ConfigError(f'{paired[0].path} has real LR frames ({paired[0].topics["lr"]}) but '
                          f'{next(s.path for s in sources if not s.pairs)} has none; pass bags '
                          'that all have them, or --lr-topic none for the sensor model')
    topics = sorted({(s.topics['depth'], s.topics['lr']) for s in paired})
    words = ', '.join(f'{hr} (HR) and {lr} (LR)' for hr, lr in topics)
    return (f'real pairs, topics {words}, {sum(s.pairs["pairs"] for s in paired)} pairs')


def _spec(source: BagSource, stretch: Optional[dict] = None) -> Dict[str, Any]:
    spec = {'type': 'rosbag', 'path': str(source.path.resolve()),
            'depth_topic': source.topics['depth'], 'rgb_topic': source.topics['rgb'],
            'camera_info_topic': source.topics['info'], 'tolerance': source.tolerance,
            'every': source.every}
    return dict(spec, held_out=stretch) if stretch else spec


def _rgb_note(sources: Sequence[BagSource], distill: bool) -> Dict[str, Any]:
    """Whether the bags' RGB is used, and why not; the RGB is dropped when unused."""
    paired = [s for s in sources if s.topics['rgb']]
    if not paired:
        return {'used': False, 'why': 'no colour topic'}
    if distill:
        return {'used': True, 'why': 'the recipe distils from RGB (loss.distill: true)'}
    pairs = sum(s.stats.usable for s in paired)
    offset = max(s.stats.max_pair_offset for s in paired) * 1e3
    why = ('the starting model\'s recipe trains DSRNet alone (loss.distill: false): the '
           'cross-task teacher would start untrained on these frames, so the RGB is recorded '
           'but unused')
    LOGGER.info('RGB %s: %d pairs within %g ms (largest offset %.1f ms) but unused: %s',
                paired[0].topics['rgb'], pairs, paired[0].tolerance * 1e3, offset, why)
    for source in paired:
        for sample in source.samples:
            sample.rgb = None
    return {'used': False, 'why': why, 'pairs': pairs, 'largest_offset_ms': round(offset, 3)}


def run(args: argparse.Namespace) -> int:
    """The fine-tune; returns the exit status."""
    from training.finetune_report import (check_alignment, compare_models, held_out_frames,
                                          held_out_pairs, markdown_table)
    from training.run_state import STATE_FORMAT
    from training.trainer import Trainer
    start = resolve_model(args.model, args.scale)
    start_model, start_meta = load_start(start)
    if args.scale and args.scale != start_model.scale:
        raise ConfigError(f'--scale {args.scale} but {start} is a x{start_model.scale} model')
    distill = bool((start_meta.get('config') or {}).get('loss', {}).get('distill'))
    sources, vals = _read_bags(args, want_rgb=True, scale=start_model.scale)
    degradation = _degradation(sources + vals)
    given_lr = degradation.startswith('real pairs')
    print(f'degradation: {degradation}')
    rgb = _rgb_note(sources + vals, distill)
    train, val, stretches = split_held_out(sources, vals, args.val_fraction, args.val_gap)
    for stretch in stretches:
        print(f'held out {stretch.describe()}')
    held = {str(s.path): s for s in vals}
    specs = [_spec(s) for s in sources]
    val_specs = [_spec(held.get(st.bag) or next(s for s in sources if str(s.path) == st.bag),
                       st.as_dict()) for st in stretches]
    out: Path = args.out
    state = out / 'last.pt'
    epoch_patches = args.epoch_patches
    max_steps = _max_steps(args)
    if args.resume and state.exists():  # a resumed run keeps its epoch length
        epoch_patches = read_state(state, STATE_FORMAT)['config']['data']['patches_per_epoch']
    elif max_steps is not None:  # a budget of a few steps: epochs no longer than it
        batch = int(start_meta['config'].get('data', {}).get('batch_size', 16))
        epoch_patches = max(1, min(epoch_patches, max_steps * batch))
    config, changes = recipe_config(start, start_meta, train_specs=specs, val_specs=val_specs,
                                    epoch_patches=epoch_patches, max_epochs=MAX_EPOCHS,
                                    seed=args.seed, threads=args.threads, device=args.device,
                                    given_lr=given_lr)
    if args.lr is not None:
        config['optim']['lr'] = changes['lr'] = float(args.lr)
    provenance = _provenance(args, start, start_meta, sources, vals, stretches, rgb, changes)
    provenance['degradation'] = degradation
    trainer = Trainer(config, out, train, val, provenance, not args.no_progress)
    if args.resume and state.exists():
        trainer.load_state(state)
        print(f'resumed {state} after epoch {trainer.epoch}')
    elif state.exists():
        raise ConfigError(f'{out} already holds a fine-tune; pass --resume or another --out')
    out.mkdir(parents=True, exist_ok=True)
    _train(trainer, args, config)
    history = trainer.history
    start_val = history[0]['e_dsr_before'] if history else trainer.best_val
    improved = trainer.best_val < start_val
    best_epoch = next((row['epoch'] for row in history if row['val_e_dsr'] == trainer.best_val
                       and improved), 0)
    frames = held_out_frames(val, start_model.scale, args.table_frames)
    pairs = (held_out_pairs(val, start_model.scale, args.table_frames, _lr_geometry(sources))
             if given_lr else None)
    metrics = {'held_out_e_dsr_start': start_val, 'held_out_e_dsr_best': trainer.best_val,
               'best_epoch': best_epoch, 'epochs': trainer.epoch,
               'val_history': [{k: row[k] for k in ('epoch', 'e_dsr_before', 'val_e_dsr')}
                               for row in history]}
    provenance = dict(trainer.provenance, best_epoch=best_epoch,
                      exported=datetime.datetime.now(datetime.timezone.utc).isoformat())
    best_model = (load_checkpoint(out / 'best_dsrnet.pt')[0] if improved else start_model)
    with tempfile.TemporaryDirectory() as scratch:
        tuned = best_model if improved else trainer.model.dsrnet.float().eval()
        candidate = write_node_checkpoint(Path(scratch) / 'candidate.pt', tuned, start_meta,
                                          provenance, metrics, config)
        label = 'tuned' if improved else 'last epoch'
        if frames:
            table = compare_models({'start': start, label: candidate}, frames,
                                   start_model.scale, args.seed, pairs)
            print(markdown_table(table, ['start', label], len(frames)))
            if not improved:
                print('(last epoch: the fine-tuned weights of the final epoch, not exported)')
            metrics['held_out_table_mm'] = table
    print(f'held-out error (normalised): start {start_val:.5f}, best fine-tuned '
          f'{min((r["val_e_dsr"] for r in history), default=math.nan):.5f}')
    if not improved and not args.export_anyway:
        print(f'the starting model stays the best on the held-out frames: no new file written '
              f'(keep weights_path:={start}; --export-anyway writes it regardless)')
        return 0
    sampling = dict(start_meta.get('sampling') or {})
    if frames and sampling.get('point_alignment') is not None:
        sampling['held_out_check'] = check_alignment(
            start if not improved else out / 'best_dsrnet.pt', frames, start_model.scale)
        measured = sampling['held_out_check']['measured']
        sampling['held_out_check']['inherited'] = list(sampling['point_alignment'])
        if measured != list(sampling['point_alignment']):
            LOGGER.warning('on the held-out frames point samples land at %s, the starting '
                           'model records %s (kept; check with python -m training.checkpoints '
                           'calibrate-phase)',
                           measured, sampling['point_alignment'])
    export = write_node_checkpoint(out / EXPORT_NAME, best_model, start_meta, provenance,
                                   metrics, config, sampling or None)
    what = 'fine-tuned epoch %d' % best_epoch if improved else 'the starting model (asked)'
    print(f'wrote {export} ({what}); run it with weights_path:={export}')
    return 0


def _lr_geometry(sources: Sequence[BagSource]) -> Any:
    """The sampling geometry the node gives the real LR frames (``sampling: auto``): from
    the LR topic's camera_info binning, native when it has none."""
    from dsr_ros.sampling_geometry import geometry_for
    info = next((s.survey[s.topics['lr_info']] for s in sources if s.topics.get('lr_info')),
                None)
    binning = info.camera['binning'][::-1] if info is not None and info.camera else None
    return geometry_for('auto', None, binning)


def _train(trainer: Any, args: argparse.Namespace, config: Dict[str, Any]) -> None:
    """Epochs until the budget (time, steps, the config's cap) is spent; at least one."""
    steps_per_epoch = math.ceil(config['data']['patches_per_epoch']
                                / config['data']['batch_size'])
    max_steps = _max_steps(args)
    budget = args.minutes * 60.0
    began = time.monotonic()
    done = 0
    while trainer.epoch < trainer.total_epochs:
        if max_steps is not None and done * steps_per_epoch >= max_steps:
            break
        elapsed = time.monotonic() - began
        if done and elapsed + elapsed / done > budget:
            break
        row = trainer.train_epoch()
        done += 1
        best = ' (best so far)' if row['val_e_dsr'] <= trainer.best_val else ''
        print(f'epoch {row["epoch"]}: held-out error {row["val_e_dsr"]:.5f} after it '
              f'(start {trainer.history[0]["e_dsr_before"]:.5f}){best}', flush=True)


def _max_steps(args: argparse.Namespace) -> Optional[int]:
    """``--max-steps``, capped by ``DSR_FINETUNE_MAX_STEPS`` (smoke tests of the README)."""
    steps = args.max_steps
    if os.environ.get('DSR_FINETUNE_MAX_STEPS'):
        steps = min(steps or 1 << 62, int(os.environ['DSR_FINETUNE_MAX_STEPS']))
    return steps


def _provenance(args: argparse.Namespace, start: Path, start_meta: Dict[str, Any],
                sources: List[BagSource], vals: List[BagSource], stretches: list,
                rgb: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    argv = [str(a) for a in (args.argv or [])]
    return {'kind': 'training.finetune', 'command': 'python -m training.finetune '
            + ' '.join(argv), 'bags': [s.provenance() for s in sources],
            'val_bags': [s.provenance() for s in vals],
            'held_out': [s.as_dict() for s in stretches],
            'start_model': {'path': str(start.resolve()), 'sha256': file_sha256(start),
                            'weights_sha256': start_meta.get('weights_sha256'),
                            'provenance': start_meta.get('provenance', {})},
            'recipe': 'the starting model\'s config (checkpoint metadata) with these changes',
            'recipe_changes': {k: v for k, v in changes.items() if k != 'data'},
            'rgb': rgb, 'budget_minutes': args.minutes, 'max_steps': args.max_steps,
            **git_state(), 'host': platform.node(), 'python': platform.python_version(),
            'torch': str(torch.__version__),
            'started': datetime.datetime.now(datetime.timezone.utc).isoformat()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    if not args.verbose:
        logging.getLogger('training.train').setLevel(logging.WARNING)
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f'\ninterrupted: finished epochs are kept in {args.out / "last.pt"}; continue '
              f'with: {resume_command("training.finetune", argv)}', file=sys.stderr)
        return 130
    except (ConfigError, TrainingDiverged, ValueError, OSError) as error:
        print(f'finetune: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
