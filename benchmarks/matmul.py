"""The yardstick: an ``n x n x n`` fp32 matrix multiply, timed in the same run as the net.

Absolute times on a shared 2-core machine swing by 2x with the load; the ratio of a frame's
time to a big matmul's time, measured interleaved with it, does not. A 2048^3 fp32 matmul is
what this CPU's BLAS does best (17.2 GFLOP at its peak rate), so ``per-frame time / matmul
time`` says how close to the machine's limit a model runs and whether it meets a real-time
target stated relative to the machine (issue 9: tiny x4 at <= 0.8x the matmul time).
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch

__all__ = ['DEFAULT_SIZE', 'matmul_callable', 'matmul_flops', 'with_matmul_ratios']

DEFAULT_SIZE = 2048


def matmul_flops(size: int) -> float:
    """Floating-point operations of one ``size^3`` matmul (a multiply and an add each)."""
    return 2.0 * size ** 3


def matmul_callable(size: int = DEFAULT_SIZE, device: str = 'cpu') -> Callable[[], Any]:
    """A no-argument function doing one fp32 ``size^3`` matmul on ``device``."""
    generator = torch.Generator().manual_seed(0)
    left = torch.rand(size, size, generator=generator).to(device)
    right = torch.rand(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)

    def run() -> torch.Tensor:
        return torch.matmul(left, right, out=out)
    return run


def with_matmul_ratios(record: Dict[str, Any], matmul: Dict[str, Any]) -> Dict[str, Any]:
    """Add ``per_frame_over_matmul`` and ``fraction_of_matmul_rate`` to a timed record.

    ``matmul`` is the reference record of the same run (``median_ms``, ``gflop_s``).
    """
    if not matmul or 'median_ms' not in matmul:
        return record
    fps = record.get('fps')
    if fps and fps > 0:
        # From the rate, not the latency: for the node in flood mode they differ.
        record['per_frame_over_matmul'] = 1e3 / fps / matmul['median_ms']
        if record.get('gflop_per_frame'):
            record['fraction_of_matmul_rate'] = (record['gflop_per_frame'] * fps
                                                 / matmul['gflop_s'])
    return record
