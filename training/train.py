"""Cross-task distillation training of DSRNet (Algorithm 1 of Sun et al., CVPR 2021).

    python -m training.train --config training/configs/lite_x4.yaml --out runs/lite_x4 [--resume]

Stage 1 trains DSRNet (L_DSR) and DENet (L_DE) independently. Stage 2 picks, at the start of
every epoch, a teacher and a student from their held-out errors (``role_policy: errors``, the
paper), freezes and detaches the teacher and trains the student and SPNet with
``L_task + rho1 L_struc + rho2 (L_O + gamma L_A)``. The DSRNet with the lowest held-out error
is exported as a node-ready checkpoint (``best_dsrnet.pt``) whenever it improves.

Every epoch ends with an atomic ``last.pt``; ``--resume`` restores it and replays the epoch that
was interrupted exactly (patches are drawn from ``(seed, epoch, index)``), so a killed run ends
with the weights an uninterrupted run would have. Multi-GPU: ``torchrun --nproc_per_node K -m
training.train ...`` splits each epoch's patches across ranks and averages gradients.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from dsr_ros.atomic_io import atomic_write_text
from dsr_ros.checkpoint import atomic_torch_save, save_checkpoint
from dsr_ros.inference import resolve_device
from dsr_ros.networks import DSRNet
from training import losses
from training.config import ConfigError, load_config
from training.data.patches import PatchDataset
from training.data.sample import RGBDSample
from training.networks import DENet, SideOutputs, SPNet, structure_map
from training.resume_checks import state_problem

LOGGER = logging.getLogger('training.train')
STATE_FORMAT = 'dsr_ros.training_state/1'


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Owns the networks, optimisers, data and the two-stage schedule of one run."""

    def __init__(self, config: Dict[str, Any], out_dir: Path,
                 train_samples: Sequence[RGBDSample], val_samples: Sequence[RGBDSample],
                 provenance: Optional[Dict[str, Any]] = None, progress: bool = True) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.provenance = dict(provenance or {})
        self.rank, self.world = _distributed_rank()
        self.device = resolve_device(config['device'])
        if config['torch_threads']:
            torch.set_num_threads(int(config['torch_threads']))
        # Tiny gradients and Adam moments turn denormal on CPUs, where denormal arithmetic is
        # many times slower; flushing them to zero changes nothing that matters to training.
        torch.set_flush_denormal(True)
        torch.manual_seed(config['seed'])
        scale = config['scale']
        loss_cfg = config['loss']
        self.cross_task = bool(loss_cfg['distill'])
        self.dsrnet = DSRNet(scale=scale, **config['dsrnet']).to(self.device)
        blocks = self.dsrnet.num_blocks
        width = self.dsrnet.num_channels
        self.sides_sr = SideOutputs(width, blocks, **config['side_outputs']).to(self.device)
        self.modules: Dict[str, nn.Module] = {'dsrnet': self.dsrnet, 'sides_sr': self.sides_sr}
        opt = config['optim']
        self.optimizers = {'dsr': self._adam([self.dsrnet, self.sides_sr])}
        if self.cross_task:
            self.denet = DENet(num_stages=blocks, **config['denet']).to(self.device)
            de_width = config['denet']['num_channels']
            self.sides_de = SideOutputs(de_width, blocks,
                                        **config['side_outputs']).to(self.device)
            self.spnet = SPNet(width, de_width, **config['spnet']).to(self.device)
            self.modules.update(denet=self.denet, sides_de=self.sides_de, spnet=self.spnet)
            self.optimizers['de'] = self._adam([self.denet, self.sides_de])
            self.optimizers['sp'] = self._adam([self.spnet])
        if config['channels_last']:
            # NHWC convolutions are about 1.5-2x faster on x86 CPUs (and on tensor cores).
            for module in self.modules.values():
                module.to(memory_format=torch.channels_last)
        self.schedulers = {
            name: torch.optim.lr_scheduler.StepLR(optimizer, opt['lr_step_epochs'],
                                                  opt['lr_gamma'])
            for name, optimizer in self.optimizers.items()}
        data = config['data']
        common = dict(scale=scale, patch_size=data['patch_size'],
                      min_valid_ratio=data['min_valid_ratio'], degradation=data['degradation'],
                      normalization=data['normalization'])
        self.depth_set = PatchDataset(train_samples, patches_per_epoch=data['patches_per_epoch'],
                                      rotate180=data['rotate180'], noise_std=data['noise_std'],
                                      hole_fraction=data['hole_fraction'], seed=config['seed'],
                                      **common)
        self.rgb_set = None
        if any(sample.rgb is not None for sample in train_samples):
            self.rgb_set = PatchDataset(train_samples, require_rgb=True,
                                        patches_per_epoch=data['rgb_patches_per_epoch']
                                        or data['patches_per_epoch'],
                                        rotate180=data['rotate180'], noise_std=data['noise_std'],
                                        hole_fraction=data['hole_fraction'],
                                        seed=config['seed'] + 1, **common)
        self.val_set = PatchDataset(val_samples, patches_per_epoch=data['val_patches'],
                                    rotate180=False, require_rgb=self.cross_task,
                                    seed=config['seed'] + 2, **common)
        self.epoch = 0
        self.best_val = math.inf
        self.history: List[Dict[str, Any]] = []
        self._last_val: Dict[str, float] = {}
        self._last_val_epoch = -1

    # ----------------------------------------------------------------- set-up helpers
    def _adam(self, modules: Iterable[nn.Module]) -> torch.optim.Optimizer:
        opt = self.config['optim']
        params = [p for module in modules for p in module.parameters()]
        return torch.optim.Adam(params, lr=opt['lr'], betas=tuple(opt['betas']), eps=opt['eps'])

    @property
    def total_epochs(self) -> int:
        schedule = self.config['schedule']
        return int(schedule['stage1_epochs']) + int(schedule['stage2_epochs'])

    def _loader(self, dataset: PatchDataset, epoch: int) -> DataLoader:
        dataset.set_epoch(epoch)
        indices = list(range(self.rank, len(dataset), self.world))
        data = self.config['data']
        return DataLoader(Subset(dataset, indices), batch_size=data['batch_size'], shuffle=False,
                          num_workers=data['num_workers'], drop_last=False)

    def _to_device(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        memory_format = (torch.channels_last if self.config['channels_last']
                         else torch.contiguous_format)
        return {key: value.to(self.device, non_blocking=True).contiguous(
                    memory_format=memory_format) if value.dim() == 4 else value.to(self.device)
                for key, value in batch.items()}

    def _autocast(self):
        enabled = bool(self.config['amp']) and self.device.type == 'cuda'
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Held-out mean |D - D_hr| (normalised units) of DSRNet and, if present, DENet."""
        sums = {'e_dsr': 0.0, 'e_de': 0.0}
        count = 0.0
        for module in self.modules.values():
            module.eval()
        for batch in self._loader(self.val_set, 0):
            batch = self._to_device(batch)
            with self._autocast():
                d_sr = self.dsrnet(batch['lr']).float()
                weight = batch['valid'].sum().item()
                sums['e_dsr'] += (d_sr - batch['hr']).abs().mul(batch['valid']).sum().item()
                if self.cross_task:
                    d_de, _ = self.denet(batch['rgb'])
                    sums['e_de'] += ((d_de.float() - batch['hr']).abs()
                                     .mul(batch['valid']).sum().item())
            count += weight
        for module in self.modules.values():
            module.train()
        result = {'e_dsr': sums['e_dsr'] / max(count, 1.0)}
        result['e_de'] = sums['e_de'] / max(count, 1.0) if self.cross_task else math.nan
        return _all_reduce_mean(result, self.world)

    def choose_role(self, epoch: int, errors: Dict[str, float]) -> str:
        """Who learns this epoch: 'both' (stage 1), 'dsr' or 'de' (stage 2 student)."""
        if epoch < int(self.config['schedule']['stage1_epochs']):
            return 'both'
        if not self.cross_task:
            return 'dsr'
        policy = self.config['schedule']['role_policy']
        if policy == 'dsr_student':
            return 'dsr'
        if policy == 'alternate':
            stage2_index = epoch - int(self.config['schedule']['stage1_epochs'])
            return 'dsr' if stage2_index % 2 == 0 else 'de'
        # The paper: the better net (lower held-out error) teaches, the other one learns.
        return 'de' if errors['e_dsr'] <= errors['e_de'] else 'dsr'

    # ----------------------------------------------------------------- training steps
    def _step_stage1(self, batch: Dict[str, torch.Tensor], which: str) -> Dict[str, float]:
        cfg = self.config['loss']
        if which == 'dsr':
            with self._autocast():
                d_sr, feats = self.dsrnet(batch['lr'], return_features=True)
                sides = self.sides_sr(feats)
                task = losses.masked_l1(d_sr.float(), batch['hr'], batch['valid'])
                side = _side_loss(sides, batch['hr'], batch['valid'])
                loss = task + cfg['side_weight'] * side
            self._update(loss, ['dsr'], {'l_dsr': task})
            return {'l_dsr': task.item(), 'l_side_sr': side.item()}
        with self._autocast():
            d_de, feats = self.denet(batch['rgb'])
            sides = self.sides_de(feats)
            task = losses.de_loss(d_de.float(), batch['hr'], batch['valid'], cfg['ssim_lambda'])
            side = _side_loss(sides, batch['hr'], batch['valid'])
            loss = task + cfg['side_weight'] * side
        self._update(loss, ['de'], {'l_de': task})
        return {'l_de': task.item(), 'l_side_de': side.item()}

    def _step_stage2(self, batch: Dict[str, torch.Tensor], student: str) -> Dict[str, float]:
        """One student update with the teacher frozen and detached."""
        cfg = self.config['loss']
        teacher = 'de' if student == 'dsr' else 'dsr'
        with torch.no_grad(), self._autocast():
            t_depth, t_feats, t_sides = self._forward_branch(teacher, batch)
        with self._autocast():
            s_depth, s_feats, s_sides = self._forward_branch(student, batch)
            s_depth = s_depth.float()
            if student == 'dsr':
                task = losses.masked_l1(s_depth, batch['hr'], batch['valid'])
            else:
                task = losses.de_loss(s_depth, batch['hr'], batch['valid'], cfg['ssim_lambda'])
            side = _side_loss(s_sides, batch['hr'], batch['valid'])
            terms = {f'l_{student}': task, f'l_side_{student}': side}
            distill = torch.zeros((), device=self.device)
            if cfg['use_output']:
                terms['l_o'] = losses.output_loss([s.float() for s in s_sides],
                                                  [t.float() for t in t_sides])
                distill = distill + terms['l_o']
            if cfg['use_affinity']:
                terms['l_a'] = losses.affinity_loss([f.float() for f in s_feats],
                                                    [f.float() for f in t_feats],
                                                    cfg['affinity_size'],
                                                    cfg['affinity_normalize'])
                distill = distill + cfg['gamma'] * terms['l_a']
            loss = task + cfg['side_weight'] * side + cfg['rho2'] * distill
            updated = [student]
            if cfg['use_spnet']:
                sr = (s_feats[-1], s_depth) if student == 'dsr' else (t_feats[-1], t_depth)
                de = (t_feats[-1], t_depth) if student == 'dsr' else (s_feats[-1], s_depth)
                structure = self.spnet(sr[0], sr[1].float(), de[0], de[1].float(), batch['hr'])
                terms['l_struc'] = losses.masked_l1(structure.float(), structure_map(batch['hr']),
                                                    batch['valid'])
                loss = loss + cfg['rho1'] * terms['l_struc']
                updated.append('sp')
        self._update(loss, updated, terms)
        return {name: value.item() for name, value in terms.items()}

    def _forward_branch(self, which: str, batch: Dict[str, torch.Tensor]):
        if which == 'dsr':
            depth, feats = self.dsrnet(batch['lr'], return_features=True)
            return depth, feats, self.sides_sr(feats)
        depth, feats = self.denet(batch['rgb'])
        return depth, feats, self.sides_de(feats)

    def _update(self, loss: torch.Tensor, names: Sequence[str],
                terms: Dict[str, torch.Tensor]) -> None:
        if not torch.isfinite(loss):
            detail = ', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())
            raise TrainingDiverged(
                f'non-finite loss {loss.item()} at epoch {self.epoch + 1} ({detail}); '
                f'the last good checkpoint is kept at {self.out_dir / "last.pt"}')
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in names:
            _all_reduce_grads(self.optimizers[name], self.world)
            self.optimizers[name].step()

    def _set_frozen(self, role: str) -> None:
        """Freeze the teacher of a stage-2 epoch (no gradients, never stepped)."""
        frozen = {'dsr': ['denet', 'sides_de'], 'de': ['dsrnet', 'sides_sr']}.get(role, [])
        for name, module in self.modules.items():
            for param in module.parameters():
                param.requires_grad_(name not in frozen)

    # ----------------------------------------------------------------- the loop
    def train(self) -> Dict[str, Any]:
        """Run (or continue) the schedule; return the final history row."""
        row: Dict[str, Any] = {}
        while self.epoch < self.total_epochs:
            row = self.train_epoch()
        if self.rank == 0:
            # The equal-budget ablations compare final weights; best_dsrnet.pt is the product.
            self.export(self.out_dir / 'final_dsrnet.pt')
        return row

    def train_epoch(self) -> Dict[str, Any]:
        """Train one epoch, log it, checkpoint it; return its history row."""
        epoch = self.epoch
        # The held-out errors after the previous epoch are those of the current weights.
        errors = self._last_val if self._last_val_epoch == epoch else self.validate()
        role = self.choose_role(epoch, errors)
        self._set_frozen(role)
        stage = 1 if role == 'both' else 2
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        samples = 0
        start = time.perf_counter()
        batches = self._epoch_batches(epoch, role)
        bar = tqdm(batches, total=len(batches), desc=f'epoch {epoch + 1}/{self.total_epochs} '
                   f'[{_role_label(role, self.cross_task)}]', disable=not self.progress
                   or self.rank != 0, leave=False, dynamic_ncols=True)
        for kind, batch in bar:
            batch = self._to_device(batch)
            if kind == 'stage2':
                terms = self._step_stage2(batch, role)
            else:
                terms = self._step_stage1(batch, kind)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
            samples += batch['lr'].shape[0]
            bar.set_postfix({k: f'{v:.4f}' for k, v in terms.items() if k.startswith('l_')})
        elapsed = time.perf_counter() - start
        with warnings.catch_warnings():
            # The teacher's optimiser does not step in its frozen epochs; its schedule still
            # follows the epoch count, which is what the warning is about.
            warnings.simplefilter('ignore', UserWarning)
            for scheduler in self.schedulers.values():
                scheduler.step()
        self._set_frozen('both')
        self.epoch = epoch + 1
        val = self.validate()
        self._last_val, self._last_val_epoch = val, self.epoch
        row = {'epoch': self.epoch, 'stage': stage, 'role': _role_label(role, self.cross_task),
               'e_dsr_before': errors['e_dsr'], 'e_de_before': errors['e_de'],
               'val_e_dsr': val['e_dsr'], 'val_e_de': val['e_de'],
               'lr': self.optimizers['dsr'].param_groups[0]['lr'],
               'samples_per_s': samples * self.world / max(elapsed, 1e-9),
               'epoch_s': elapsed, 'peak_mem_mb': _peak_memory_mb(self.device),
               'affinity_mem_bound_mb': self._affinity_bound_mb()}
        row.update({name: sums[name] / counts[name] for name in sorted(sums)})
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

    def _epoch_batches(self, epoch: int, role: str) -> '_Batches':
        if role == 'both':
            if not self.cross_task:
                return _Batches([('dsr', self._loader(self.depth_set, epoch))])
            return _Batches([('dsr', self._loader(self.depth_set, epoch)),
                             ('de', self._loader(self.rgb_set, epoch))])
        if not self.cross_task:
            # The distillation-free ablation sees the very patches the cross-task student sees.
            source = self.rgb_set if self.rgb_set is not None else self.depth_set
            return _Batches([('dsr', self._loader(source, epoch))])
        return _Batches([('stage2', self._loader(self.rgb_set, epoch))])

    def _affinity_bound_mb(self) -> float:
        data = self.config['data']
        size = self.config['loss']['affinity_size']
        patch = data['patch_size']
        return losses.affinity_memory_bytes(data['batch_size'], patch, patch, size,
                                            self.dsrnet.num_blocks) / 2 ** 20

    def _log(self, row: Dict[str, Any], improved: bool) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / 'history.csv'
        fields = list(row)
        if path.exists():
            with path.open() as handle:
                header = handle.readline().strip().split(',')
            fields = header + [f for f in row if f not in header]
        rows = _read_csv(path) if path.exists() else []
        rows = [r for r in rows if int(r['epoch']) < row['epoch']] + [row]
        atomic_write_text(path, _csv_text(rows, fields))
        try:
            from torch.utils.tensorboard import SummaryWriter
            with SummaryWriter(os.fspath(self.out_dir / 'tb')) as writer:
                for key, value in row.items():
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        writer.add_scalar(key, value, row['epoch'])
        except ImportError:  # TensorBoard is optional; the CSV holds the same numbers.
            pass
        terms = ' '.join(f'{k}={v:.4f}' for k, v in row.items() if k.startswith('l_'))
        LOGGER.info('epoch %d/%d stage %d role %s | e_dsr %.5f e_de %.5f | %s | lr %.2e | '
                    '%.1f samples/s | peak %.0f MB (affinity bound %.1f MB)%s',
                    row['epoch'], self.total_epochs, row['stage'], row['role'],
                    row['e_dsr_before'], row['e_de_before'], terms, row['lr'],
                    row['samples_per_s'], row['peak_mem_mb'], row['affinity_mem_bound_mb'],
                    ' | new best DSRNet' if improved else '')

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> Dict[str, Any]:
        return {
            'format': STATE_FORMAT,
            'epoch': self.epoch,
            'best_val': self.best_val,
            'history': self.history,
            'config': self.config,
            'modules': {name: m.state_dict() for name, m in self.modules.items()},
            'optimizers': {name: o.state_dict() for name, o in self.optimizers.items()},
            'schedulers': {name: s.state_dict() for name, s in self.schedulers.items()},
            'torch_rng': torch.get_rng_state(),
        }

    def save_state(self, path: Path) -> None:
        """Atomic write: a run killed while saving keeps the previous good state."""
        atomic_torch_save(self.state_dict(), path)

    def load_state(self, path: Path, fork: bool = False) -> None:
        """Restore a state written by :meth:`save_state`.

        ``fork`` starts a *different* config from another run's state (e.g. an ablation's
        stage 2 from ``stage1_end.pt`` of the main run, so both arms share data, seed and
        initialisation): only the networks and optimisers this run has are restored, and the
        config may differ.
        """
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as error:  # noqa: BLE001 - report any unreadable file the same way
            raise ConfigError(f'cannot resume from {os.fspath(path)!r}: {error}') from error
        if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
            raise ConfigError(f'cannot resume from {os.fspath(path)!r}: not a training state')
        problem = state_problem(state, self.total_epochs)
        if problem:
            raise ConfigError(f'cannot resume from {os.fspath(path)!r}: {problem}')
        if not fork and state['config'] != self.config:
            raise ConfigError(f'cannot resume from {os.fspath(path)!r}: it was written with a '
                              'different config')
        try:
            for name, module in self.modules.items():
                module.load_state_dict(state['modules'][name])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state['optimizers'][name])
            for name, scheduler in self.schedulers.items():
                scheduler.load_state_dict(state['schedulers'][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise ConfigError(f'cannot start from {os.fspath(path)!r}: its networks do not '
                              f'match this config ({error})') from error
        torch.set_rng_state(state['torch_rng'])
        self.epoch = int(state['epoch'])
        self.best_val = float(state['best_val'])
        self.history = list(state['history'])
        if fork:
            self.provenance['forked_from'] = os.fspath(path)

    def export(self, path: Path) -> Path:
        """Write the current DSRNet as a node-ready checkpoint."""
        return save_checkpoint(
            path, self.dsrnet, normalization=checkpoint_normalization(self.config),
            provenance=dict(self.provenance, epoch=self.epoch,
                            exported=datetime.datetime.now(datetime.timezone.utc).isoformat()),
            metrics={'val_e_dsr': self.best_val, 'val_history': [
                {k: v for k, v in row.items() if k in ('epoch', 'val_e_dsr', 'role')}
                for row in self.history]},
            config=self.config)


def checkpoint_normalization(config: Dict[str, Any]) -> Dict[str, Any]:
    """How a net trained with ``config`` expects its input scaled (stored in checkpoints)."""
    mode = config['data']['normalization']
    return {'mode': mode, 'max_value': 255.0,
            'unit': 'per-frame min-max' if mode == 'minmax' else 'disparity_8bit / 255'}


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


def _side_loss(sides: Sequence[torch.Tensor], target: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """Deep supervision of the side outputs (our choice: they need a meaning for L_O)."""
    return torch.stack([losses.masked_l1(s.float(), target, mask) for s in sides]).mean()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _distributed_rank() -> tuple:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world > 1 and not dist.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
    if world > 1:
        return dist.get_rank(), world
    return 0, 1


def _all_reduce_grads(optimizer: torch.optim.Optimizer, world: int) -> None:
    if world <= 1:
        return
    for group in optimizer.param_groups:
        for param in group['params']:
            if param.grad is not None:
                dist.all_reduce(param.grad)
                param.grad /= world


def _all_reduce_mean(values: Dict[str, float], world: int) -> Dict[str, float]:
    if world <= 1:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / world for k, v in zip(keys, tensor.tolist())}


def _read_csv(path: Path) -> List[Dict[str, Any]]:
    with path.open(newline='') as handle:
        return list(csv.DictReader(handle))


def _csv_text(rows: List[Dict[str, Any]], fields: List[str]) -> str:
    import io
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def load_source(spec: Dict[str, Any]) -> List[RGBDSample]:
    """Samples of one data-source spec: procedural, or any reader of training.data."""
    if spec['type'] == 'synthetic':
        from training.data.synthetic import synthetic_samples
        return synthetic_samples(**{k: v for k, v in spec.items() if k != 'type'})
    from training.data.readers import load_samples
    return load_samples(spec)


def load_data(config: Dict[str, Any]) -> tuple:
    """Read the train and held-out samples; a held-out name never appears in training."""
    val = [s for spec in config['data']['val'] for s in load_source(spec)]
    if not val:
        raise ConfigError('data.val names no held-out samples; roles and model selection '
                          'need them')
    held_out = {s.name for s in val}
    train = [s for spec in config['data']['train'] for s in load_source(spec)
             if s.name not in held_out]
    return train, val


def _git_revision() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10,
                              check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''


def build_provenance(config: Dict[str, Any], config_path: str,
                     train: Sequence[RGBDSample], val: Sequence[RGBDSample]) -> Dict[str, Any]:
    """What a checkpoint says about how it was made."""
    return {
        'config_path': config_path,
        'command': ' '.join([os.path.basename(sys.executable), '-m', 'training.train']
                            + sys.argv[1:]),
        'git_revision': _git_revision(),
        'train_data': [dict(spec) for spec in config['data']['train']],
        'val_data': [dict(spec) for spec in config['data']['val']],
        'train_samples': len(train),
        'val_samples': [s.name for s in val],
        'host': platform.node(),
        'torch': str(torch.__version__),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True, help='YAML file under training/configs/')
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
    try:
        config = load_config(args.config)
        out_dir = Path(args.out or Path('runs') / config['name'])
        train, val = load_data(config)
        provenance = build_provenance(config, args.config, train, val)
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
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / 'config.json').write_text(json.dumps(config, indent=2))
        LOGGER.info('training %s: %d train / %d held-out samples, %d epochs on %s',
                    config['name'], len(train), len(val), trainer.total_epochs, trainer.device)
        trainer.train()
    except (ConfigError, TrainingDiverged, ValueError, OSError) as error:
        LOGGER.error('%s', error)
        return 1
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
