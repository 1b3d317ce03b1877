"""The teacher of cross-task training: the paper's DENet (RGB) or a guided teacher (RGB + LR).

Config ``teacher`` picks it (``denet``, the paper, or ``guided``, ours). Both have DENet's
interface: ``(D, [F^1 .. F^N])`` with ``F^n`` shaped like DSRNet's ``F_sr^n`` (C x H x W), so
side outputs, ``L_O``, ``L_A`` and SPNet work unchanged, and both live under the module name
``denet`` in training states.

Why a guided teacher: RGB-only depth estimation learnt from ~100 images is a weak teacher (our
DENet's held-out error was worse than predicting a constant), while RGB-guided depth SR (RGB
*and* the LR depth) is a strong one on little data. The RGB image and the LR depth are
privileged information of training time only: the deployed DSRNet
(:class:`dsr_ros.networks.DSRNet`) never receives RGB, whichever teacher trained it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from training.networks import DENet

__all__ = ['GuidedTeacher', 'TEACHERS', 'build_teacher', 'teacher_forward']

#: Values of config ``teacher``.
TEACHERS = ('denet', 'guided')


class GuidedTeacher(DENet):
    """RGB-guided depth super-resolution with DENet's outline and interface.

    Input: the HR RGB image (B, 3, H, W) in [0, 1] and the LR depth (B, c, H/s, W/s) the
    student sees (only its first, depth channel is used). The LR depth is upsampled bicubically
    to HR, concatenated with the RGB image (4 channels) and run through DENet's shallow block,
    ``num_stages`` residual stages (features ``F^n``) and reconstruction, which predicts the
    correction to that bicubic base (a global residual, as DSRNet's).

    ``depth_gain`` (config ``teacher_depth_gain``): None feeds the body the base as it is (the
    first guided teacher); a number feeds it ``(base - its per-image mean) x depth_gain``. Why:
    at x8 the bicubic base smears a depth edge over 16-32 HR pixels, so neighbouring pixels
    differ by about 1/8 of the step DSRNet sees between LR pixels, and the base's absolute
    level (0.4-0.6, while a patch spans about 0.1) drowns that structure beside three RGB
    channels. Measured (docs/cross_task.md): with the raw base the teacher stayed at 1.000x its
    base's held-out error in every recipe; after 100 steps on one batch it fitted 0.965x against
    0.809x with the centred base x 10, and 1.000x against 0.978x held-out over 4 batches.
    The output is still the residual plus the unchanged base.
    """

    def __init__(self, scale: int, num_channels: int = 64, num_stages: int = 5,
                 num_res_blocks: int = 2, depth_gain: Optional[float] = None) -> None:
        super().__init__(num_channels, num_stages, num_res_blocks, in_channels=4)
        self.scale = int(scale)
        self.depth_gain = None if depth_gain is None else float(depth_gain)

    def forward(self, rgb: torch.Tensor, depth_lr: torch.Tensor
                ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Return ``(D_guided, [F^1 .. F^N])``; one-line ValueError for inputs that do not fit."""
        check_inputs(rgb, depth_lr, self.scale)
        base = self.base(depth_lr)
        depth, features = super().forward(torch.cat([rgb, self.body_depth(base)], dim=1))
        return depth + base, features

    def body_depth(self, base: torch.Tensor) -> torch.Tensor:
        """The depth channel the body reads: the base, or its centred and amplified form."""
        if self.depth_gain is None:
            return base
        return (base - base.mean(dim=(2, 3), keepdim=True)) * self.depth_gain

    def base(self, depth_lr: torch.Tensor) -> torch.Tensor:
        """The bicubic upsampling of the LR depth that the teacher corrects."""
        return F.interpolate(depth_lr[:, :1], scale_factor=self.scale, mode='bicubic',
                             align_corners=False)


def check_inputs(rgb: torch.Tensor, depth_lr: torch.Tensor, scale: int) -> None:
    """The guided teacher's input contract: HR RGB and the LR depth of the same scene."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f'guided teacher: rgb must be (B, 3, H, W), got {tuple(rgb.shape)}')
    if depth_lr.dim() != 4 or depth_lr.shape[1] < 1:
        raise ValueError('guided teacher: depth_lr must be (B, c, h, w) with c >= 1, got '
                         f'{tuple(depth_lr.shape)}')
    expected = (rgb.shape[0], rgb.shape[2] // scale, rgb.shape[3] // scale)
    got = (depth_lr.shape[0], depth_lr.shape[2], depth_lr.shape[3])
    if got != expected or rgb.shape[2] % scale or rgb.shape[3] % scale:
        raise ValueError(f'guided teacher: depth_lr {tuple(depth_lr.shape)} is not rgb '
                         f'{tuple(rgb.shape)} reduced by x{scale}')


def build_teacher(config: Dict[str, Any], num_stages: int) -> nn.Module:
    """The teacher config ``teacher`` names, with ``config['denet']``'s width and depth."""
    kind = config.get('teacher', 'denet')
    if kind == 'denet':
        return DENet(num_stages=num_stages, **config['denet'])
    if kind == 'guided':
        return GuidedTeacher(config['scale'], num_stages=num_stages,
                             depth_gain=config.get('teacher_depth_gain'), **config['denet'])
    raise ValueError(f'unknown teacher {kind!r}, expected one of {TEACHERS}')


def teacher_forward(teacher: nn.Module, batch: Dict[str, torch.Tensor]
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Run either teacher on a batch: DENet reads ``rgb``, the guided one ``rgb`` and ``lr``."""
    if isinstance(teacher, GuidedTeacher):
        return teacher(batch['rgb'], batch['lr'])
    return teacher(batch['rgb'])
