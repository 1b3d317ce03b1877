"""Peak memory of one measurement: the CUDA allocator's peak on a GPU, peak RSS on the CPU.

``resource.getrusage`` only knows a process's lifetime peak, which would make every case after
the largest report the largest one's memory, so on Linux the peak mark is reset first
(``/proc/self/clear_refs``) and read back from ``VmHWM``.

``python -m benchmarks.memory`` measures the peak memory of one super-resolved frame, to
calibrate :mod:`dsr_ros.memory_budget`. Each measurement (:func:`measure_frame`) runs in a
fresh child process (malloc tuned as in the node) that builds the net, warms it up on a small
frame, resets its peak-RSS mark, runs one frame and reports the rise of the peak resident set
(``VmHWM``) over the resident set before the frame. tracemalloc would miss torch's
allocations; a lifetime peak would include warm-up.

    python -m benchmarks.memory                  # the calibration table (about 2 minutes)
    python -m benchmarks.memory --size 640x480 --tile 0 --channels 32 --blocks 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any, Dict, Optional, Sequence

import torch

from dsr_ros.memory_budget import read_peak_rss_mb, reset_peak_rss

__all__ = ['PeakMemory', 'main', 'measure_frame', 'read_peak_rss_mb']


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


#: The child process of :func:`measure_frame` (fresh, so nothing before it counts).
_CHILD = '''
import json, sys
from dsr_ros.cpu_tuning import tune_malloc
tune_malloc()
import torch
from dsr_ros.memory_budget import read_peak_rss_mb, reset_peak_rss
from dsr_ros.scene import sensor_frame_mm
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
args = json.loads(sys.argv[1])
torch.manual_seed(0)
model = DSRNet(args['scale'], args['channels'], args['blocks'])
resolver = DepthSuperResolver(model, device='cpu', precision=args['precision'],
                              tile_size=args['tile'], tile_overlap=args['overlap'],
                              **args.get('extra', {}))
frame = sensor_frame_mm(args['width'], args['height'], seed=5)
resolver.run(frame[:16, :16])
if not reset_peak_rss():
    print(json.dumps({'supported': False}))
    sys.exit(0)
with open('/proc/self/status') as handle:
    base = [int(l.split()[1]) for l in handle if l.startswith('VmRSS:')][0] / 1024
out = resolver.run(frame)
print(json.dumps({'supported': True, 'base_mb': base, 'peak_mb': read_peak_rss_mb(),
                  'delta_mb': read_peak_rss_mb() - base}))
'''


def measure_frame(height: int, width: int, *, scale: int = 4, channels: int = 32,
                  blocks: int = 3, precision: str = 'fp32', tile: int = 0, overlap: int = 8,
                  extra: Optional[Dict[str, Any]] = None, timeout: float = 300.0
                  ) -> Dict[str, Any]:
    """Peak-RSS rise (MiB) of one ``height`` x ``width`` frame in a fresh process:
    ``supported`` (False where the peak mark cannot be reset), ``base_mb``, ``peak_mb``,
    ``delta_mb``."""
    args = dict(height=height, width=width, scale=scale, channels=channels, blocks=blocks,
                precision=precision, tile=tile, overlap=overlap, extra=extra or {})
    result = subprocess.run([sys.executable, '-c', _CHILD, json.dumps(args)],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m benchmarks.memory``: one measurement (``--size``) or the calibration
    table, one line each."""
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks.memory',
        description='Measure the peak memory of one super-resolved frame, to calibrate '
        'dsr_ros.memory_budget.')
    parser.add_argument('--size', default=None, help='WxH of one measurement')
    parser.add_argument('--tile', type=int, default=0)
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--channels', type=int, default=32)
    parser.add_argument('--blocks', type=int, default=3)
    parser.add_argument('--precision', default='fp32')
    opts = parser.parse_args(argv)
    if opts.size:
        width, height = (int(v) for v in opts.size.lower().split('x'))
        cases = [(height, width, opts.scale, opts.channels, opts.blocks, opts.tile)]
    else:
        cases = [(h, w, s, c, n, t) for (h, w) in ((60, 80), (120, 160))
                 for (s, c, n) in ((4, 32, 3), (4, 16, 3), (2, 32, 3), (4, 32, 1), (8, 16, 2))
                 for t in (0,)]
    for height, width, scale, channels, blocks, tile in cases:
        report = measure_frame(height, width, scale=scale, channels=channels, blocks=blocks,
                               precision=opts.precision, tile=tile)
        per = report['delta_mb'] * 2 ** 20 / (height * width * channels * scale ** 2)
        print(f'{width}x{height} x{scale} C={channels} N={blocks} tile={tile} '
              f'{opts.precision}: +{report["delta_mb"]:.1f} MiB, '
              f'{per:.2f} B per HR pixel per channel')
    return 0


if __name__ == '__main__':
    sys.exit(main())
