"""Loss terms of cross-task distillation (method.md, "Losses"). All L1 terms are element means.

Each function is pure: the training step decides which tensors are detached (the teacher's)
and how the terms are weighted (config ``loss``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ['affinity', 'affinity_loss', 'affinity_memory_bytes', 'affinity_row_peak', 'de_loss',
           'masked_l1', 'output_loss', 'ssim', 'teacher_better_mask']


def masked_l1(pred: torch.Tensor, target: torch.Tensor,
              mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean absolute error over ``mask`` (all pixels when None)."""
    diff = (pred - target).abs()
    if mask is None:
        return diff.mean()
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def ssim(x: torch.Tensor, y: torch.Tensor, c1: float = 0.01 ** 2,
         c2: float = 0.03 ** 2) -> torch.Tensor:
    """Per-pixel SSIM with 3x3 average windows (Godard et al. 2017), for [0, 1] inputs."""
    x_pad = F.pad(x, (1, 1, 1, 1), mode='reflect')
    y_pad = F.pad(y, (1, 1, 1, 1), mode='reflect')
    mu_x = F.avg_pool2d(x_pad, 3, 1)
    mu_y = F.avg_pool2d(y_pad, 3, 1)
    sigma_x = F.avg_pool2d(x_pad * x_pad, 3, 1) - mu_x ** 2
    sigma_y = F.avg_pool2d(y_pad * y_pad, 3, 1) - mu_y ** 2
    sigma_xy = F.avg_pool2d(x_pad * y_pad, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    denominator = (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2)
    return (numerator / denominator).clamp(-1.0, 1.0)


def de_loss(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None,
            ssim_lambda: float = 0.2) -> torch.Tensor:
    """``L_DE = lambda (1 - SSIM) / 2 + (1 - lambda) L1``."""
    structural = (1.0 - ssim(pred, target)) / 2.0
    if mask is None:
        structural = structural.mean()
    else:
        structural = (structural * mask).sum() / mask.sum().clamp_min(1.0)
    return ssim_lambda * structural + (1.0 - ssim_lambda) * masked_l1(pred, target, mask)


def output_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                gates: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """``L_O = mean_n |D_student^n - D_teacher^n|_1`` (pass the teacher's tensors detached).

    ``gates`` (one 0/1 map per side output, e.g. :func:`teacher_better_mask`) zero the pixels
    where the teacher should not teach; the mean stays over all pixels, so a gate can only
    make ``L_O`` smaller (our option, config ``loss.output_gating: pixel``; not in the paper).
    """
    if gates is None:
        terms = [(s - t).abs().mean() for s, t in zip(student, teacher)]
    else:
        terms = [((s - t).abs() * g).mean() for s, t, g in zip(student, teacher, gates)]
    return torch.stack(terms).mean()


def teacher_better_mask(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor,
                        valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1 where the teacher's output is strictly closer to the truth than the student's."""
    with torch.no_grad():
        better = ((teacher - target).abs() < (student - target).abs()).to(student.dtype)
        return better if valid is None else better * valid


def affinity(features: torch.Tensor, size: int = 32, normalize: bool = False,
             temperature: float = 1.0, center: bool = False) -> torch.Tensor:
    """Row-softmax affinity ``softmax(R R^T / T)`` of features average-pooled to <= size x size.

    ``R`` reshapes (B, C, h, w) to (B, hw, C). The full-resolution matrix is (HW)^2 entries
    (4.3e9 for a 256x256 patch), so the features are pooled first (method.md, our choice).
    With raw features the dot products are large and every row's softmax collapses onto its
    own position (one-hot rows: ``L_A`` then carries nothing); ``normalize`` L2-normalises each
    position's feature first (cosine affinity, config ``affinity_normalize``) and the
    temperature ``T`` (config ``affinity_temperature``) sets how peaked a row is: cosine
    products lie in [-1, 1], so ``T = 1`` gives nearly uniform rows and ``T ~ 0.1`` rows that
    single out the similar positions. The paper's is raw products with ``T = 1``.

    Measured on our x8 nets: post-PReLU features of all positions point the same way (cosine
    0.98-0.99 between any two), so cosine rows are uniform at any usable ``T``. ``center``
    (config ``affinity_center``) subtracts each channel's mean over the positions first, making
    the cosine a correlation; with ``T = 0.1`` a row's peak is then 0.05-0.09 of its mass
    (uniform: 1/256 at 16 x 16 positions).
    """
    if temperature <= 0:
        raise ValueError(f'affinity temperature must be > 0, got {temperature}')
    height, width = features.shape[-2:]
    if height > size or width > size:
        features = F.adaptive_avg_pool2d(features, (min(size, height), min(size, width)))
    flat = features.flatten(2).transpose(1, 2)
    if center:
        flat = flat - flat.mean(dim=1, keepdim=True)
    if normalize:
        flat = F.normalize(flat, dim=-1)
    logits = flat @ flat.transpose(1, 2)
    if temperature != 1.0:
        logits = logits / temperature
    return torch.softmax(logits, dim=-1)


def affinity_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                  size: int = 32, normalize: bool = False, temperature: float = 1.0,
                  center: bool = False) -> torch.Tensor:
    """``L_A = mean_n |A(F_student^n) - A(F_teacher^n)|_1``."""
    terms = [(affinity(s, size, normalize, temperature, center)
              - affinity(t, size, normalize, temperature, center)).abs().mean()
             for s, t in zip(student, teacher)]
    return torch.stack(terms).mean()


@torch.no_grad()
def affinity_row_peak(features: Sequence[torch.Tensor], size: int = 32, normalize: bool = False,
                      temperature: float = 1.0, center: bool = False) -> float:
    """Mean over blocks and rows of a row's largest affinity: 1.0 means one-hot rows.

    Logged every stage-2 epoch (``a_row_peak``) so an inert ``L_A`` shows in the history.
    """
    peaks = [affinity(f, size, normalize, temperature, center).amax(-1).mean()
             for f in features]
    return float(torch.stack(peaks).mean())


def affinity_memory_bytes(batch: int, height: int, width: int, size: int,
                          num_blocks: int, bytes_per_value: int = 4) -> int:
    """Upper bound of the memory the affinity matrices of one loss evaluation hold.

    Two matrices (student, teacher) per block plus the difference, each B x (hw)^2, where hw is
    the pooled position count. Used to report and to test the bound.
    """
    positions = min(size, height) * min(size, width)
    return 3 * num_blocks * batch * positions * positions * bytes_per_value
