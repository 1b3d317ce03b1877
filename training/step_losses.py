"""The losses of one step of :class:`training.model.CrossTaskModel`, and their report.

:func:`distillation_terms` wires the stage-2 terms of the paper on the RGB-D rows of a batch:
``L_O`` (side outputs, or final outputs with ``loss.distill_target: final``), ``L_A``
(affinity of the features) and ``L_struc`` (SPNet's structure prediction), each with the weight
it adds to the student's loss. :func:`loss_report` turns raw terms into the logged numbers.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from training import losses
from training.networks import structure_map

__all__ = ['distillation_terms', 'loss_report', 'side_loss']

#: ``(depth, features, side outputs)`` of one net on a batch.
NetOutputs = Tuple[torch.Tensor, Sequence[torch.Tensor], Sequence[torch.Tensor]]


def side_loss(sides: Sequence[torch.Tensor], target: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """GT supervision of the side outputs (not in the paper: ``loss.side_weight``)."""
    return torch.stack([losses.masked_l1(s.float(), target, mask) for s in sides]).mean()


def distillation_terms(cfg: Dict[str, Any], student: str, student_out: NetOutputs,
                       teacher_out: NetOutputs, sub: Dict[str, torch.Tensor], fraction: float,
                       output_weight: float, spnet: Optional[nn.Module]
                       ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor],
                                  Optional[float]]:
    """Raw terms, what each adds to the loss, and the affinity row peak (None without L_A).

    ``student_out`` and ``teacher_out`` are on the RGB-D rows ``sub`` of the batch only, the
    teacher's detached; ``fraction`` is those rows' part of the batch, so every sample adds its
    own loss. ``cfg`` is the ``loss`` section of the config.
    """
    s_depth, s_feats, s_sides = student_out
    t_depth, t_feats, t_sides = teacher_out
    terms: Dict[str, torch.Tensor] = {}
    added: Dict[str, torch.Tensor] = {}
    peak = None
    if cfg['use_output']:
        # the paper: side outputs D^n; 'final': the nets' outputs D
        s_out, t_out = ((s_sides, t_sides) if cfg['distill_target'] == 'sides'
                        else ([s_depth], [t_depth.float()]))
        gates = None
        if cfg['output_gating'] == 'pixel':
            gates = [losses.teacher_better_mask(s, t, sub['hr'], sub['valid'])
                     for s, t in zip(s_out, t_out)]
        terms['l_o'] = losses.output_loss(s_out, t_out, gates)
        added['l_o'] = fraction * cfg['rho2'] * output_weight * terms['l_o']
    if cfg['use_affinity']:
        s_float = [f.float() for f in s_feats]
        terms['l_a'] = losses.affinity_loss(
            s_float, [f.float() for f in t_feats], cfg['affinity_size'],
            cfg['affinity_normalize'], cfg['affinity_temperature'], cfg['affinity_center'])
        added['l_a'] = fraction * cfg['rho2'] * cfg['gamma'] * terms['l_a']
        peak = losses.affinity_row_peak(
            [f.detach() for f in s_float], cfg['affinity_size'], cfg['affinity_normalize'],
            cfg['affinity_temperature'], cfg['affinity_center'])
    if cfg['use_spnet']:
        sr = (s_feats[-1], s_depth) if student == 'dsr' else (t_feats[-1], t_depth.float())
        de = (t_feats[-1], t_depth.float()) if student == 'dsr' else (s_feats[-1], s_depth)
        structure = spnet(sr[0], sr[1], de[0], de[1], sub['hr'])
        target = structure_map(sub['hr'], cfg['structure_kernel'])
        terms['l_struc'] = losses.masked_l1(structure.float(), target, sub['valid'])
        added['l_struc'] = fraction * cfg['rho1'] * terms['l_struc']
    return terms, added, peak


def loss_report(terms: Dict[str, torch.Tensor], task: torch.Tensor,
                added: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Raw terms, ``share_<term>`` (what each auxiliary term added, relative to the task) and
    ``frac_<term>`` (each term's part of the whole loss, ``frac_task`` included)."""
    report = {name: value.item() for name, value in terms.items()}
    scale = max(task.item(), 1e-12)
    added_values = {name[2:]: value.item() for name, value in added.items()}
    report.update({f'share_{name}': value / scale for name, value in added_values.items()})
    total = max(task.item() + sum(added_values.values()), 1e-12)
    report['frac_task'] = task.item() / total
    report.update({f'frac_{name}': value / total for name, value in added_values.items()})
    return report
