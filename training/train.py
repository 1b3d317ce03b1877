"""The training loop of cross-task distillation (Algorithm 1 of Sun et al., CVPR 2021).

    python -m training.train --config training/configs/lite_x4.yaml --out runs/lite_x4 [--resume]

The method itself (nets, optimisers, roles, freezing, one step) is
:class:`training.model.CrossTaskModel`; this module runs it: epochs, held-out validation,
role choice and its warnings, checkpoints, logging and the command line. Stage 1 trains DSRNet
and DENet independently; stage 2 picks a student every epoch (``schedule.role_policy``). The
DSRNet with the lowest held-out error is exported as a node-ready ``best_dsrnet.pt``, the last
one as ``final_dsrnet.pt``.

Every epoch ends with an atomic ``last.pt``; ``--resume`` restores it and replays the epoch that
was interrupted exactly (patches are drawn from ``(seed, epoch, index)``), so a killed run ends
with the weights an uninterrupted run would have. Multi-process: ``torchrun --nproc_per_node K
-m training.train ...`` gives every rank the same number of batches of each epoch and averages
gradients (:mod:`training.distributed`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from dsr_ros.checkpoint import atomic_torch_save, save_checkpoint
from dsr_ros.depth_scaling import SENSOR_SCALING, DepthScaling
from dsr_ros.inference import resolve_device
from training import losses
from training.config import ConfigError, load_config, total_epochs
from training.data.overlap import resolve_overlaps
from training.data.patches import PatchDataset
from training.data.sample import RGBDSample
from training.data.sensor_degradation import SensorDegradation
from training.distributed import all_reduce_mean, init_distributed, shard_indices
from training.model import (ROLE_TEACHER, CrossTaskModel, TrainingDiverged,
                            mismatch_summary)
from training.provenance import build_provenance
from training.run_log import RunLog, negligible_terms
from training import stall, teacher_gate

__all__ = ['Trainer', 'TrainingDiverged', 'build_datasets', 'checkpoint_normalization',
           'load_data', 'main']
from training.resume_checks import (DIGEST_KEY, config_differences, digest_problem,
                                    read_state, resume_command, state_digest, state_problem)

LOGGER = logging.getLogger('training.train')
STATE_FORMAT = 'dsr_ros.training_state/1'


def build_datasets(config: Dict[str, Any], train: Sequence[RGBDSample],
                   val: Sequence[RGBDSample], cross_task: bool
                   ) -> Dict[str, Optional[PatchDataset]]:
    """The patch sets of a run: ``depth`` (every sample), ``rgb`` (RGB-D pairs), ``val``.

    ``depth`` feeds DSRNet in stage 1 and the DSRNet student in stage 2 (``mixed``); ``rgb``
    feeds DENet, and the stage-2 student when ``schedule.stage2_data`` is ``rgbd``.
    """
    data = config['data']
    common = dict(scale=config['scale'], patch_size=data['patch_size'],
                  min_valid_ratio=data['min_valid_ratio'], degradation=data['degradation'],
                  normalization=data['normalization'],
                  sensor=SensorDegradation.from_config(data['sensor']),
                  scaling=_sensor_scaling(config), scaling_jitter=data['scaling_jitter'],
                  in_channels=int(config['dsrnet'].get('in_channels', 1)),
                  given_lr=bool(data.get('given_lr')))
    noise = dict(rotate180=data['rotate180'], noise_std=data['noise_std'],
                 hole_fraction=data['hole_fraction'])
    sets: Dict[str, Optional[PatchDataset]] = {
        'depth': PatchDataset(train, patches_per_epoch=data['patches_per_epoch'],
                              seed=config['seed'], **noise, **common),
        'rgb': None}
    if any(sample.rgb is not None for sample in train):
        sets['rgb'] = PatchDataset(train, require_rgb=True, seed=config['seed'] + 1,
                                   patches_per_epoch=data['rgb_patches_per_epoch']
                                   or data['patches_per_epoch'], **noise, **common)
    sets['val'] = PatchDataset(val, patches_per_epoch=data['val_patches'], rotate180=False,
                               require_rgb=cross_task, seed=config['seed'] + 2, **common)
    return sets


def uses_cross_task(config: Dict[str, Any], train: Sequence[RGBDSample],
                    val: Sequence[RGBDSample]) -> bool:
    """Whether DENet and SPNet are built: ``loss.distill`` and RGB-D data to train them on.

    Depth-only data trains DSRNet alone with the default config (said once, not an error).
    """
    if not config['loss']['distill']:
        return False
    if not any(sample.rgb is not None for sample in train):
        LOGGER.warning('no RGB-D pair among the training samples: training DSRNet alone '
                       '(loss.distill needs registered RGB)')
        return False
    if not any(sample.rgb is not None for sample in val):
        raise ConfigError('data.val has no RGB-D sample: DENet\'s held-out error (roles, '
                          'teacher gating) needs one; add one or set loss.distill: false')
    return True


class Trainer:
    """Runs the two-stage schedule of one :class:`CrossTaskModel` and persists it."""

    def __init__(self, config: Dict[str, Any], out_dir: Path,
                 train_samples: Sequence[RGBDSample], val_samples: Sequence[RGBDSample],
                 provenance: Optional[Dict[str, Any]] = None, progress: bool = True) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.provenance = dict(provenance or {})
        self.rank, self.world = init_distributed()
        self.device = resolve_device(config['device'])
        if config['torch_threads']:
            torch.set_num_threads(int(config['torch_threads']))
        if self.device.type == 'cuda':
            # Patches have one fixed size: let cuDNN pick its fastest kernels once.
            torch.backends.cudnn.benchmark = True
        # Tiny gradients and Adam moments turn denormal on CPUs, where denormal arithmetic is
        # many times slower; flushing them to zero changes nothing that matters to training.
        torch.set_flush_denormal(True)
        torch.manual_seed(config['seed'])
        cross_task = uses_cross_task(config, train_samples, val_samples)
        self.model = CrossTaskModel(config, self.device, cross_task, self.world)
        self.datasets = build_datasets(config, train_samples, val_samples, cross_task)
        self.log = RunLog(self.out_dir) if self.rank == 0 else None
        self.epoch = 0
        self.best_val = math.inf
        self.history: List[Dict[str, Any]] = []
        self._last_val: Dict[str, float] = {}
        self._last_val_epoch = -1

    @property
    def total_epochs(self) -> int:
        return total_epochs(self.config)

    def _loader(self, dataset: PatchDataset, epoch: int) -> DataLoader:
        dataset.set_epoch(epoch)
        indices = shard_indices(len(dataset), self.rank, self.world)
        data = self.config['data']
        return DataLoader(Subset(dataset, indices), batch_size=data['batch_size'], shuffle=False,
                          num_workers=data['num_workers'], drop_last=False)

    def _to_device(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        memory_format = (torch.channels_last if self.config['channels_last']
                         else torch.contiguous_format)
        return {key: value.to(self.device, non_blocking=True).contiguous(
                    memory_format=memory_format) if value.dim() == 4 else value.to(self.device)
                for key, value in batch.items()}

    # ----------------------------------------------------------------- validation and roles
    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Held-out mean |D - D_hr| (normalised units) of DSRNet and, if present, DENet."""
        sums = {'e_dsr': 0.0, 'e_de': 0.0, 'e_base': 0.0, 'count': 0.0}
        self.model.train_mode(False)
        for batch in self._loader(self.datasets['val'], 0):
            for key, value in self.model.held_out_sums(self._to_device(batch)).items():
                sums[key] += value
        self.model.train_mode(True)
        sums = all_reduce_mean(sums, self.world)
        count = max(sums['count'], 1e-12)
        return {'e_dsr': sums['e_dsr'] / count, 'e_base': sums['e_base'] / count,
                'e_de': sums['e_de'] / count if self.model.cross_task else math.nan}

    def _warn_if_one_teacher(self, role: str) -> None:
        """Say loudly when the same net has taught in every stage-2 epoch so far.

        Not for DSRNet alone (no teacher) nor under ``role_policy: dsr_student``, whose point
        is that DENet always teaches.
        """
        if not self.model.cross_task or self.config['schedule']['role_policy'] == 'dsr_student':
            return
        roles = [row['student'] for row in self.history if row['stage'] == 2] + [role]
        if self.rank or len(roles) < 2 or len(set(roles)) > 1 or role not in ROLE_TEACHER:
            return
        if role == 'de':
            LOGGER.warning('DSRNet has been the teacher in all %d stage-2 epochs so far: it '
                           'never learns from DENet, so this run delivers its stage-1 DSRNet '
                           '(schedule.role_policy: %s; dsr_student makes DSRNet the student)',
                           len(roles), self.config['schedule']['role_policy'])
        else:
            LOGGER.warning('DENet has been the teacher in all %d stage-2 epochs so far: it '
                           'is never trained in stage 2', len(roles))

    # ----------------------------------------------------------------- the loop
    def train(self) -> Dict[str, Any]:
        """Run (or continue) the schedule; return the final history row."""
        row: Dict[str, Any] = {}
        try:
            while self.epoch < self.total_epochs:
                row = self.train_epoch()
            if self.rank == 0:
                # The equal-budget ablations compare final weights; best_dsrnet.pt is the
                # product.
                self.export(self.out_dir / 'final_dsrnet.pt')
        finally:
            if self.log is not None:
                self.log.close()
        return row

    def _epoch_sources(self, role: str) -> List[Tuple[str, PatchDataset]]:
        """(step kind, patch set) pairs of an epoch; stage 1 interleaves DSRNet and DENet."""
        sets = self.datasets
        if role == 'both':
            return [('dsr', sets['depth'])] + ([('de', sets['rgb'])]
                                               if self.model.cross_task else [])
        mixed = self.config['schedule']['stage2_data'] == 'mixed'
        if not self.model.cross_task:
            # DSRNet alone sees the very patches the cross-task DSRNet student sees.
            return [('dsr', sets['depth'] if mixed or sets['rgb'] is None else sets['rgb'])]
        if role == 'dsr' and mixed:
            return [('stage2', sets['depth'])]
        return [('stage2', sets['rgb'])]

    def train_epoch(self) -> Dict[str, Any]:
        """Train one epoch, log it, checkpoint it; return its history row."""
        epoch = self.epoch
        # The held-out errors after the previous epoch are those of the current weights.
        errors = self._last_val if self._last_val_epoch == epoch else self.validate()
        if epoch == 0 and math.isinf(self.best_val):
            self._score_start(errors['e_dsr'])
        role = self.model.choose_role(epoch, errors)
        stage = 1 if role == 'both' else 2
        if stage == 2:
            self._warn_if_one_teacher(role)
            teacher_gate.check_epoch(self, role, errors)
        self.model.begin_epoch(role, errors)
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        samples = 0
        start = time.perf_counter()
        batches = _Batches([(kind, self._loader(dataset, epoch))
                            for kind, dataset in self._epoch_sources(role)])
        label = _role_label(role, self.model.cross_task)
        bar = tqdm(batches, total=len(batches), desc=f'epoch {epoch + 1}/{self.total_epochs} '
                   f'[{label}]', disable=not self.progress or self.rank != 0, leave=False,
                   dynamic_ncols=True)
        for kind, batch in bar:
            batch = self._to_device(batch)
            try:
                terms = self.model.step(kind, batch, role)
            except TrainingDiverged as error:
                raise TrainingDiverged(f'{error} at epoch {epoch + 1}; the last good '
                                       f'checkpoint is kept at {self.out_dir / "last.pt"}'
                                       ) from error
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            samples += batch['hr'].shape[0]
            bar.set_postfix({k: f'{v:.4f}' for k, v in terms.items() if k.startswith('l_')})
        elapsed = time.perf_counter() - start
        self.model.end_epoch(stage)
        self.model.set_frozen('both')
        self.epoch = epoch + 1
        val = self.validate()
        self._last_val, self._last_val_epoch = val, self.epoch
        row = {'epoch': self.epoch, 'stage': stage, 'role': label, 'student': role,
               'e_dsr_before': errors['e_dsr'], 'e_de_before': errors['e_de'],
               'val_e_dsr': val['e_dsr'], 'val_e_de': val['e_de'],
               **self.model.learning_rates(), 'output_weight': self.model.output_weight,
               'samples_per_s': samples * self.world / max(elapsed, 1e-9),
               'epoch_s': elapsed, 'peak_mem_mb': _peak_memory_mb(self.device),
               'affinity_mem_bound_mb': self._affinity_bound_mb()}
        row.update({name: sums[name] / counts[name] for name in sorted(sums)})
        row.update(stall.flag_epoch(val, self.config, self.epoch))
        self.history.append(row)
        if self.rank == 0:
            improved = val['e_dsr'] < self.best_val
            if improved:
                self.best_val = val['e_dsr']
                self.export(self.out_dir / 'best_dsrnet.pt')
            self._log(row, improved)
            self.save_state(self.out_dir / 'last.pt')
            if self.epoch == int(self.config['schedule']['stage1_epochs']):
                self.save_state(self.out_dir / 'stage1_end.pt')
        return row

    def _score_start(self, e_dsr: float) -> None:
        """The starting weights (init_weights, or the random start) are the first candidate for
        best: a run that never beats them exports them, not a worse epoch."""
        self.best_val = e_dsr
        if self.rank == 0:
            self.export(self.out_dir / 'best_dsrnet.pt')
            LOGGER.info('starting weights: held-out e_dsr %.5f (epoch 0, the one to beat)',
                        e_dsr)

    def _affinity_bound_mb(self) -> float:
        data = self.config['data']
        patch = data['patch_size']
        return losses.affinity_memory_bytes(data['batch_size'], patch, patch,
                                            self.config['loss']['affinity_size'],
                                            self.model.dsrnet.num_blocks) / 2 ** 20

    def _log(self, row: Dict[str, Any], improved: bool) -> None:
        self.log.write(row)
        terms = ' '.join(f'{k}={v:.3g}' for k, v in row.items()
                         if k.startswith(('l_', 'share_')))
        LOGGER.info('epoch %d/%d stage %d role %s | held-out after it: e_dsr %.5f e_de %.5f '
                    '| %s | lr %.2e | %.1f samples/s | peak %.0f MB (affinity bound %.1f MB)%s',
                    row['epoch'], self.total_epochs, row['stage'], row['role'],
                    row['val_e_dsr'], row['val_e_de'], terms, row['lr'],
                    row['samples_per_s'], row['peak_mem_mb'], row['affinity_mem_bound_mb'],
                    ' | new best DSRNet' if improved else '')
        for name, share in negligible_terms(row).items():
            LOGGER.warning('epoch %d: %s adds only %.2g of the task loss: it barely teaches',
                           row['epoch'], name.replace('share_', 'l_'), share)

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> Dict[str, Any]:
        return {'format': STATE_FORMAT, 'epoch': self.epoch, 'best_val': self.best_val,
                'history': self.history, 'config': self.config,
                'provenance': self.provenance, **self.model.state_dict(),
                'torch_rng': torch.get_rng_state()}

    def save_state(self, path: Path) -> None:
        """Atomic write: a run killed while saving keeps the previous good state."""
        state = self.state_dict()
        state[DIGEST_KEY] = state_digest(state)  # torch does not check its zip CRCs
        atomic_torch_save(state, path)

    def load_state(self, path: Path, fork: bool = False) -> None:
        """Restore a state written by :meth:`save_state`.

        ``fork`` starts a *different* config from another run's state (e.g. an ablation's
        stage 2 from ``stage1_end.pt`` of a shared stage-1 run, so every arm shares data, seed
        and initialisation): only the networks and optimisers this run has are restored, the
        config may differ, and the parent's provenance is kept under ``forked_from``.
        """
        try:
            state = read_state(path, STATE_FORMAT)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        problem = state_problem(state, self.total_epochs) or digest_problem(state)
        if problem:
            raise ConfigError(f'cannot resume from {os.fspath(path)!r}: {problem}')
        if not fork and state['config'] != self.config:
            keys = config_differences(state['config'], self.config)
            raise ConfigError(f'cannot resume from {os.fspath(path)!r}: it was written with a '
                              f'different config (differs in {", ".join(keys[:8])}'
                              f'{", ..." if len(keys) > 8 else ""}); start a new --out or '
                              'restore that config')
        try:
            self.model.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError) as error:
            raise ConfigError(f'cannot start from {os.fspath(path)!r}: its networks do not '
                              f'match this config ({mismatch_summary(error)})') from None
        torch.set_rng_state(state['torch_rng'])
        self.epoch = int(state['epoch'])
        self.best_val = float(state['best_val'])
        self.history = list(state['history'])
        if fork:
            self.provenance['forked_from'] = {'path': os.fspath(path), 'epoch': self.epoch,
                                              'config_name': state['config']['name'],
                                              'provenance': state.get('provenance', {})}
        elif state.get('provenance'):
            # A resumed run keeps the provenance it started with (fork included).
            self.provenance = dict(state['provenance'],
                                   resumed=self.provenance.get('started'))

    def export(self, path: Path) -> Path:
        """Write the current DSRNet as a node-ready checkpoint."""
        return save_checkpoint(
            path, self.model.dsrnet, normalization=checkpoint_normalization(self.config),
            provenance=dict(self.provenance, epoch=self.epoch,
                            exported=datetime.datetime.now(datetime.timezone.utc).isoformat()),
            metrics={'val_e_dsr': self.best_val, 'val_history': [
                {k: v for k, v in row.items() if k in ('epoch', 'val_e_dsr', 'role')}
                for row in self.history]},
            config=self.config)


