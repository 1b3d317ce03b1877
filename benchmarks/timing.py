"""Timing several things fairly on a shared machine: interleaved, in a worker thread.

Interleaving A, B, A, B... instead of A, A, ..., B, B... makes the ratios between options
robust to load that comes and goes (a shared machine, thermal limits): a slow spell hits every
option alike. That is why the matmul reference is one of the interleaved items too.
"""

from __future__ import annotations

import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from benchmarks.memory import PeakMemory

__all__ = ['Timed', 'in_worker_thread', 'summarize', 'sync_for', 'time_round_robin']


def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """Median, p95, mean, min (ms) and frames/s (from the median) of per-frame durations."""
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    median = float(np.median(values))
    return {'frames': int(values.size), 'median_ms': median,
            'p95_ms': float(np.percentile(values, 95)), 'mean_ms': float(values.mean()),
            'min_ms': float(values.min()), 'fps': 1e3 / median if median > 0 else float('inf')}


@dataclass
class Timed:
    """One thing to time: a no-argument callable and what its calls cost."""

    name: str
    fn: Callable[[], Any]
    threads: int = 0
    seconds: List[float] = field(default_factory=list)
    sys_s: float = 0.0
    minor_faults: int = 0
    memory: Optional[PeakMemory] = None
    error: Optional[str] = None


def sync_for(device: torch.device) -> Callable[[], None]:
    """What to call after a timed call so that asynchronous CUDA work is included."""
    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _warm_up(item: Timed, device: torch.device, warmup: int, sync: Callable[[], None]) -> float:
    """Untimed calls (first calls build kernels); measures peak memory; seconds per call."""
    default_threads = torch.get_num_threads()
    torch.set_num_threads(item.threads or default_threads)
    started = time.perf_counter()
    try:
        with PeakMemory(device) as memory:
            for _ in range(max(warmup, 1)):
                item.fn()
                sync()
        item.memory = memory
    except Exception as error:  # noqa: BLE001 - an option that fails is a result
        item.error = f'{type(error).__name__}: {error}'[:500]
    finally:
        torch.set_num_threads(default_threads)
    return (time.perf_counter() - started) / max(warmup, 1)


def time_round_robin(items: List[Timed], device: torch.device, *, warmup: int,
                     max_frames: int, budget_s: float, min_frames: int = 3) -> None:
    """Warm each item up, then time them in turns until ``max_frames`` or the budget.

    Stops after ``budget_s`` per item once every item has ``min_frames`` (2 when one warm-up
    call alone took half the budget, so large outputs on a small CPU keep the run within
    minutes). Kernel time and minor page faults per call are recorded too: they expose
    allocator costs (see dsr_ros.cpu_tuning).
    """
    sync = sync_for(device)
    slowest = max((_warm_up(item, device, warmup, sync) for item in items), default=0.0)
    live = [item for item in items if item.error is None]
    if slowest > budget_s / 2:
        min_frames = min(min_frames, 2)
    min_frames = max(1, min(min_frames, max_frames))
    default_threads = torch.get_num_threads()
    start = time.perf_counter()
    while live:
        for item in live:
            torch.set_num_threads(item.threads or default_threads)
            before = resource.getrusage(resource.RUSAGE_SELF)
            begin = time.perf_counter()
            item.fn()
            sync()
            item.seconds.append(time.perf_counter() - begin)
            after = resource.getrusage(resource.RUSAGE_SELF)
            item.sys_s += after.ru_stime - before.ru_stime
            item.minor_faults += after.ru_minflt - before.ru_minflt
        torch.set_num_threads(default_threads)
        done = min(len(item.seconds) for item in live)
        if done >= max_frames or (done >= min_frames and
                                  time.perf_counter() - start > budget_s * len(live)):
            break


def in_worker_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh thread and return its result (re-raising its error).

    The node runs inference in a worker thread, so the benchmark does too. It matters: with
    GNU OpenMP the pool of the *main* thread spins between parallel regions, and on a busy
    machine (measured here with a 2-thread training job beside us) the main thread ran the
    lite net 2.5x slower at 160x120 and 12x slower at 32x24 than a worker thread did.
    """
    result: List[Any] = []
    failure: List[BaseException] = []

    def target() -> None:
        try:
            result.append(fn(*args))
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            failure.append(error)
    thread = threading.Thread(target=target, name='dsr_bench_worker')
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
