"""How large a tile may be so that one frame's inference fits a memory budget (numpy only).

Without tiling, DSRNet's peak memory grows with the *output* size times the feature width:
about 16 KB per input pixel for the shipped x4 model, so a 640x480 frame needs 5 GB and an
8000x8000 one 1 TB. :class:`MemoryBudget` turns a process-wide limit (``max_memory_mb``, peak
resident memory) into a tile size for each frame and refuses frames that cannot fit at all
before anything frame-sized is allocated.

The estimate is measured, not derived (``python -m benchmarks.memory``: peak-RSS rise of one
frame in a fresh process with the node's malloc settings, 2-core Xeon, torch 2.13 CPU):

* one tile's activations: 21-44 bytes per HR pixel per feature channel in fp32 (80x60 and
  160x120 frames, x2/x4/x8, 16-64 channels, 1-5 blocks; more blocks cost a little more; 43 for
  the shipped net with 2 threads on a loaded machine), so :data:`TILE_BYTES_PER_HR_ELEMENT` =
  56 leaves about 25 % margin; bf16 autocast measured 0.58x of fp32 (factor 0.6);
* the frame-sized arrays the wrapper and the node keep while tiles run (input, blending
  accumulators, output, the published message and its DDS copy): 14 bytes per HR pixel for
  uint16 input without the node, so :data:`FRAME_BYTES_PER_HR_PIXEL` = 32 covers float32
  frames and the message copies too.

The memory already in use (torch, the model, ROS, whatever the allocator keeps) is measured:
after a ``malloc_trim`` whenever the frame size changes, the resident set is the baseline the
next frames add to. A frame smaller than the planned tile runs whole; on the CPU, where a stop
request can only be honoured between tiles, tiles are also capped to about 0.5 s of work
(:data:`STOP_CHECK_WORK`) so the node can always shut down within its 2 s.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Any, Optional, Tuple

__all__ = ['FRAME_BYTES_PER_HR_PIXEL', 'FrameTooLarge', 'MAX_TILE_OVERHEAD', 'MemoryBudget',
           'STOP_CHECK_WORK', 'TILE_BYTES_PER_HR_ELEMENT', 'min_tile', 'plan_tiles',
           'resident_mb',
           'trim_malloc']

#: Peak bytes of one tile's activations per HR output pixel per feature channel (fp32).
TILE_BYTES_PER_HR_ELEMENT = 56.0
#: Activation memory relative to fp32 (bf16 autocast measured 0.58; fp16 stores half).
PRECISION_FACTOR = {'fp32': 1.0, 'bf16': 0.6, 'fp16': 0.6}
#: Frame-sized arrays (wrapper and published message) per HR output pixel, bytes.
FRAME_BYTES_PER_HR_PIXEL = 32.0
#: MiB kept free for everything the estimate does not see (allocator slack, ROS callbacks).
HEADROOM_MB = 48.0
#: Smallest LR tile edge at all; with overlap the minimum grows (see :func:`min_tile`).
MIN_TILE = 32
#: Most compute a tile may cost relative to running the frame whole, ``(t / (t - overlap))^2``:
#: a 17 px tile with 8 px of overlap (padded to 24) costs 8x; 48 px costs 1.44x.
MAX_TILE_OVERHEAD = 1.5
#: Tile edges are multiples of this (the net pads to it anyway; padding would be wasted work).
TILE_MULTIPLE = 8
#: CPU work per tile, as LR pixels x channels^2 x blocks x scale^2: a 128x128 tile of the
#: shipped x4 model (32 channels, 3 blocks), 0.4 s on the 2-core reference machine.
STOP_CHECK_WORK = 128 * 128 * 32 ** 2 * 3 * 4 ** 2
MIB = float(1 << 20)


class FrameTooLarge(ValueError):
    """A frame whose output cannot be computed within the memory budget; says the numbers."""


def min_tile(overlap: int) -> int:
    """The smallest tile edge used with ``overlap``: recomputing the overlaps costs at most
    :data:`MAX_TILE_OVERHEAD` times the untiled work."""
    edge = math.ceil(int(overlap) / (1.0 - 1.0 / math.sqrt(MAX_TILE_OVERHEAD)))
    return _round_up(max(MIN_TILE, edge))


def _libc() -> Optional[ctypes.CDLL]:
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:  # pragma: no cover - no C library to load
        return None


def trim_malloc() -> bool:
    """Return freed heap memory to the OS (glibc ``malloc_trim``); False where unavailable.

    The node's malloc settings (:mod:`dsr_ros.cpu_tuning`) keep freed activations for the next
    frame; after a frame of a different size that memory would otherwise stay resident.
    """
    libc = _libc()
    trim = getattr(libc, 'malloc_trim', None)
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def read_peak_rss_mb(pid: Optional[int] = None) -> Optional[float]:
    """Peak resident memory (MiB) of a process: ``VmHWM``, else ``ru_maxrss`` for ourselves."""
    try:
        with open(f'/proc/{pid or "self"}/status', encoding='ascii') as handle:
            for line in handle:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if pid is None:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return None


def reset_peak_rss() -> bool:
    """Trim the heap and reset this process's peak-RSS mark (``clear_refs`` 5); False where
    unsupported. ``getrusage`` only knows the lifetime peak, which would make every case after
    the largest report the largest one's memory."""
    trim_malloc()
    try:
        with open('/proc/self/clear_refs', 'w', encoding='ascii') as handle:
            handle.write('5')
        return True
    except OSError:
        return False


