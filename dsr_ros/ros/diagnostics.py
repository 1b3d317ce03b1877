"""The node's /diagnostics message (one status from the frame counters and the node's state)
and its throttled log lines.

Kept apart from the node so what an operator sees in ``rqt_runtime_monitor`` (the level, the
message, every key and how its value is written) reads in one place. The level reflects what
happened since the previous message, not since start: a node that dropped frames an hour ago
and keeps up now is OK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

__all__ = ['DIAGNOSTIC_VALUE_CHARS', 'DiagnosticsReporter', 'NodeState', 'ThrottledLog']

#: Longest string value in /diagnostics (a hostile encoding name can be 100,000 characters).
DIAGNOSTIC_VALUE_CHARS = 256

#: Counters whose increase since the previous message sets the level.
_PROBLEM_COUNTERS = ('dropped', 'rejected', 'failed')


@dataclass(frozen=True)
class NodeState:
    """What the node reports beside the frame counters of
    :class:`dsr_ros.ros.pipeline.FlowStats`."""

    name: str
    hardware_id: str
    unpaired_images: int
    scale: int
    sampling: str
    sampling_served: bool
    precision: str
    weights: str


def _truncated(value: Any, limit: int = DIAGNOSTIC_VALUE_CHARS) -> str:
    """A diagnostics value of at most ``limit`` characters, saying how much was cut."""
    text = str(value)
    if len(text) <= limit:
        return text
    note = f'... ({len(text)} characters)'
    return text[:limit - len(note)] + note


def _milliseconds(seconds: float) -> str:
    return 'nan' if seconds != seconds else f'{seconds * 1e3:.1f}'


class DiagnosticsReporter:
    """Builds successive /diagnostics messages, remembering the counters of the previous one."""

    def __init__(self) -> None:
        self._last_counters: Dict[str, int] = {}

    def array(self, snap: Mapping[str, Any], state: NodeState,
              stamp: Any) -> DiagnosticArray:
        """The message for ``snap`` (a FlowStats snapshot) and ``state``, stamped ``stamp``
        (a ``builtin_interfaces/Time``, the node clock's ``now().to_msg()``)."""
        new = {name: snap[name] - self._last_counters.get(name, 0)
               for name in _PROBLEM_COUNTERS}
        self._last_counters = {name: snap[name] for name in new}
        status = DiagnosticStatus(name=f'{state.name}: depth super-resolution',
                                  hardware_id=state.hardware_id)
        if new['failed']:
            status.level, status.message = DiagnosticStatus.ERROR, 'inference failing'
        elif new['rejected']:
            status.level, status.message = DiagnosticStatus.WARN, 'malformed frames rejected'
        elif new['dropped']:
            status.level, status.message = DiagnosticStatus.WARN, 'dropping frames (too slow)'
        elif snap['input_rate_hz'] == 0:
            status.level, status.message = DiagnosticStatus.WARN, 'no input'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'ok'
        values = {
            'input_rate_hz': f'{snap["input_rate_hz"]:.2f}',
            'output_rate_hz': f'{snap["output_rate_hz"]:.2f}',
            # From receipt by the node to publication (the node's own cost) ...
            'median_latency_ms': _milliseconds(snap['median_latency_s']),
            # ... and from the image's header stamp (capture) on the node's clock: includes
            # the driver and the transport; meaningless if the camera's clock is not synced.
            'median_latency_from_stamp_ms': _milliseconds(snap['median_stamp_latency_s']),
            'frames_received': snap['received'],
            'frames_published': snap['published'],
            'dropped_frames': snap['dropped'],
            'rejected_frames': snap['rejected'],
            'failed_frames': snap['failed'],
            'unpaired_images': state.unpaired_images,
            'last_error': snap['last_error'],
            'scale': state.scale,
            'sampling': state.sampling,
            'sampling_served': str(state.sampling_served),
            'precision': state.precision,
            'weights': state.weights,
        }
        status.values = [KeyValue(key=key, value=_truncated(value))
                         for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = stamp
        return array


class ThrottledLog:
    """Log at most once per ``period_s`` per key, saying how many lines were held back.

    Why: a camera sending bad frames at 30 Hz would otherwise write 30 identical lines a
    second; the count keeps what was suppressed visible.
    """

    def __init__(self, logger: Any, period_s: float) -> None:
        self._logger = logger
        self._period_s = float(period_s)
        self._last: Dict[str, List[float]] = {}

    def __call__(self, key: str, message: str, error: bool = False) -> None:
        now = time.monotonic()
        last, held = self._last.get(key, (-float('inf'), 0))
        if now - last < self._period_s:
            self._last[key] = [last, held + 1]
            return
        self._last[key] = [now, 0]
        if held:
            message += f' ({held} similar message(s) suppressed)'
        if error:
            self._logger.error(message)
        else:
            self._logger.warning(message)
