"""Convolution FLOPs of one DSRNet forward, counted from module shapes (no arithmetic done)."""

from __future__ import annotations

import copy
import math
from typing import List, Optional, Tuple

import torch
from torch import nn

__all__ = ['count_conv_macs']


def count_conv_macs(model: nn.Module, height: int, width: int,
                    in_channels: Optional[int] = None) -> int:
    """Multiply-accumulates of all (transposed) convolutions for one ``height x width`` input.

    Counted by forward hooks on the ``meta`` device (no arithmetic, so even 2560x1920 outputs
    cost nothing). A convolution does ``out_elements * in_channels / groups * kh * kw`` MACs; a
    transposed convolution scatters every input element into ``out_channels / groups * kh * kw``
    outputs. PReLU, adds and the bicubic residual are left out (memory-bound, no MACs).
    FLOPs = 2 * MACs. ``in_channels`` defaults to the model's own (1, or 2 with the mask).
    """
    counted: List[int] = []
    channels = in_channels or int(getattr(model, 'in_channels', 1))

    def hook(module: nn.Module, inputs: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        kernel = math.prod(module.kernel_size)
        if isinstance(module, nn.ConvTranspose2d):
            macs = inputs[0].numel() * module.out_channels // module.groups * kernel
        else:
            macs = output.numel() * module.in_channels // module.groups * kernel
        counted.append(int(macs))

    probe = copy.deepcopy(model).to('meta')
    handles = [module.register_forward_hook(hook) for module in probe.modules()
               if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.inference_mode():
            probe(torch.zeros(1, channels, height, width, device='meta'))
    finally:
        for handle in handles:
            handle.remove()
    return sum(counted)
