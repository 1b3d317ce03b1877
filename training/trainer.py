"""The loop that runs one :class:`training.model.CrossTaskModel` through its two stages.

Stage 1 trains DSRNet and DENet independently; stage 2 picks a student every epoch
(``schedule.role_policy``). Every epoch starts from the held-out errors of the current weights
(they choose the role), ends with a history row, the logs, an atomic ``last.pt``, and a
``best_dsrnet.pt`` whenever DSRNet's held-out error improves; the run ends with
``final_dsrnet.pt``. What is written and read back is :mod:`training.run_state`; the patch sets
come from :mod:`training.run_data`; the command line is :mod:`training.train`.
"""

from __future__ import annotations

import logging
import math
import resource
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from dsr_ros.device import resolve_device
from training import losses, stall, teacher_gate
from training.config import total_epochs
from training.data.patches import PatchDataset
from training.data.sample import RGBDSample
from training.distributed import all_reduce_mean, init_distributed, shard_indices
from training.model import CrossTaskModel, TrainingDiverged
from training.run_data import build_datasets, uses_cross_task
from training.run_log import RunLog, negligible_terms
from training.run_state import (STATE_FORMAT, continued_provenance, export_dsrnet,
                                restore_state, write_state)
from training.side_heads import ROLE_TEACHER

__all__ = ['Trainer']

LOGGER = logging.getLogger('training.train')


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
        pixels = {'hr_pixels_seen': 0, 'rgb_pixels_seen': 0}
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
            pixels[_pixel_column(kind, role)] += batch['hr'].numel()
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
        row.update(self._pixels_seen(pixels))
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

    def _pixels_seen(self, epoch_pixels: Dict[str, int]) -> Dict[str, float]:
        """The run's cumulative training pixels (all ranks) up to and with this epoch.

        ``hr_pixels_seen``: HR depth pixels of the patches DSRNet was trained on (stage 1, and
        stage 2 as the student); ``rgb_pixels_seen``: HR pixels of the RGB-D patches the RGB
        net (DENet or the guided teacher) was trained on. A teacher's forward passes do not
        count. Continued from the previous row (a resumed or forked run keeps counting); NaN
        after a row from before these columns existed.
        """
        last = self.history[-1] if self.history else {}
        return {name: float(last.get(name, math.nan if last else 0.0)) + value * self.world
                for name, value in epoch_pixels.items()}

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
        """Everything needed to continue this run bit-identically."""
        return {'format': STATE_FORMAT, 'epoch': self.epoch, 'best_val': self.best_val,
                'history': self.history, 'config': self.config,
                'provenance': self.provenance, **self.model.state_dict(),
                'torch_rng': torch.get_rng_state()}

    def save_state(self, path: Path) -> None:
        """Atomic write: a run killed while saving keeps the previous good state."""
        write_state(self.state_dict(), path)

    def load_state(self, path: Path, fork: bool = False) -> None:
        """Restore a state written by :meth:`save_state`.

        ``fork`` starts a *different* config from another run's state (the equal-budget
        ablation fork, :func:`training.run_state.restore_state`); the parent's provenance is
        kept under ``forked_from``.
        """
        state = restore_state(path, self.model, self.config, self.total_epochs, fork)
        torch.set_rng_state(state['torch_rng'])
        self.epoch = int(state['epoch'])
        self.best_val = float(state['best_val'])
        self.history = list(state['history'])
        self.provenance = continued_provenance(self.provenance, state, path, fork)

    def export(self, path: Path) -> Path:
        """Write the current DSRNet as a node-ready checkpoint."""
        return export_dsrnet(path, self.model.dsrnet, self.config, self.provenance, self.epoch,
                             self.best_val, self.history)


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


def _pixel_column(kind: str, role: str) -> str:
    """Which net a step of ``kind`` trains: DSRNet (``hr_pixels_seen``) or the RGB net."""
    trains_dsr = kind == 'dsr' or (kind == 'stage2' and role == 'dsr')
    return 'hr_pixels_seen' if trains_dsr else 'rgb_pixels_seen'


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