def resident_mb() -> float:
    """This process's resident set (MiB), 0 where /proc is not available."""
    try:
        with open('/proc/self/status', encoding='ascii') as handle:
            for line in handle:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class MemoryBudget:
    """Plans tiles for frames so that the process's peak resident memory stays under a limit.

    Args:
        max_memory_mb: the limit (MiB); 0 = no memory limit (tiles then only serve
            ``stop_latency``).
        stop_latency: cap CPU tiles at :data:`STOP_CHECK_WORK` so that a stop request waits at
            most one short tile.
    """

    def __init__(self, max_memory_mb: float = 0.0, stop_latency: bool = False) -> None:
        if not (math.isfinite(max_memory_mb) and max_memory_mb >= 0):
            raise ValueError(f'max_memory_mb must be 0 or positive, got {max_memory_mb!r}')
        self.max_memory_mb = float(max_memory_mb)
        self.stop_latency = bool(stop_latency)
        self.baseline_mb: Optional[float] = None
        self._last_shape: Optional[Tuple[int, int]] = None

    def observe(self, shape: Tuple[int, int]) -> None:
        """Call before each frame: on a new frame size, trim the heap and re-measure the
        baseline (same-size frames keep the heap, which spares the page faults)."""
        shape = (int(shape[0]), int(shape[1]))
        if shape != self._last_shape or self.baseline_mb is None:
            trim_malloc()
            self.baseline_mb = resident_mb()
            self._last_shape = shape

    def release(self) -> None:
        """Give the heap back while idle; the next frame re-measures the baseline."""
        if self._last_shape is not None:
            trim_malloc()
            self._last_shape = None

    def tile_for(self, height: int, width: int, *, scale: int, channels: int, blocks: int,
                 precision: str = 'fp32', overlap: int = 8, requested: int = 0,
                 cpu: bool = True) -> int:
        """LR tile edge for a ``height`` x ``width`` frame, 0 = run the frame whole.

        ``requested`` (the user's tile_size, 0 = automatic) is honoured when it fits, rounded
        up to :func:`min_tile`. Raises :class:`FrameTooLarge` when even the smallest tile
        does not fit beside the frame-sized arrays.
        """
        smallest = min_tile(overlap)
        limit = self._largest_tile(height, width, scale, channels, precision, smallest)
        if self.stop_latency and cpu:
            work = channels ** 2 * max(blocks, 1) * scale ** 2
            limit = min(limit, _round_down(math.isqrt(int(STOP_CHECK_WORK // work)), smallest))
        if requested:
            limit = min(limit, max(_round_up(requested), smallest))
        if limit >= max(height, width):
            return 0
        return limit

    def tile_shape(self, height: int, width: int, *, requested: int = 0, overlap: int = 8,
                   **model: Any) -> Tuple[int, int]:
        """LR tile ``(rows, cols)`` for a frame, ``(0, 0)`` = run it whole.

        The tile's area is what memory and stop latency bound (:meth:`tile_for` squared), so
        tiles are shaped to the frame instead of square: a 160x120 frame under a 128x128 area
        runs as two 120x88 tiles (1.1x the work), not four 88x88 ones (1.6x).
        """
        edge = self.tile_for(height, width, requested=requested, overlap=overlap, **model)
        if not edge:
            return (0, 0)
        return plan_tiles(height, width, edge * edge, overlap,
                          max_edge=edge if requested else None)

    def frame_problem(self, height: int, width: int, *, scale: int, channels: int,
                      precision: str = 'fp32', overlap: int = 8) -> str:
        """Why this frame cannot be run within the budget, or ''."""
        try:
            self._largest_tile(height, width, scale, channels, precision, min_tile(overlap))
        except FrameTooLarge as error:
            return str(error)
        return ''

    # ---------------------------------------------------------------- internals
    def _largest_tile(self, height: int, width: int, scale: int, channels: int,
                      precision: str, smallest: int) -> int:
        if not self.max_memory_mb:
            return 1 << 30
        hr_pixels = height * width * scale ** 2
        frame_mb = FRAME_BYTES_PER_HR_PIXEL * hr_pixels / MIB
        baseline = self.baseline_mb if self.baseline_mb is not None else resident_mb()
        available_mb = self.max_memory_mb - baseline - HEADROOM_MB - frame_mb
        per_lr_pixel = (TILE_BYTES_PER_HR_ELEMENT * PRECISION_FACTOR.get(precision, 1.0)
                        * channels * scale ** 2) / MIB
        edge = math.isqrt(max(int(available_mb / per_lr_pixel), 0)) if available_mb > 0 else 0
        if edge < min(smallest, _round_up(max(height, width))):
            need = baseline + HEADROOM_MB + frame_mb + per_lr_pixel * min(
                smallest, _round_up(height)) * min(smallest, _round_up(width))
            raise FrameTooLarge(
                f'frame {width}x{height} (x{scale} -> {width * scale}x{height * scale}) needs '
                f'about {need:.0f} MiB, over max_memory_mb {self.max_memory_mb:.0f} '
                f'({baseline:.0f} MiB already in use)')
        return max(_round_down(edge, smallest), smallest)


def plan_tiles(height: int, width: int, area: int, overlap: int,
               max_edge: Optional[int] = None) -> Tuple[int, int]:
    """The tile ``(rows, cols)`` of at most ``area`` LR pixels (and ``max_edge`` per side)
    that covers the frame with the least total work, overlaps and padding included."""
    smallest = min_tile(overlap)
    best: Optional[Tuple[int, int, int]] = None
    for rows_n in range(1, max(height // (smallest - overlap), 1) + 2):
        rows = _balanced(height, rows_n, overlap, smallest)
        for cols_n in range(1, max(width // (smallest - overlap), 1) + 2):
            cols = _balanced(width, cols_n, overlap, smallest)
            if rows * cols > area or (max_edge and (rows > max_edge or cols > max_edge)):
                continue
            work = rows_n * cols_n * _round_up(rows) * _round_up(cols)
            if best is None or work < best[0]:
                best = (work, rows, cols)
    if best is None:
        edge = _round_down(math.isqrt(area), smallest)
        return (edge, edge)
    return (best[1], best[2])


def _balanced(length: int, count: int, overlap: int, smallest: int) -> int:
    """Edge of ``count`` equal tiles that cover ``length`` with ``overlap`` between them."""
    if count == 1:
        return length
    return max(_round_up(-(-(length + overlap * (count - 1)) // count)), smallest)


def _round_up(edge: int) -> int:
    return -(-int(edge) // TILE_MULTIPLE) * TILE_MULTIPLE


def _round_down(edge: int, smallest: int) -> int:
    return max(int(edge) // TILE_MULTIPLE * TILE_MULTIPLE, smallest)
