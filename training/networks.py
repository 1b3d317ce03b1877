"""Training-only networks: DENet, side-output heads, SPNet and the fixed structure kernel.

DSRNet itself lives in :mod:`dsr_ros.networks` (the one deployed definition); everything here
exists only to teach it during training (Sun et al., CVPR 2021, Sec. 3).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ['DENet', 'SideOutputs', 'SPNet', 'structure_map']


class _ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (EDSR style, no batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DENet(nn.Module):
    """Depth estimation from the HR RGB image (the cross-task partner of DSRNet).

    Same outline as DSRNet but at HR throughout: a shallow block, ``num_stages`` stages of
    ``num_res_blocks`` residual blocks (stage n gives ``F_de^n``, shaped like DSRNet's
    ``F_sr^n`` when ``num_channels`` matches), and a reconstruction block giving ``D_de``.
    """

    def __init__(self, num_channels: int = 64, num_stages: int = 5, num_res_blocks: int = 2,
                 in_channels: int = 3) -> None:
        super().__init__()
        c = num_channels
        self.shallow = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, 1, 1), nn.PReLU(c),
            nn.Conv2d(c, c, 3, 1, 1), nn.PReLU(c),
            nn.Conv2d(c, c, 1, 1, 0), nn.PReLU(c),
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*[_ResidualBlock(c) for _ in range(num_res_blocks)])
            for _ in range(num_stages))
        self.reconstruction = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.PReLU(c),
                                            nn.Conv2d(c, 1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Return ``(D_de, [F_de^1 .. F_de^N])``."""
        x = self.shallow(rgb)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return self.reconstruction(x), features


class SideOutputs(nn.Module):
    """Two successive convs per block turning ``F^n`` into a side depth output ``D^n``.

    ``residual`` (config ``side_outputs.residual``, ours): a net with a global residual adds
    its base (the bicubic upsampling of its LR input) to every side output, as to its final
    output, so its heads predict the same correction its reconstruction does. Measured at x8:
    deeply supervised absolute-depth heads (``side_weight`` 0.01 or 0.1) on DSRNet's features
    kept it at the bicubic base for 150 steps where the same run without them left it.
    """

    def __init__(self, num_channels: int, num_outputs: int, hidden_channels: int = 32,
                 residual: bool = False) -> None:
        super().__init__()
        self.residual = bool(residual)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_channels, hidden_channels, 3, 1, 1),
                          nn.PReLU(hidden_channels), nn.Conv2d(hidden_channels, 1, 3, 1, 1))
            for _ in range(num_outputs))

    def forward(self, features: Sequence[torch.Tensor],
                base: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """``[D^1 .. D^N]``; ``base`` (residual heads of a residual net) is added to each."""
        if len(features) != len(self.heads):
            raise ValueError(f'expected {len(self.heads)} feature maps, got {len(features)}')
        outputs = [head(feature) for head, feature in zip(self.heads, features)]
        if base is None:
            return outputs
        return [output + base for output in outputs]


class SPNet(nn.Module):
    """Structure prediction with uncertainty-induced attention fusion.

    ``U = sigmoid(conv1x1(D - D_hr))`` lifts each branch's error map to ``C`` channels and
    re-weights its last features by ``1 + U``; the concatenation feeds a small CNN
    (``num_layers`` x conv3x3+ReLU, then conv3x3) predicting the structure map ``S``.
    """

    def __init__(self, sr_channels: int, de_channels: int, num_channels: int = 64,
                 num_layers: int = 5) -> None:
        super().__init__()
        self.lift_sr = nn.Conv2d(1, sr_channels, 1)
        self.lift_de = nn.Conv2d(1, de_channels, 1)
        layers: List[nn.Module] = []
        width = sr_channels + de_channels
        for _ in range(num_layers):
            layers += [nn.Conv2d(width, num_channels, 3, 1, 1), nn.ReLU(inplace=True)]
            width = num_channels
        layers.append(nn.Conv2d(width, 1, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, feature_sr: torch.Tensor, depth_sr: torch.Tensor,
                feature_de: torch.Tensor, depth_de: torch.Tensor,
                depth_hr: torch.Tensor) -> torch.Tensor:
        u_sr = torch.sigmoid(self.lift_sr(depth_sr - depth_hr))
        u_de = torch.sigmoid(self.lift_de(depth_de - depth_hr))
        fused = torch.cat([feature_sr * (1 + u_sr), feature_de * (1 + u_de)], dim=1)
        return self.body(fused)


#: Horizontal central difference ``D(x+1) - D(x-1)``, SPSR's ``Get_gradient`` kernel.
_DIFF_X = torch.tensor([[0.0, 0.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
#: ``kernel``: (difference scale, epsilon inside the square root).
STRUCTURE_KERNELS = {'spsr': (1.0, 1e-6), 'half': (0.5, 1e-12)}


def structure_map(depth: torch.Tensor, kernel: str = 'spsr') -> torch.Tensor:
    """Structure ground truth ``S_gt = sqrt(gx^2 + gy^2 + eps)`` by fixed kernels.

    ``spsr`` (default) is SPSR's (Ma et al., CVPR 2020): ``gx = D(x+1) - D(x-1)``, eps 1e-6.
    ``half`` divides both differences by 2 (this project's earlier choice; it halves the
    target, which acts like a smaller ``rho1``). Replicate padding (SPSR pads with zeros) keeps
    patch borders from looking like depth edges.
    """
    if kernel not in STRUCTURE_KERNELS:
        raise ValueError(f'unknown structure kernel {kernel!r}, expected '
                         f'{sorted(STRUCTURE_KERNELS)}')
    factor, eps = STRUCTURE_KERNELS[kernel]
    diff = _DIFF_X * factor
    weights = torch.stack([diff, diff.t()]).unsqueeze(1).to(depth)
    grads = F.conv2d(F.pad(depth, (1, 1, 1, 1), mode='replicate'), weights)
    return torch.sqrt(grads.pow(2).sum(dim=1, keepdim=True) + eps)
