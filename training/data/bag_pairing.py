"""Pairing a bag's depth frames with the RGB frame nearest in time, and counting what happened.

A depth frame is paired with the RGB frame whose *header* stamp is nearest, if it lies within
``tolerance`` seconds; an RGB frame may serve more than one depth frame. Frames without a
partner are counted in :class:`BagStats`, never dropped silently. Pairing streams through the
bag with a small buffer, so long bags do not have to fit in memory.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Tuple

import numpy as np

__all__ = ['BagStats', 'StampPairer']

#: Seconds an RGB frame is kept past the newest depth frame that could still want it.
_LOOKBACK = 1.0


@dataclass
class BagStats:
    """What happened while pairing a bag's frames; attached to every run of the reader."""

    #: What the bag holds: messages read per kind, and ``{topic: (msgtype, count)}``.
    depth_frames: int = 0
    rgb_frames: int = 0
    info_frames: int = 0
    topics: Dict[str, Tuple[str, int]] = field(default_factory=dict)
    #: What pairing made of them.
    pairs: int = 0
    unmatched_depth: int = 0
    unmatched_rgb: int = 0
    rgb_resized: int = 0
    max_pair_offset: float = 0.0
    #: Messages that could not be decoded, per topic (their frames are skipped).
    undecodable: Dict[str, int] = field(default_factory=dict)
    #: Pairs dropped because their depth or RGB message could not be decoded.
    skipped_pairs: int = 0
    #: Why the first undecodable message failed, per topic.
    first_error: Dict[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> int:
        """Frames the reader yields (paired and decodable)."""
        return self.pairs - self.skipped_pairs

    def summary(self) -> str:
        """One line for logs and the bag_info CLI."""
        skipped = ''.join(f', {count} undecodable on {topic} skipped'
                          for topic, count in sorted(self.undecodable.items()))
        return (f'{self.depth_frames} depth, {self.rgb_frames} rgb, {self.info_frames} '
                f'camera_info messages; {self.usable} usable frames, {self.unmatched_depth} depth '
                f'without RGB partner, {self.unmatched_rgb} RGB never paired, '
                f'{self.rgb_resized} RGB resized to depth, largest pair offset '
                f'{self.max_pair_offset * 1e3:.1f} ms{skipped}')

    def count_undecodable(self, topic: str, error: Exception) -> None:
        """Count a message of ``topic`` that could not be decoded (first reason kept)."""
        self.undecodable[topic] = self.undecodable.get(topic, 0) + 1
        self.first_error.setdefault(topic, str(error))


class StampPairer:
    """Nearest-stamp pairing of two streams in bag order, with a bounded look-ahead."""

    def __init__(self, tolerance: float, stats: BagStats, with_rgb: bool) -> None:
        self.tolerance = float(tolerance)
        self.stats = stats
        self.with_rgb = with_rgb
        self.pending: Deque[tuple] = collections.deque()
        self.rgb: Deque[list] = collections.deque()  # [stamp, msgtype, raw, used]
        self.latest_rgb = -np.inf

    def add_depth(self, item: tuple) -> List[tuple]:
        """Take a ``(stamp, msgtype, raw)`` depth message; return the pairs now settled."""
        if not self.with_rgb:
            self.stats.pairs += 1
            return [(item, None)]
        self.pending.append(item)
        return self._resolve(final=False)

    def add_rgb(self, item: tuple) -> List[tuple]:
        """Take a ``(stamp, msgtype, raw)`` RGB message; return the pairs now settled."""
        self.rgb.append([item[0], item[1], item[2], False])
        self.latest_rgb = max(self.latest_rgb, item[0])
        return self._resolve(final=False)

    def finish(self) -> List[tuple]:
        """The pairs left at the end of the bag; RGB frames never paired are counted."""
        ready = self._resolve(final=True)
        self.stats.unmatched_rgb += sum(1 for entry in self.rgb if not entry[3])
        self.rgb.clear()
        return ready

    def _resolve(self, final: bool) -> List[tuple]:
        ready = []
        while self.pending and (final or self.pending[0][0] + self.tolerance < self.latest_rgb):
            depth_item = self.pending.popleft()
            best = None
            for entry in self.rgb:
                offset = abs(entry[0] - depth_item[0])
                if offset <= self.tolerance and (best is None or offset < best[0]):
                    best = (offset, entry)
            if best is None:
                self.stats.unmatched_depth += 1
                continue
            best[1][3] = True
            self.stats.pairs += 1
            self.stats.max_pair_offset = max(self.stats.max_pair_offset, best[0])
            ready.append((depth_item, tuple(best[1][:3])))
        # Keep RGB frames a second longer than needed: drivers log with some latency, so a
        # depth frame can appear in the bag after RGB frames stamped later than it.
        horizon = ((self.pending[0][0] if self.pending else self.latest_rgb)
                   - self.tolerance - _LOOKBACK)
        while self.rgb and self.rgb[0][0] < horizon and len(self.rgb) > 1:
            entry = self.rgb.popleft()
            if not entry[3]:
                self.stats.unmatched_rgb += 1
        return ready
