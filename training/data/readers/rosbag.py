"""rosbag2 recordings as samples, through :mod:`training.data.rosbag_io`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

from training.data.readers.entries import Entry
from training.data.bag_pairing import BagStats
from training.data.rosbag_io import iter_bag_samples

__all__ = ['list_rosbag']

LOGGER = logging.getLogger(__name__)


def list_rosbag(root: Path, depth_topic: str = '/depth/image_raw',
                rgb_topic: Optional[str] = None, camera_info_topic: Optional[str] = None,
                tolerance: float = 0.02, every: int = 1,
                max_frames: Optional[int] = None) -> List[Entry]:
    """A rosbag2 (sqlite3 or mcap) through :mod:`training.data.rosbag_io`; ``root`` = the bag.

    Frames are decoded when listed (pairing needs the stream in order), so for long bags use
    ``every`` (keep every n-th synchronised frame, what training wants from a 30 Hz recording)
    and ``max_frames`` (stop reading after that many synchronised frames) to bound memory.
    """
    stats = BagStats()
    samples = []
    for index, sample in enumerate(iter_bag_samples(root, depth_topic, rgb_topic,
                                                    camera_info_topic, tolerance, stats,
                                                    max_frames)):
        if index % max(1, int(every)) == 0:
            samples.append(sample)
    LOGGER.info('%s: %s', root, stats.summary())
    return [Entry(sample.name, (lambda s=sample: s)) for sample in samples]
