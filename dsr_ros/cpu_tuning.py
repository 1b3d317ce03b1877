"""Process settings for CPU inference: glibc malloc thresholds and the OpenMP wait policy.

Both are invisible inside PyTorch and both cost this package's net more than most in-model
options on a small CPU, so the benchmark measures them (in fresh node processes) and the node
can apply them.

Malloc: stop CPU inference from page-faulting every frame.

PyTorch has no caching allocator on the CPU: every activation is a fresh ``malloc``. glibc
serves blocks above its mmap threshold (at most 32 MiB, and every block of a non-main arena
that does not fit a 64 MiB sub-heap) with a new ``mmap`` and returns them with ``munmap`` on
free, so each frame the kernel zeroes all feature maps again. DSRNet's HR features are
``C x H x W`` (39 MiB in fp32 at 640x480 with C = 32, 630 MiB at 2560x1920): measured on a 2-core
EPYC, x8 from 160x120 in bf16 spent 0.8 s of its 2.4 s per frame in the kernel (446,000 minor
page faults per frame); with the settings below, 0 faults and 1.4 s.

The settings raise the mmap and trim thresholds (freed blocks stay in the heap and are reused
by the next frame, whose tensors have the same sizes) and keep one arena, so tensors made by a
worker thread (the node runs inference in one) come from the main heap too. The price: the
process keeps its peak memory resident instead of returning it between frames.

Call :func:`tune_malloc` at the very start of a process, before other threads allocate (a
thread keeps the arena it first used), or start the process with :func:`malloc_env`.

OpenMP: PyTorch's CPU wheels use GNU OpenMP, whose idle threads spin before they sleep. When
another process keeps the cores busy (a robot's drivers and SLAM, or here a training job), the
spinning threads of both fight for the cores and each parallel region waits for a descheduled
thread: measured on a 2-core machine with a 2-thread training job running, a small frame took
412 ms with 2 threads, 39 ms with 1 thread and 34 ms with 2 threads and
``OMP_WAIT_POLICY=PASSIVE`` (:func:`omp_env`). That was inference on the *main* thread; the
node infers on a worker thread, where the same setting measured 0.96x-1.34x for the lite model
but 1.5-5x for the tiny one in fresh node processes, so the node sets it by default
(:mod:`dsr_ros.openmp_passive`). libgomp reads it once, when
torch is first imported, so it belongs in the environment of the process (launch file, shell),
or in ``os.environ`` before the first ``import torch``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Dict

__all__ = ['DEFAULT_THRESHOLD', 'malloc_env', 'malloc_tuning_wanted', 'omp_env', 'tune_malloc']

#: Bytes: above the largest activation we expect (2560x1920x32 fp32 is 630 MiB).
DEFAULT_THRESHOLD = 1 << 30
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Apply the settings to this process; False where the C library is not glibc."""
    if not 0 < threshold < 2 ** 31:
        raise ValueError(f'threshold must be in (0, 2**31), got {threshold}')
    name = ctypes.util.find_library('c') or 'libc.so.6'
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    results = [mallopt(_M_MMAP_THRESHOLD, threshold), mallopt(_M_TRIM_THRESHOLD, threshold),
               mallopt(_M_ARENA_MAX, 1)]
    return all(result == 1 for result in results)


def malloc_tuning_wanted(setting: str, cuda_available: bool) -> bool:
    """Whether a node process should call :func:`tune_malloc` at start-up.

    ``setting`` is ``DSR_ROS_MALLOC_TUNING``: ``0`` never, ``1`` always, anything else (unset)
    only when inference can only run on the CPU. It must be decided before the node reads its
    ``device`` parameter (threads start then), so with CUDA present the default is to leave
    malloc alone: on CUDA the activations live in PyTorch's caching allocator and keeping the
    peak host memory resident would only cost RAM.
    """
    if setting.strip() in ('0', '1'):
        return setting.strip() == '1'
    return not cuda_available


def malloc_env(threshold: int = DEFAULT_THRESHOLD) -> Dict[str, str]:
    """The same settings as environment variables, for a child process or a launch file."""
    return {'MALLOC_MMAP_THRESHOLD_': str(threshold), 'MALLOC_TRIM_THRESHOLD_': str(threshold),
            'MALLOC_ARENA_MAX': '1'}


def omp_env() -> Dict[str, str]:
    """Threads that sleep instead of spinning while they wait (see the module docstring)."""
    return {'OMP_WAIT_POLICY': 'PASSIVE'}
