"""Tiling (issue 5, item 3): a large frame fits a memory budget and shows no seam.

Peak memory is measured as the peak resident set of a fresh child process (Linux ``VmHWM``
after a reset), because torch's CPU allocations are invisible to tracemalloc and a lifetime
peak would include whatever ran before. The budget is analytic: the full-frame numpy buffers
the wrapper keeps (input, output, blending weights: ~10 float32 HR images) plus the
activations of ONE tile (~16 float32 HR feature maps of C channels), plus slack for allocator
noise; the untiled run must exceed it, or the test would not show that tiling is what helps.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dsr_ros.inference import DepthSuperResolver
from dsr_ros.tiling import tile_starts
from dsr_ros.networks import DSRNet

SCALE, CHANNELS, BLOCKS = 4, 8, 2
TILE, OVERLAP = 48, 8

_PEAK_SCRIPT = textwrap.dedent('''
    import ctypes, json, sys
    import numpy as np, torch
    from dsr_ros.inference import DepthSuperResolver
    from dsr_ros.networks import DSRNet
    from dsr_ros.scene import random_room

    def status_mb(field):
        with open('/proc/self/status') as handle:
            return [int(l.split()[1]) for l in handle if l.startswith(field + ':')][0] / 1024

    def peak_rss_reset():
        # Linux: give freed heap back, then reset the peak-RSS mark (VmHWM) to the current RSS.
        ctypes.CDLL('libc.so.6').malloc_trim(0)
        try:
            with open('/proc/self/clear_refs', 'w') as handle:
                handle.write('5')
            return True
        except OSError:
            return False

    torch.set_num_threads(1)
    tile, height, width = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.manual_seed(0)
    resolver = DepthSuperResolver(DSRNet({scale}, {channels}, {blocks}), device='cpu',
                                  tile_size=tile, tile_overlap={overlap})
    rng = np.random.default_rng(5)
    frame = np.clip(np.rint(random_room(rng, width, height) * 1000), 1, 65535).astype(np.uint16)
    resolver.run(frame[:32, :32])  # kernels and libraries loaded before the measurement
    if not peak_rss_reset():
        print(json.dumps({{'supported': False}}))
        sys.exit(0)
    base = status_mb('VmRSS')
    out = resolver.run(frame)
    print(json.dumps({{'supported': True, 'delta_mb': status_mb('VmHWM') - base,
                       'shape': list(out.shape)}}))
''').format(scale=SCALE, channels=CHANNELS, blocks=BLOCKS, overlap=OVERLAP)


def _peak_delta_mb(tile: int, height: int, width: int) -> float:
    result = subprocess.run([sys.executable, '-c', _PEAK_SCRIPT, str(tile), str(height),
                             str(width)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if not report['supported']:
        pytest.skip('peak RSS cannot be reset here (/proc/self/clear_refs)')
    assert report['shape'] == [height * SCALE, width * SCALE]
    return report['delta_mb']


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='needs Linux /proc')
def test_tiling_keeps_peak_memory_under_budget():
    height, width = 240, 320  # -> 960 x 1280
    hr_image_mb = height * width * SCALE ** 2 * 4 / 2 ** 20
    tile_hr = (TILE * SCALE) ** 2 * 4 / 2 ** 20
    budget = 10 * hr_image_mb + 16 * CHANNELS * tile_hr + 40.0
    tiled = _peak_delta_mb(TILE, height, width)
    untiled = _peak_delta_mb(0, height, width)
    print(f'peak RSS increase: tiled {tiled:.0f} MiB, untiled {untiled:.0f} MiB, '
          f'budget {budget:.0f} MiB')
    assert tiled < budget
    assert untiled > budget, 'the budget would not show any effect of tiling'
    assert tiled < 0.5 * untiled


def _smooth_lr(height: int, width: int) -> np.ndarray:
    """Smooth on purpose, not a room: with no depth edges, a seam is the only place where the
    tiled and untiled outputs can differ noticeably."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return (1.0 + 2.0 * rows / height + 0.3 * np.sin(cols / 9.0) * np.cos(rows / 13.0)
            + 0.2 * (cols / width) ** 2).astype(np.float32)


def _borders(length: int) -> list:
    """HR coordinates where a tile starts or ends inside the frame."""
    lines = set()
    for start in tile_starts(length, TILE, TILE - OVERLAP):
        if start > 0:
            lines.add(start * SCALE)
        if start + TILE < length:
            lines.add((start + TILE) * SCALE)
    return sorted(lines)


def test_tiled_output_has_no_seam():
    # Sizes and tiles are multiples of 8, so neither run pads: any difference is tiling's.
    height, width = 96, 136
    torch.manual_seed(0)
    model = DSRNet(SCALE, CHANNELS, BLOCKS).eval()
    depth = _smooth_lr(height, width)
    untiled = DepthSuperResolver(model, device='cpu', tile_size=0).run(depth)
    tiled = DepthSuperResolver(model, device='cpu', tile_size=TILE,
                               tile_overlap=OVERLAP).run(depth)
    error = np.abs(tiled - untiled)
    cols, rows = _borders(width), _borders(height)
    assert cols and rows, 'the frame must actually be split into tiles'
    band = np.zeros(error.shape, bool)
    for col in cols:
        band[:, col - 2:col + 2] = True
    for row in rows:
        band[row - 2:row + 2, :] = True
    on_borders, elsewhere = float(error[band].max()), float(error[~band].max())
    depth_range = float(depth.max() - depth.min())
    print(f'|tiled - untiled|: max on tile borders {on_borders * 1e3:.2f} mm, elsewhere '
          f'{elsewhere * 1e3:.2f} mm, mean {error.mean() * 1e3:.3f} mm '
          f'(depth range {depth_range:.1f} m)')
    # A seam is a step along the border lines: their error would stand out from the rest.
    # The dead zone of the blending ramp keeps tile-edge pixels out (0.01 mm measured).
    assert on_borders <= 2.0 * elsewhere + 1e-5
    assert on_borders <= 1e-4 * depth_range
    assert error.mean() <= 1e-5 * depth_range
