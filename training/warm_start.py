"""Starting a DSRNet from another checkpoint's weights (``init_weights``), and saying in one
line why a state's weights do not fit a net.

A warm start is not a resume: only DSRNet's weights carry over, the optimisers and the schedule
start anew.
"""

from __future__ import annotations

import re
from typing import Any, Dict

import torch

from dsr_ros.networks import DSRNet

__all__ = ['init_dsrnet_from', 'mismatch_summary']


def init_dsrnet_from(model: DSRNet, path: str) -> None:
    """Start ``model`` from a DSRNet checkpoint's weights (a warm start, not a resume).

    A depth-only (1-channel) checkpoint can start a mask-aware (2-channel) net: the first
    convolution's mask weights start at zero, so the new net begins as exactly the old one and
    learns what the mask is worth. A checkpoint of another scale starts only the shallow and
    reconstruction blocks. Any other shape difference is refused.
    """
    from dsr_ros.checkpoint import load_checkpoint
    source, _ = load_checkpoint(path)
    state = source.state_dict()
    target = model.state_dict()
    if source.scale != model.scale:
        # Another scale: only the scale-independent layers (the LR shallow block and the HR
        # reconstruction) carry over; the projections' kernels differ per scale and start anew.
        state = {key: value for key, value in state.items()
                 if key.startswith(('shallow.', 'reconstruction.'))}
        target.update(state)
        state = target
    key = 'shallow.0.weight'
    if (state[key].shape[1] == 1 and target[key].shape[1] == 2
            and state[key].shape[0] == target[key].shape[0]):
        weight = torch.zeros_like(target[key])
        weight[:, :1] = state[key]
        state[key] = weight
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f'init_weights {path!r} does not fit this DSRNet: it is '
                         f'{_arch_words(source.arch_kwargs())}, the config builds '
                         f'{_arch_words(model.arch_kwargs())} (dsrnet.* keys; '
                         f'{mismatch_summary(error)})') from None


def _arch_words(arch: Dict[str, Any]) -> str:
    return (f'{arch["num_channels"]} channels x {arch["num_blocks"]} blocks, '
            f'{arch["in_channels"]} input channel(s)')


def mismatch_summary(error: Exception) -> str:
    """One line for torch's many-line load_state_dict error: how many weights differ and the
    first of them (the full dump names every tensor of the net)."""
    text = str(error)
    sizes = re.findall(r'size mismatch for ([\w.]+)', text)
    counts = {kind: len(re.findall(r'"[^"]+"', match.group(1)))
              for kind in ('Missing', 'Unexpected')
              for match in [re.search(kind + r' key\(s\) in state_dict: ([^\n]*)', text)]
              if match}
    parts = ([f'{len(sizes)} weight shapes differ (first {sizes[0]})'] if sizes else []) + [
        f'{count} {kind.lower()} weights' for kind, count in counts.items()]
    return ', '.join(parts) or next((line for line in text.splitlines() if line.strip()), '')
