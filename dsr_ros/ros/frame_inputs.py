"""The node's input side: decode each depth image, pair it with its camera_info, hand it on.

Kept apart from the node because this is where it is decided which frames run and with which
camera_info: an image is decoded and checked here (a malformed one is counted and skipped), and
then either waits for the camera_info with its stamp (``require_camera_info``, or while the
first images wait up to :data:`FIRST_INFO_WAIT_S` for a camera_info that a publisher exists for)
or goes on with the latest one. The pair lands in a one-element slot that the inference thread
takes from, so a model slower than the camera drops (and counts) old frames instead of building
latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dsr_ros.camera_info import CameraGeometry, check_camera_info
from dsr_ros.depth_io import FrameError
from dsr_ros.ros.diagnostics import ThrottledLog
from dsr_ros.ros.messages import camera_geometry_from_msg, depth_from_msg
from dsr_ros.ros.pipeline import FlowStats, LatestFrameSlot, StampPairer

__all__ = ['FIRST_INFO_WAIT_S', 'FrameInputs', 'InputFrame', 'PAIRING_CAPACITY']

#: Unmatched images / camera_infos kept while waiting for a partner with the same stamp.
PAIRING_CAPACITY = 10
#: Seconds the first images wait for their camera_info (when a camera_info publisher exists and
#: none has arrived yet), so the first output frame has its camera_info too.
FIRST_INFO_WAIT_S = 1.0


@dataclass
class InputFrame:
    """A decoded depth image, with what its output needs from the message."""

    depth: np.ndarray
    header: Header
    encoding: str
    received: float


#: What the inference thread takes: the frame, its camera_info message and the geometry read
#: (and checked) from it; both None when the frame goes out without camera_info.
Job = Tuple[InputFrame, Optional[CameraInfo], Optional[CameraGeometry]]


class FrameInputs:
    """The subscription callbacks' work, up to the slot the inference thread takes from.

    Args:
        require_info: an image waits for the camera_info with its stamp (else it is dropped
            when the pairing cache overflows).
        info_publishers: how many publishers the camera_info topic has now.
        stats: the node's frame counters.
        log_throttled: the node's throttled log.
    """

    def __init__(self, require_info: bool, info_publishers: Callable[[], int],
                 stats: FlowStats, log_throttled: ThrottledLog) -> None:
        self.require_info = require_info
        self._info_publishers = info_publishers
        self._stats = stats
        self._log_throttled = log_throttled
        #: The newest job (older ones are dropped and counted).
        self.slot: LatestFrameSlot[Job] = LatestFrameSlot()
        self.pairer = StampPairer(PAIRING_CAPACITY)
        self._first_image_at: Optional[float] = None
        self._info_wait_over = False
        self._reported_unpaired = 0

    def on_image(self, msg: Image) -> None:
        """Decode ``msg``; pass it on with its camera_info, or keep it until that comes."""
        received = time.monotonic()
        self._stats.input(received)
        try:
            depth = depth_from_msg(msg)
        except FrameError as error:
            self._reject(error)
            return
        frame = InputFrame(depth, msg.header, msg.encoding, received)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if self.require_info or self._awaiting_first_info(received):
            pair = self.pairer.add_image(stamp, frame)
            if pair is not None:
                self._submit(*pair)
            self._report_unpaired()
        else:
            self._submit(frame, self.pairer.info_for(stamp))

    def on_info(self, msg: CameraInfo) -> None:
        """Keep ``msg``; pass on the image that waited for it, if one did."""
        pair = self.pairer.add_info((msg.header.stamp.sec, msg.header.stamp.nanosec), msg)
        if pair is not None:  # an image waited for it (require_camera_info, or the first one)
            self._submit(*pair)

    def _awaiting_first_info(self, now: float) -> bool:
        """True while no camera_info has arrived, a publisher of one exists and the first
        image came less than FIRST_INFO_WAIT_S ago: the image waits for its camera_info (so
        the first output has one too) instead of going out without."""
        if self._info_wait_over or self.pairer.latest_info is not None:
            return False
        if self._first_image_at is None:
            self._first_image_at = now
        if now - self._first_image_at < FIRST_INFO_WAIT_S and self._info_publishers():
            return True
        self._info_wait_over = True
        return False

    def _submit(self, frame: InputFrame, info: Optional[CameraInfo]) -> None:
        camera = None if info is None else camera_geometry_from_msg(info)
        if camera is not None:
            try:
                check_camera_info(camera, frame.depth.shape[1], frame.depth.shape[0])
            except FrameError as error:
                if self.require_info:
                    self._reject(error)
                    return
                self._log_throttled('camera_info', f'{error}; publishing without camera_info')
                info = camera = None
        if self.slot.put((frame, info, camera)) is not None:
            self._stats.count('dropped')
            dropped = self._stats.counters['dropped']
            self._log_throttled('dropped', f'inference is slower than the input: dropped '
                                           f'{dropped} frame(s) so far, keeping the newest')

    def _reject(self, error: FrameError) -> None:
        self._stats.count('rejected', f'{error.kind}: {error.reason}')
        self._log_throttled(f'frame_{error.kind}', f'skipping frame: {error.reason}')

    def _report_unpaired(self) -> None:
        evicted = self.pairer.evicted_images
        if evicted > self._reported_unpaired:
            self._reported_unpaired = evicted
            self._log_throttled('unpaired', f'{evicted} depth image(s) got no camera_info with '
                                            'the same stamp (require_camera_info is true)')
