"""The cross-task model of Sun et al. (CVPR 2021): nets, optimisers, roles and one step.

Like a BasicSR "model", :class:`CrossTaskModel` owns the networks (DSRNet, DENet, their side
outputs, SPNet), their optimisers and schedules, decides who learns in an epoch (the role),
freezes the teacher, and runs one optimisation step on a batch, returning a dict of named
losses. It knows nothing of epochs on disk, data loaders, logging or the command line: that is
the loop in :mod:`training.train`.

Step kinds:

- ``'dsr'``: DSRNet alone, ``L_DSR + side_weight L_side`` (stage 1, and the DSRNet-alone arm).
- ``'de'``: DENet alone, ``L_DE + side_weight L_side`` (stage 1).
- ``'stage2'``: the student of this epoch's role learns from the frozen, detached teacher:
  ``L_task + side_weight L_side + f (rho1 L_struc + rho2 (w_O L_O + gamma L_A))``. ``L_task``
  and ``L_side`` are over the whole batch; the distillation and structure terms over its RGB-D
  rows only, and ``f`` is their fraction of the batch, so every sample adds its own loss:
  depth-only samples the task loss, RGB-D samples task + distillation + structure
  (``schedule.stage2_data: mixed``). ``w_O`` is 1 (the paper) unless ``loss.output_gating``
  says otherwise.

Every returned term ``l_*`` is the raw (unweighted) value; ``share_*`` is what the term added to
the loss divided by the task loss, so a negligible term is visible in the log; ``frac_*`` is
each term's part of the student's whole loss (``frac_task`` + the others = 1).

Distillation that carries something (issue 28). The paper's ``L_O`` compares the side outputs
``D_sr^n`` with ``D_de^n`` (``loss.distill_target: sides``); a side head means something only
once it has been trained, and the paper does not say how it is. Our reading is deep
supervision: ``loss.side_weight > 0`` supervises every side output of both nets against
``D_hr`` in both stages. ``distill_target: final`` distils the final outputs instead. The model
counts the steps in which each side-output module received a non-zero gradient
(:mod:`training.side_heads`); distilling from a teacher's heads that never did is an error or
a loud warning (``checks.untrained_heads``). ``L_A`` takes a temperature
(``loss.affinity_temperature``) and optional centring (``loss.affinity_center``);
``optim.warmup_steps`` warms every optimiser's learning rate up linearly; ``optim.init:
residual`` initialises DSRNet (and the guided teacher) so that their features carry the input
from the first step (:mod:`training.weight_init`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Dict, Iterable, Sequence

import torch
from torch import nn

from dsr_ros.networks import DSRNet
from training import losses
from training.distributed import all_reduce_grads
from training.guided_teacher import GuidedTeacher, build_teacher, teacher_forward
from training.networks import SideOutputs, SPNet
from training.side_heads import (ROLE_TEACHER, UntrainedHeadError, count_head_updates,
                                 saved_head_updates, untrained_heads_problem)
from training.step_losses import distillation_terms, loss_report, side_loss
from training.warm_start import init_dsrnet_from
from training.weight_init import residual_init

__all__ = ['CrossTaskModel', 'TrainingDiverged']

LOGGER = logging.getLogger('training.train')

_FROZEN = {'dsr': ('denet', 'sides_de'), 'de': ('dsrnet', 'sides_sr')}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class CrossTaskModel:
    """DSRNet (+ DENet, side outputs, SPNet when ``cross_task``) with optimisers and one step.

    Args:
        config: a merged training config (:func:`training.config.load_config`).
        device: where the nets live.
        cross_task: build DENet and SPNet (needs RGB-D data); False is DSRNet alone.
        world: number of processes averaging gradients (``torchrun``).
    """

    def __init__(self, config: Dict[str, Any], device: torch.device, cross_task: bool,
                 world: int = 1) -> None:
        self.config = config
        self.device = device
        self.cross_task = bool(cross_task)
        self.world = int(world)
        self.dsrnet = DSRNet(scale=config['scale'], **config['dsrnet']).to(device)
        residual = config['optim'].get('init', 'torch') == 'residual'
        if residual:  # before any other net draws from the RNG: the same DSRNet in every arm
            residual_init(self.dsrnet, self.dsrnet.reconstruction[-1])
        if config.get('init_weights'):
            init_dsrnet_from(self.dsrnet, config['init_weights'])
        blocks, width = self.dsrnet.num_blocks, self.dsrnet.num_channels
        self.sides_sr = SideOutputs(width, blocks, **config['side_outputs']).to(device)
        self.modules: Dict[str, nn.Module] = {'dsrnet': self.dsrnet, 'sides_sr': self.sides_sr}
        self.optimizers = {'dsr': self._adam([self.dsrnet, self.sides_sr])}
        if self.cross_task:
            # DENet (the paper) or the guided teacher (config 'teacher'), same interface
            self.denet = build_teacher(config, blocks).to(device)
            if residual and isinstance(self.denet, GuidedTeacher):
                residual_init(self.denet, self.denet.reconstruction[-1])
            de_width = config['denet']['num_channels']
            self.sides_de = SideOutputs(de_width, blocks, **config['side_outputs']).to(device)
            self.spnet = SPNet(width, de_width, **config['spnet']).to(device)
            self.modules.update(denet=self.denet, sides_de=self.sides_de, spnet=self.spnet)
            self.optimizers['de'] = self._adam([self.denet, self.sides_de])
            self.optimizers['sp'] = self._adam([self.spnet])
        if config['channels_last']:
            # NHWC convolutions are about 1.5-2x faster on x86 CPUs (and on tensor cores).
            for module in self.modules.values():
                module.to(memory_format=torch.channels_last)
        opt = config['optim']
        self.schedulers = {
            name: torch.optim.lr_scheduler.StepLR(optimizer, opt['lr_step_epochs'],
                                                  opt['lr_gamma'])
            for name, optimizer in self.optimizers.items()}
        #: Weight of L_O this epoch (``loss.output_gating: error_ratio`` changes it).
        self.output_weight = 1.0
        #: Optimiser steps in which each side-output module received a non-zero gradient.
        self.head_updates = {name: 0 for name in ('sides_sr', 'sides_de')
                             if name in self.modules}
        self._warned: set = set()

    def _adam(self, modules: Iterable[nn.Module]) -> torch.optim.Optimizer:
        opt = self.config['optim']
        params = [p for module in modules for p in module.parameters()]
        return torch.optim.Adam(params, lr=opt['lr'], betas=tuple(opt['betas']), eps=opt['eps'])

    def autocast(self):
        """bf16 autocast on CUDA when ``amp`` is on; a no-op elsewhere."""
        enabled = bool(self.config['amp']) and self.device.type == 'cuda'
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # ----------------------------------------------------------------- roles
    def choose_role(self, epoch: int, errors: Dict[str, float]) -> str:
        """Who learns in ``epoch``: 'both' (stage 1), 'dsr' or 'de' (the stage-2 student)."""
        schedule = self.config['schedule']
        if epoch < int(schedule['stage1_epochs']):
            return 'both'
        if not self.cross_task:
            return 'dsr'
        policy = schedule['role_policy']
        if policy == 'dsr_student':
            return 'dsr'
        if policy == 'alternate':
            return 'dsr' if (epoch - int(schedule['stage1_epochs'])) % 2 == 0 else 'de'
        # The paper: the better net (lower held-out error) teaches, the other one learns.
        return 'de' if errors['e_dsr'] <= errors['e_de'] else 'dsr'

    def begin_epoch(self, role: str, errors: Dict[str, float]) -> None:
        """Freeze this epoch's teacher and set the L_O weight from the held-out errors."""
        self.set_frozen(role)
        self.check_heads(role)
        self.output_weight = 1.0
        gating = self.config['loss']['output_gating']
        if gating == 'error_ratio' and role in ROLE_TEACHER:
            student, teacher = ('e_dsr', 'e_de') if role == 'dsr' else ('e_de', 'e_dsr')
            # A teacher worse than its student teaches in proportion to how much worse it is.
            self.output_weight = min(1.0, errors[student] / max(errors[teacher], 1e-12))

    def check_heads(self, role: str) -> None:
        """Stop (``checks.untrained_heads: error``) or warn when L_O reads untrained heads."""
        problem = untrained_heads_problem(self.config, self.cross_task, self.head_updates, role)
        if not problem:
            return
        if self.config['checks']['untrained_heads'] == 'error':
            raise UntrainedHeadError(problem)
        if problem not in self._warned:  # once per run, not every epoch
            self._warned.add(problem)
            LOGGER.warning('%s', problem)

    def set_frozen(self, role: str) -> None:
        """Freeze the teacher of a stage-2 epoch (no gradients, never stepped)."""
        frozen = _FROZEN.get(role, ())
        for name, module in self.modules.items():
            for param in module.parameters():
                param.requires_grad_(name not in frozen)

    def end_epoch(self, stage: int) -> None:
        """Advance the learning-rate schedules; SPNet's counts stage-2 epochs only."""
        with warnings.catch_warnings():
            # The teacher's optimiser does not step in its frozen epochs; its schedule still
            # follows the epoch count, which is what the warning is about.
            warnings.simplefilter('ignore', UserWarning)
            for name, scheduler in self.schedulers.items():
                if name == 'sp' and stage == 1 and \
                        self.config['optim']['spnet_schedule'] == 'stage2':
                    continue
                scheduler.step()

    def learning_rates(self) -> Dict[str, float]:
        """Current learning rate of each optimiser, named ``lr`` (DSRNet) and ``lr_<name>``."""
        return {('lr' if name == 'dsr' else f'lr_{name}'): opt.param_groups[0]['lr']
                for name, opt in self.optimizers.items()}

    # ----------------------------------------------------------------- steps
    def step(self, kind: str, batch: Dict[str, torch.Tensor], role: str) -> Dict[str, float]:
        """One optimisation step of ``kind`` ('dsr', 'de' or 'stage2'); named losses back."""
        if kind == 'stage2':
            return self._step_stage2(batch, role)
        return self._step_single(batch, kind)

    def _step_single(self, batch: Dict[str, torch.Tensor], which: str) -> Dict[str, float]:
        cfg = self.config['loss']
        with self.autocast():
            if cfg['side_weight'] or which != 'dsr':
                depth, _, sides = self._forward(which, batch)
                side = side_loss(sides, batch['hr'], batch['valid'])
            else:  # nothing to supervise: skip the side outputs' HR convolutions (~1.4x faster)
                depth = self.dsrnet(batch['lr'])
                side = torch.zeros((), device=depth.device)
            task = self._task_loss(which, depth.float(), batch)
            loss = task + cfg['side_weight'] * side
        terms = {f'l_{which}': task, f'l_side_{which}': side}
        self._update(loss, [which], terms)
        return loss_report(terms, task, {f'l_side_{which}': cfg['side_weight'] * side})

    def _step_stage2(self, batch: Dict[str, torch.Tensor], student: str) -> Dict[str, float]:
        cfg = self.config['loss']
        teacher = 'de' if student == 'dsr' else 'dsr'
        rows = batch['has_rgb'].bool().view(-1)
        count = int(rows.sum())
        fraction = count / rows.numel()
        sub = {key: value[rows] for key, value in batch.items()} if count else {}
        with self.autocast():
            s_depth, s_feats, s_sides = self._forward(student, batch)
            s_depth = s_depth.float()
            task = self._task_loss(student, s_depth, batch)
            side = side_loss(s_sides, batch['hr'], batch['valid'])
            terms = {f'l_{student}': task, f'l_side_{student}': side}
            added = {f'l_side_{student}': cfg['side_weight'] * side}
            loss = task + added[f'l_side_{student}']
            if count:
                with torch.no_grad():
                    t_depth, t_feats, t_sides = self._forward(teacher, sub)
                student_out = (s_depth[rows], [f[rows] for f in s_feats],
                               [s[rows].float() for s in s_sides])
                teacher_out = (t_depth, t_feats, [t.float() for t in t_sides])
                more, more_added, peak = distillation_terms(
                    cfg, student, student_out, teacher_out, sub, fraction, self.output_weight,
                    self.spnet if self.cross_task else None)
                terms.update(more)
                added.update(more_added)
                for name in ('l_o', 'l_a', 'l_struc'):
                    if name in added:
                        loss = loss + added[name]
        updated = [student] + (['sp'] if self.cross_task and cfg['use_spnet'] else [])
        self._update(loss, updated, terms)
        report = loss_report(terms, task, added)
        report['rgbd_fraction'] = fraction
        if 'l_a' in terms:
            report['a_row_peak'] = peak  # 1.0: one-hot rows, L_A carries nothing
        return report

    def _forward(self, which: str, batch: Dict[str, torch.Tensor]):
        """``(depth, features, side outputs)`` of DSRNet ('dsr') or DENet ('de')."""
        if which == 'dsr':
            depth, feats = self.dsrnet(batch['lr'], return_features=True)
            base = (self.dsrnet._residual_base(batch['lr'][:, :1])
                    if self.sides_sr.residual and self.dsrnet.global_residual else None)
            return depth, feats, self.sides_sr(feats, base)
        depth, feats = teacher_forward(self.denet, batch)
        base = (self.denet.base(batch['lr'])
                if self.sides_de.residual and isinstance(self.denet, GuidedTeacher) else None)
        return depth, feats, self.sides_de(feats, base)

    def _task_loss(self, which: str, depth: torch.Tensor,
                   batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        if which == 'dsr':
            l1 = losses.masked_l1(depth, batch['hr'], batch['valid'])
            weight = self.config['loss'].get('dsr_l2_weight', 0.0)
            if not weight:
                return l1
            # An L2 term makes a misplaced sharp edge cost what it costs in RMSE: the net
            # hedges where the LR input cannot say where the edge is.
            squared = (depth - batch['hr']) ** 2 * batch['valid']
            return l1 + weight * squared.sum() / batch['valid'].sum().clamp_min(1.0)
        return losses.de_loss(depth, batch['hr'], batch['valid'],
                              self.config['loss']['ssim_lambda'])

    def _update(self, loss: torch.Tensor, names: Sequence[str],
                terms: Dict[str, torch.Tensor]) -> None:
        if not torch.isfinite(loss):
            detail = ', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())
            raise TrainingDiverged(f'non-finite loss {loss.item()} ({detail})')
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        count_head_updates(self.head_updates, self.modules, names)
        for name in names:
            all_reduce_grads(self.optimizers[name], self.world)
            self._step_optimizer(self.optimizers[name])

    def _step_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """One step, at a linearly warmed-up learning rate for the first ``warmup_steps``.

        The scheduled rate is restored right after the step, so the epoch schedules never see
        the warm-up; the step count is Adam's own (saved with the optimiser's state).
        """
        warmup = int(self.config['optim']['warmup_steps'])
        factor = min(1.0, (_adam_steps(optimizer) + 1) / warmup) if warmup else 1.0
        if factor >= 1.0:
            optimizer.step()
            return
        scheduled = [group['lr'] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group['lr'] = group['lr'] * factor
        optimizer.step()
        for group, rate in zip(optimizer.param_groups, scheduled):
            group['lr'] = rate

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def held_out_sums(self, batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """Sums of ``|D - D_hr|`` over valid pixels of DSRNet and DENet, and the pixel count."""
        with self.autocast():
            d_sr = self.dsrnet(batch['lr']).float()
            # the residual base (bicubic upsampling of the LR input): a DSRNet at exactly its
            # error has a dead residual branch (training/stall.py)
            base = self.dsrnet._residual_base(batch['lr'][:, :1]).float()
            sums = {'e_dsr': (d_sr - batch['hr']).abs().mul(batch['valid']).sum().item(),
                    'e_base': (base - batch['hr']).abs().mul(batch['valid']).sum().item(),
                    'count': batch['valid'].sum().item()}
            if self.cross_task:
                d_de, _ = teacher_forward(self.denet, batch)
                sums['e_de'] = ((d_de.float() - batch['hr']).abs()
                                .mul(batch['valid']).sum().item())
        return sums

    def train_mode(self, training: bool) -> None:
        for module in self.modules.values():
            module.train(training)

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> Dict[str, Any]:
        return {'modules': {name: m.state_dict() for name, m in self.modules.items()},
                'optimizers': {name: o.state_dict() for name, o in self.optimizers.items()},
                'schedulers': {name: s.state_dict() for name, s in self.schedulers.items()},
                'head_updates': dict(self.head_updates)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the nets, optimisers and schedules this model has (a fork may hold more)."""
        for name, module in self.modules.items():
            module.load_state_dict(state['modules'][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state['optimizers'][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state['schedulers'][name])
        self.head_updates.update({name: int(count) for name, count
                                  in saved_head_updates(state).items()
                                  if name in self.head_updates})


def _adam_steps(optimizer: torch.optim.Optimizer) -> int:
    """Steps an Adam optimiser has taken (the largest ``step`` among its parameters)."""
    steps = [float(state['step']) for state in optimizer.state.values() if 'step' in state]
    return int(max(steps)) if steps else 0
