"""Frame flow between the node's callbacks and its inference thread (no ROS, no torch).

* :class:`LatestFrameSlot`: holds only the newest frame. A camera faster than the model must not
  build a queue (latency would grow without bound); the older frame is dropped and counted.
* :class:`StampPairer`: pairs images with camera_info by exact header stamp, in both arrival
  orders, with a small bounded cache (``message_filters`` is not available everywhere).
* :class:`FlowStats`: input/output rates, median latency and counters for diagnostics.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Deque, Dict, Generic, Hashable, Optional, Tuple, TypeVar

__all__ = ['FlowStats', 'LatestFrameSlot', 'StampPairer']

T = TypeVar('T')


class LatestFrameSlot(Generic[T]):
    """A one-element mailbox: ``put`` replaces what is there, ``take`` waits for something."""

    def __init__(self) -> None:
        self._item: Optional[T] = None
        self._condition = threading.Condition()
        self._closed = False

    def put(self, item: T) -> Optional[T]:
        """Store ``item``; return the frame it replaced (which is thereby dropped), if any."""
        with self._condition:
            dropped, self._item = self._item, item
            self._condition.notify()
        return dropped

    def take(self, timeout: Optional[float] = None) -> Optional[T]:
        """Remove and return the newest item, waiting up to ``timeout`` s; None if none came."""
        with self._condition:
            if self._item is None and not self._closed:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake any waiting ``take`` so a worker thread can exit."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class StampPairer:
    """Match images and camera_infos that carry the same stamp, whichever arrives first.

    Each side keeps at most ``capacity`` unmatched entries (oldest evicted), so a stream that
    never gets a partner cannot grow memory. ``latest_info`` remembers the newest info for
    nodes that accept images without an exactly matching one.
    """

    def __init__(self, capacity: int = 10) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be positive, got {capacity}')
        self.capacity = capacity
        self._images: 'OrderedDict[Hashable, Any]' = OrderedDict()
        self._infos: 'OrderedDict[Hashable, Any]' = OrderedDict()
        self._lock = threading.Lock()
        self.latest_info: Any = None
        #: Images evicted without ever meeting their camera_info.
        self.evicted_images = 0

    def add_image(self, stamp: Hashable, image: Any) -> Optional[Tuple[Any, Any]]:
        """Return ``(image, info)`` if an info with this stamp is waiting, else keep the image."""
        with self._lock:
            info = self._infos.pop(stamp, None)
            if info is not None:
                return image, info
            self._store(self._images, stamp, image)
            return None

    def add_info(self, stamp: Hashable, info: Any) -> Optional[Tuple[Any, Any]]:
        """Return ``(image, info)`` if an image with this stamp is waiting, else keep the info."""
        with self._lock:
            self.latest_info = info
            image = self._images.pop(stamp, None)
            if image is not None:
                return image, info
            self._store(self._infos, stamp, info)
            return None

    def info_for(self, stamp: Hashable) -> Any:
        """The info with exactly this stamp if one is cached, else the newest info (or None)."""
        with self._lock:
            return self._infos.get(stamp, self.latest_info)

    def _store(self, cache: 'OrderedDict[Hashable, Any]', stamp: Hashable, item: Any) -> None:
        cache[stamp] = item
        cache.move_to_end(stamp)
        while len(cache) > self.capacity:
            cache.popitem(last=False)
            if cache is self._images:
                self.evicted_images += 1


class FlowStats:
    """Thread-safe counters and sliding windows for the node's diagnostics."""

    def __init__(self, window_s: float = 5.0, latency_samples: int = 100) -> None:
        self.window_s = window_s
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._inputs: Deque[float] = deque()
        self._outputs: Deque[float] = deque()
        self._latencies: Deque[float] = deque(maxlen=latency_samples)
        self._stamp_latencies: Deque[float] = deque(maxlen=latency_samples)
        self.counters: Dict[str, int] = {'received': 0, 'published': 0, 'dropped': 0,
                                         'rejected': 0, 'failed': 0}
        self.last_error = ''
        self.last_error_time = 0.0

    def input(self, now: Optional[float] = None) -> None:
        """Count a received frame."""
        self._event(self._inputs, 'received', now)

    def output(self, latency_s: float, now: Optional[float] = None,
               stamp_latency_s: Optional[float] = None) -> None:
        """Count a published frame that took ``latency_s`` from receipt to publication and
        ``stamp_latency_s`` from its header stamp (capture: includes driver and transport)."""
        self._event(self._outputs, 'published', now)
        with self._lock:
            self._latencies.append(latency_s)
            if stamp_latency_s is not None:
                self._stamp_latencies.append(stamp_latency_s)

    def count(self, name: str, error: str = '') -> None:
        """Increment ``dropped``, ``rejected`` or ``failed``; remember ``error`` if given."""
        with self._lock:
            self.counters[name] += 1
            if error:
                self.last_error = error
                self.last_error_time = time.monotonic()

    def snapshot(self, now: Optional[float] = None) -> Dict[str, Any]:
        """Rates over the window (Hz), median latencies (s, NaN before any output), counters."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            # Before a full window has passed, divide by the time actually observed.
            span = max(min(self.window_s, now - self._start), 1e-3)
            return {
                'input_rate_hz': len(self._inputs) / span,
                'output_rate_hz': len(self._outputs) / span,
                'median_latency_s': _median(self._latencies),
                'median_stamp_latency_s': _median(self._stamp_latencies),
                'last_error': self.last_error,
                'last_error_age_s': (now - self.last_error_time if self.last_error
                                     else float('nan')),
                **self.counters,
            }

    def _event(self, times: Deque[float], counter: str, now: Optional[float]) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            times.append(now)
            self.counters[counter] += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        for times in (self._inputs, self._outputs):
            while times and times[0] < now - self.window_s:
                times.popleft()


def _median(values: Deque[float]) -> float:
    return statistics.median(values) if values else float('nan')
