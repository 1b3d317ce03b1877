"""The teacher gate: distil only from a teacher that knows something (``checks.teacher_gate``).

Measured on the landed tree: DENet's held-out error (0.346) was worse than predicting a
constant 0.5 (0.19-0.21) or each image's median (0.16-0.21), and 60x its student's. Distilling
from it can only pull the student towards noise. So, when a teacher is about to start teaching
(the first stage-2 epoch with that teacher), its held-out error must

1. beat the best constant predictor (the median of every valid held-out HR pixel),
2. beat the per-image median predictor (each held-out patch's own HR median: an oracle), and
3. be at most ``checks.teacher_max_ratio`` x the student's held-out error, and
4. for a teacher that sees the LR depth (the guided teacher; DSRNet when it teaches DENet), be
   at least ``checks.teacher_base_margin`` (5 %) below its own bicubic base's held-out error.

Why 4: measured in the fair x8 ablation (2026-12-06), the guided teacher sat exactly at its
bicubic base through stage 1 (held-out 0.01504 against the base's 0.01505, seed 0; 0.01429
against 0.01429, seed 1) while DSRNet reached 0.81 x the base; it passed 1-3 with room to spare
(constant 0.170, per-image median 0.082, 1.2 x the student), yet knew nothing the student does
not: every depth it could give, the student's own input already holds.

Otherwise the run stops with one sentence holding the numbers (:class:`TeacherGateRefused`, a
``ConfigError``: ``training.train`` exits 1 with it), and ``OUT/gate.json`` records the verdict
either way, so an ablation driver can tabulate a refused arm.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from training.config import ConfigError

__all__ = ['TeacherGateRefused', 'baseline_errors', 'check_epoch', 'gate_problem']

LOGGER = logging.getLogger('training.train')
#: Role of a stage-2 epoch (the student) -> (teacher's name, teacher's error, student's error).
_ROLES = {'dsr': ('DENet', 'e_de', 'e_dsr'), 'de': ('DSRNet', 'e_dsr', 'e_de')}


class TeacherGateRefused(ConfigError):
    """The teacher of a stage-2 epoch failed the gate; the run stops before distilling."""


@torch.no_grad()
def baseline_errors(dataset: Any) -> Dict[str, float]:
    """Held-out mean |P - D_hr| of the best constant and of the per-image median predictors.

    ``dataset`` is the run's held-out :class:`~training.data.patches.PatchDataset` (epoch 0,
    the patches :meth:`Trainer.validate` scores), read whole on every rank (a median does not
    split over shards). Errors are means over valid pixels, like ``e_dsr`` and ``e_de``.
    """
    dataset.set_epoch(0)
    values, medians = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        valid = item['valid'].bool()
        hr = item['hr'][valid].float()
        if hr.numel():
            values.append(hr)
            medians.append(torch.full_like(hr, float(hr.median())))
    if not values:
        raise ValueError('teacher gate: the held-out patches have no valid pixel')
    everything = torch.cat(values)
    constant = float(everything.median())
    return {'constant': constant,
            'e_constant': float((everything - constant).abs().mean()),
            'e_image_median': float((everything - torch.cat(medians)).abs().mean())}


def gate_problem(teacher: str, student: str, e_teacher: float, e_student: float,
                 baselines: Dict[str, float], max_ratio: float,
                 e_base: Optional[float] = None, base_margin: float = 0.05) -> str:
    """The sentence refusing ``teacher`` (with every number), or '' when it may teach.

    ``e_base``: the held-out error of the bicubic base of the LR depth, for a teacher that sees
    the LR depth (None for one that does not, such as the paper's DENet).
    """
    failures = []
    if not e_teacher < baselines['e_constant']:
        failures.append(f'not below the best constant predictor\'s {baselines["e_constant"]:.5g}'
                        f' (constant {baselines["constant"]:.4g})')
    if not e_teacher < baselines['e_image_median']:
        failures.append('not below the per-image median predictor\'s '
                        f'{baselines["e_image_median"]:.5g}')
    if not e_teacher <= max_ratio * e_student:
        failures.append(f'more than {max_ratio:g} x {student}\'s {e_student:.5g} '
                        f'({e_teacher / max(e_student, 1e-12):.1f} x)')
    if e_base is not None and not e_teacher <= (1.0 - base_margin) * e_base:
        failures.append(f'not {base_margin:.0%} below its own bicubic base\'s {e_base:.5g} '
                        f'({e_teacher / max(e_base, 1e-12):.4f} x: it sees the LR depth and '
                        'has not learnt anything beyond it)')
    if not failures:
        return ''
    return (f'teacher gate: {teacher} may not teach {student}: its held-out error '
            f'{e_teacher:.5g} is ' + '; '.join(failures)
            + f'; the student\'s held-out error is {e_student:.5g}')


def check_epoch(trainer: Any, role: str, errors: Dict[str, float]) -> None:
    """Run the gate when a stage-2 epoch's teacher starts teaching (``checks.teacher_gate``)."""
    config = trainer.config
    if not config['checks']['teacher_gate'] or role not in _ROLES \
            or not trainer.model.cross_task:
        return
    previous = [row['student'] for row in trainer.history if row['stage'] == 2]
    if previous and previous[-1] == role:
        return  # this teacher has been teaching since an earlier (gated) epoch
    teacher, teacher_key, student_key = _ROLES[role]
    if teacher == 'DENet' and config.get('teacher') == 'guided':
        teacher = 'the guided teacher'
    student = 'DSRNet' if role == 'dsr' else 'DENet'
    baselines = baseline_errors(trainer.datasets['val'])
    max_ratio = float(config['checks']['teacher_max_ratio'])
    base_margin = float(config['checks']['teacher_base_margin'])
    sees_lr = role == 'de' or config.get('teacher') == 'guided'  # DSRNet, or the guided one
    e_base = float(errors['e_base']) if sees_lr and 'e_base' in errors else None
    problem = gate_problem(teacher, student, errors[teacher_key], errors[student_key],
                           baselines, max_ratio, e_base, base_margin)
    record = {'epoch': trainer.epoch + 1, 'teacher': teacher, 'student': student,
              'e_teacher': errors[teacher_key], 'e_student': errors[student_key],
              'max_ratio': max_ratio, **baselines, 'e_base': e_base,
              'base_margin': base_margin if e_base is not None else None,
              'passed': not problem, 'reason': problem}
    if trainer.rank == 0:
        out = Path(trainer.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / 'gate.json').write_text(json.dumps(record, indent=2) + '\n')
    if problem:
        raise TeacherGateRefused(problem)
    LOGGER.info('teacher gate passed: %s (held-out %.5g) beats the constant (%.5g) and the '
                'per-image median (%.5g) and is within %g x %s\'s %.5g%s', teacher,
                errors[teacher_key], baselines['e_constant'], baselines['e_image_median'],
                max_ratio, student, errors[student_key],
                '' if e_base is None else f' and {base_margin:.0%} below its base\'s {e_base:.5g}')
