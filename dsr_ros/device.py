"""Which torch device a ``device`` setting names: the node's, the benchmarks' and training's.

One parser so every entry point accepts the same spellings (``auto``, ``cpu``, ``cuda``,
``cuda:N``) and refuses a CUDA device that is not there with the same one-line reason, instead
of failing later inside torch.
"""

from __future__ import annotations

import torch

__all__ = ['resolve_device']


def resolve_device(device: str = 'auto') -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a torch device, refusing CUDA when there is none."""
    name = (device or 'auto').strip().lower()
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cpu':
        return torch.device('cpu')
    if name == 'cuda' or name.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available '
                             '(use device "auto" or "cpu")')
        parsed = torch.device(name)
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: only {torch.cuda.device_count()} CUDA '
                             'device(s) present')
        return parsed
    raise ValueError(f'unknown device {device!r}: expected auto, cpu, cuda or cuda:N')
