"""DSRNet: the single-depth super-resolution network (DBPN back-projection outline).

This is the one definition of the deployed network. The ROS node runs it through
``dsr_ros.inference``; the offline ``training`` package imports it from here and asks for its
per-block HR features (``return_features=True``) to distil knowledge from the RGB branch.

Outline (Sun et al., CVPR 2021, after Haris et al., DBPN, CVPR 2018):
shallow block (3 convs at LR) -> N x [up-projection (LR->HR), down-projection (HR->LR)]
-> reconstruction from the last HR features. The last block has no down-projection because
nothing consumes it. With ``global_residual`` the net predicts the correction to an
upsampling of its input (``residual_base``: bicubic, as published, or nearest), which trains
faster and keeps flat regions exact.
"""

from __future__ import annotations

from typing import List, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['DSRNet', 'PROJECTION_PARAMS', 'RESIDUAL_BASES', 'SUPPORTED_SCALES']

#: (kernel, stride, padding) of the projection (de)convolutions per scale: DBPN's values.
PROJECTION_PARAMS = {2: (6, 2, 2), 4: (8, 4, 2), 8: (12, 8, 2), 16: (20, 16, 2)}
SUPPORTED_SCALES = tuple(sorted(PROJECTION_PARAMS))
#: Upsamplings the global residual may be added to: ``bicubic`` (the paper) puts each LR value
#: at its block's centre and blends neighbours; ``nearest`` repeats it over its block, which is
#: already exact on a point-sampled frame's flat terraces at phase 0 and on box averages.
RESIDUAL_BASES = ('bicubic', 'nearest')


class _BackProjection(nn.Module):
    """A DBPN projection unit: to the other resolution, back, and the residual of the round trip
    projected again to correct the first estimate.

    Its three convolutions keep the names of the checkpoints' weights (``names``: the first,
    the one back, the last); the up and down units differ only in which way they go.
    """

    def __init__(self, channels: int, kernel: int, stride: int, padding: int,
                 there: type, back: type, names: Tuple[str, str, str]) -> None:
        super().__init__()
        self.names = names
        for name, conv in zip(names, (there, back, there)):
            setattr(self, name, conv(channels, channels, kernel, stride, padding))
        self.act1 = nn.PReLU(channels)
        self.act2 = nn.PReLU(channels)
        self.act3 = nn.PReLU(channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        first, back, last = (getattr(self, name) for name in self.names)
        projected = self.act1(first(features))
        returned = self.act2(back(projected))
        return projected + self.act3(last(returned - features))


class _UpProjection(_BackProjection):
    """LR features -> HR features, corrected by the back-projected LR residual."""

    def __init__(self, channels: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(channels, kernel, stride, padding, nn.ConvTranspose2d, nn.Conv2d,
                         ('up1', 'down', 'up2'))


class _DownProjection(_BackProjection):
    """HR features -> LR features, corrected by the back-projected HR residual."""

    def __init__(self, channels: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(channels, kernel, stride, padding, nn.Conv2d, nn.ConvTranspose2d,
                         ('down1', 'up', 'down2'))


class DSRNet(nn.Module):
    """Single depth super-resolution network.

    Args:
        scale: upscale factor, one of 2, 4, 8, 16.
        num_channels: feature width C (paper: 64).
        num_blocks: number N of back-projection blocks (paper: 5).
        in_channels: 1 (depth) or 2 (depth and its validity mask, 1 = measured, 0 = hole,
            where the depth channel holds a fill value). With the mask the net learns how far
            to trust filled pixels instead of taking a fill that crosses depth edges at face
            value.
        global_residual: predict ``D_sr - base(D_lr)`` instead of ``D_sr`` (the base uses
            the depth channel only).
        residual_base: the upsampling ``base`` of the global residual, one of
            :data:`RESIDUAL_BASES` (checkpoints without it are bicubic).

    Input is normalised LR depth ``(B, in_channels, h, w)``; output is always one channel,
    ``(B, 1, h*scale, w*scale)``.
    """

    def __init__(self, scale: int = 4, num_channels: int = 64, num_blocks: int = 5,
                 in_channels: int = 1, global_residual: bool = True,
                 residual_base: str = 'bicubic') -> None:
        super().__init__()
        if scale not in PROJECTION_PARAMS:
            raise ValueError(f'DSRNet supports scales {SUPPORTED_SCALES}, got {scale!r}')
        if in_channels not in (1, 2):
            raise ValueError(f'in_channels must be 1 (depth) or 2 (depth, mask), got '
                             f'{in_channels!r}')
        if residual_base not in RESIDUAL_BASES:
            raise ValueError(f'residual_base must be one of {RESIDUAL_BASES}, got '
                             f'{residual_base!r}')
        if num_channels < 1 or num_blocks < 1:
            raise ValueError('num_channels and num_blocks must be positive, got '
                             f'{num_channels} and {num_blocks}')
        self.scale = int(scale)
        self.num_channels = int(num_channels)
        self.num_blocks = int(num_blocks)
        self.in_channels = int(in_channels)
        self.global_residual = bool(global_residual)
        self.residual_base = str(residual_base)
        kernel, stride, padding = PROJECTION_PARAMS[self.scale]
        c = self.num_channels
        self.shallow = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, 1, 1), nn.PReLU(c),
            nn.Conv2d(c, c, 3, 1, 1), nn.PReLU(c),
            nn.Conv2d(c, c, 1, 1, 0), nn.PReLU(c),
        )
        self.up_blocks = nn.ModuleList(
            _UpProjection(c, kernel, stride, padding) for _ in range(self.num_blocks))
        self.down_blocks = nn.ModuleList(
            _DownProjection(c, kernel, stride, padding) for _ in range(self.num_blocks - 1))
        self.reconstruction = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1), nn.PReLU(c),
            nn.Conv2d(c, 1, 3, 1, 1),
        )

    def arch_kwargs(self) -> dict:
        """Constructor arguments that rebuild this network (stored in checkpoints)."""
        return {'scale': self.scale, 'num_channels': self.num_channels,
                'num_blocks': self.num_blocks, 'in_channels': self.in_channels,
                'global_residual': self.global_residual, 'residual_base': self.residual_base}

    def forward(self, depth_lr: torch.Tensor, return_features: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Super-resolve ``depth_lr``; optionally also return the HR feature of every block."""
        low = self.shallow(depth_lr)
        features: List[torch.Tensor] = []
        high = low
        for index, up in enumerate(self.up_blocks):
            high = up(low)
            features.append(high)
            if index < len(self.down_blocks):
                low = self.down_blocks[index](high)
        out = self.reconstruction(high)
        if self.global_residual:
            out = out + self._residual_base(depth_lr[:, :1])
        if return_features:
            return out, features
        return out

    def _residual_base(self, depth_lr: torch.Tensor) -> torch.Tensor:
        """The upsampling of the LR depth that the reconstruction corrects (``residual_base``)."""
        if self.residual_base == 'nearest':
            return F.interpolate(depth_lr, scale_factor=self.scale, mode='nearest')
        return F.interpolate(depth_lr, scale_factor=self.scale, mode='bicubic',
                             align_corners=False)