def _sensor_scaling(config: Dict[str, Any]) -> DepthScaling:
    scaling = config['data'].get('scaling')
    return DepthScaling(**scaling) if scaling else SENSOR_SCALING


def checkpoint_normalization(config: Dict[str, Any]) -> Dict[str, Any]:
    """How a net trained with ``config`` expects its input scaled (stored in checkpoints).

    Sensor models: the configured :class:`DepthScaling` (metres / 10 by default). Research
    models: ``minmax`` is per-image min-max (``range`` 0-100); ``fixed`` is 8-bit disparity /
    255 (its other units were divided by each image's maximum, which no scaling reproduces).
    """
    data = config['data']
    if data['degradation'] == 'sensor':
        return _sensor_scaling(config).to_dict()
    if data['normalization'] == 'fixed':
        return DepthScaling('fixed', max_value=255.0, unit='disparity_8bit').to_dict()
    return DepthScaling('range').to_dict()


class _Batches:
    """Interleaves the loaders of one epoch (stage 1 alternates DSRNet and DENet batches)."""

    def __init__(self, loaders: List[tuple]) -> None:
        self.loaders = loaders
        lengths = [len(loader) for _, loader in loaders]
        self.layout = []
        for index in range(max(lengths)):
            for (kind, _), length in zip(loaders, lengths):
                if index < length:
                    self.layout.append((kind, index))

    def __len__(self) -> int:
        return len(self.layout)

    def __iter__(self):
        iterators = {kind: iter(loader) for kind, loader in self.loaders}
        for kind, _ in self.layout:
            yield kind, next(iterators[kind])


