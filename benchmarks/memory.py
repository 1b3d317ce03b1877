"""Peak memory of one measurement: the CUDA allocator's peak on a GPU, peak RSS on the CPU.

``resource.getrusage`` only knows a process's lifetime peak, which would make every case after
the largest report the largest one's memory, so on Linux the peak mark is reset first
(``/proc/self/clear_refs``) and read back from ``VmHWM``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from dsr_ros.memory_budget import read_peak_rss_mb, reset_peak_rss

__all__ = ['PeakMemory', 'read_peak_rss_mb']


def _status_mb(field: str, pid: Optional[int] = None) -> Optional[float]:
    """One ``kB`` field of ``/proc/<pid>/status`` in MiB, None where there is no /proc."""
    try:
        with open(f'/proc/{pid or "self"}/status', encoding='ascii') as handle:
            for line in handle:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class PeakMemory:
    """Context manager: ``peak_mb`` and ``delta_mb`` (above the start) of what ran inside."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb: Optional[float] = None
        self.delta_mb: Optional[float] = None
        self.kind = 'cuda_max_allocated' if device.type == 'cuda' else 'rss_peak'
        self._base: Optional[float] = None

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2 ** 20
        else:
            if not reset_peak_rss():
                self.kind = 'rss_lifetime_peak'
            self._base = _status_mb('VmRSS')
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self.peak_mb = read_peak_rss_mb()
        if self.peak_mb is not None and self._base is not None:
            self.delta_mb = max(self.peak_mb - self._base, 0.0)
