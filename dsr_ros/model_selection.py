"""Pick the largest shipped model that keeps up with the camera, by measuring it at start-up.

A lite model gives better depth than a tiny one but runs about ten times slower; which one a
robot can afford depends on its CPU or GPU, the frame size and the camera's rate, none of which
is known when the package is built. So the node's ``model: auto`` times the candidates on a
frame of the expected size (a procedural room, the same scene the demo uses), smallest first,
and keeps the largest whose median time fits the frame period. A rung is never faster than the
one below it, so the timing stops at the first rung that falls behind: on a 2-core CPU the
paper net (seconds a frame) is never run at start-up. When not even the smallest keeps up it
is taken anyway (the fastest) and the log says so. Everything measured is returned for the
start-up log line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

__all__ = ['Choice', 'choose_model', 'time_resolver']

#: A model "keeps up" when its median time is below this fraction of the frame period (the
#: node also decodes, encodes and publishes).
HEADROOM = 0.85


@dataclass(frozen=True)
class Choice:
    """The chosen model and what was measured."""

    size: str
    path: Path
    seconds: Dict[str, float]
    keeps_up: bool

    def describe(self, rate_hz: float) -> str:
        """One log line: every candidate's time and the verdict."""
        times = ', '.join(f'{name} {1000 * s:.0f} ms' for name, s in self.seconds.items())
        verdict = ('keeps up with' if self.keeps_up else 'is the fastest, but too slow for')
        return (f'model auto: {self.size} ({self.path.name}) {verdict} {rate_hz:g} Hz '
                f'[median per frame: {times}]')


def time_resolver(resolver, input_shape: Tuple[int, int], repeats: int = 3) -> float:
    """Median seconds of ``resolver.run`` on a procedural uint16 frame (after one warm-up)."""
    from dsr_ros.scene import random_room
    height, width = input_shape
    frame = np.clip(random_room(np.random.default_rng(0), width, height) * 1000, 1, 65535)
    frame = frame.astype(np.uint16)
    resolver.run(frame)
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        resolver.run(frame)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def choose_model(candidates: Dict[str, Path], build: Callable[[Path], object],
                 input_shape: Tuple[int, int], rate_hz: float) -> Tuple[Choice, object]:
    """Largest candidate (ladder order: smallest first in ``candidates``) that keeps up.

    ``build(path)`` makes a resolver; the chosen one is returned with the choice so the node
    does not load it twice.
    """
    if not candidates:
        raise ValueError('no shipped model to choose from')
    period = 1.0 / rate_hz if rate_hz > 0 else float('inf')
    seconds: Dict[str, float] = {}  # shared with the Choice: it lists every rung timed
    chosen: Optional[Tuple[Choice, object]] = None
    for size, path in candidates.items():
        resolver = build(path)
        seconds[size] = time_resolver(resolver, input_shape)
        if seconds[size] > HEADROOM * period:
            if chosen is None:  # not even the smallest keeps up: take it, flagged
                chosen = Choice(size, path, seconds, False), resolver
            break  # the larger rungs are slower still
        chosen = Choice(size, path, seconds, True), resolver
    return chosen