def _role_label(role: str, cross_task: bool) -> str:
    if role == 'both':
        return 'independent' if cross_task else 'dsr-only'
    if not cross_task:
        return 'dsr-only'
    return 'teacher=DENet student=DSRNet' if role == 'dsr' else 'teacher=DSRNet student=DENet'


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_source(spec: Dict[str, Any]) -> List[RGBDSample]:
    """Samples of one data-source spec: procedural, or any reader of training.data."""
    if spec['type'] == 'synthetic':
        from training.data.synthetic import synthetic_samples
        return synthetic_samples(**{k: v for k, v in spec.items() if k != 'type'})
    if spec['type'] == 'rooms':
        from training.data.synthetic import room_samples
        return room_samples(**{k: v for k, v in spec.items() if k != 'type'})
    from training.data.readers import load_samples
    return load_samples(spec)


def load_data(config: Dict[str, Any]) -> Tuple[List[RGBDSample], List[RGBDSample], List[str]]:
    """Train and held-out samples, and the training names dropped for overlapping them.

    A held-out scene never trains under any name (:mod:`training.data.overlap`).
    """
    val = [s for spec in config['data']['val'] for s in load_source(spec)]
    if not val:
        raise ConfigError('data.val names no held-out samples; roles and model selection '
                          'need them')
    train = [s for spec in config['data']['train'] for s in load_source(spec)]
    train, dropped = resolve_overlaps(train, val)
    if not train:
        raise ConfigError('no training sample is left once the held-out scenes are removed')
    return train, val, dropped


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True, help='YAML file under training/configs/')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config key, e.g. --set seed=1 '
                        '(repeatable; recorded in the config and provenance)')
    parser.add_argument('--out', default=None, help='run directory (default runs/<name>)')
    parser.add_argument('--resume', action='store_true', help='continue from OUT/last.pt')
    parser.add_argument('--init-from', default=None,
                        help='start from another run\'s state (e.g. its stage1_end.pt) with '
                             'this config: the equal-budget ablation fork')
    parser.add_argument('--export', default=None,
                        help='also copy the best DSRNet checkpoint to this path at the end')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    trainer = None
    try:
        config = load_config(args.config, args.overrides)
        out_dir = Path(args.out or Path('runs') / config['name'])
        train, val, dropped = load_data(config)
        provenance = build_provenance(config, args.config, train, val, args.overrides,
                                      dropped, int(os.environ.get('WORLD_SIZE', '1')),
                                      str(config['device']))
        trainer = Trainer(config, out_dir, train, val, provenance, not args.no_progress)
        if args.init_from and not (args.resume and (out_dir / 'last.pt').exists()):
            trainer.load_state(Path(args.init_from), fork=True)
            LOGGER.info('forked from %s at epoch %d', args.init_from, trainer.epoch)
        if args.resume:
            state = out_dir / 'last.pt'
            if state.exists():
                trainer.load_state(state)
                LOGGER.info('resumed %s at epoch %d', state, trainer.epoch)
            else:
                LOGGER.info('nothing to resume in %s; starting fresh', out_dir)
        elif (out_dir / 'last.pt').exists():
            raise ConfigError(f'{out_dir} already holds a run; pass --resume or another --out')
        if trainer.rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / 'config.json').write_text(json.dumps(config, indent=2))
        LOGGER.info('training %s: %d train / %d held-out samples, %d epochs on %s',
                    config['name'], len(train), len(val), trainer.total_epochs, trainer.device)
        trainer.train()
    except (ConfigError, TrainingDiverged, ValueError, OSError) as error:
        LOGGER.error('%s', error)
        return 1
    except KeyboardInterrupt:
        print(f'\ninterrupted: finished epochs are kept; continue with: '
              f'{resume_command("training.train", argv)}', file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    best = out_dir / 'best_dsrnet.pt'
    if args.export and trainer.rank == 0:
        import shutil
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, args.export)
        LOGGER.info('exported %s', args.export)
    LOGGER.info('done: best held-out e_dsr %.5f, node-ready checkpoint %s', trainer.best_val,
                best)
    return 0


if __name__ == '__main__':
    sys.exit(main())
