"""Reading rosbag2 depth (+ RGB, + CameraInfo) streams as training / evaluation samples.

Reading goes through the pure-Python ``rosbags`` library (sqlite3 and mcap storage; no ROS
installation needed). Depth frames are paired with the nearest RGB frame in time
(:mod:`training.data.bag_pairing`; the bag's log time stands in for a zero header stamp), and
the messages are decoded by :mod:`training.data.bag_messages`. Frames without a partner are
counted in :class:`BagStats` and logged, never dropped silently. RGB whose size differs from
the depth is resized to it with INTER_AREA (logged once per bag, counted in the stats).
Writing bags is :mod:`training.data.bag_writer`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.data.bag_messages import (CAMERA_INFO, COLOUR_CHANNELS, COMPRESSED,
                                        DEPTH_ENCODINGS, IMAGE, BagError, decode_compressed,
                                        decode_image, header_stamp, to_depth, to_rgb,
                                        typestore)
from training.data.bag_pairing import BagStats, StampPairer
from training.data.sample import RGBDSample

__all__ = ['bag_topics', 'iter_bag_samples', 'norm_topic', 'open_bag', 'read_bag_samples',
           'read_messages']

LOGGER = logging.getLogger(__name__)


def norm_topic(topic: str) -> str:
    """A topic name as rosbag2 lists it: one leading slash, none trailing."""
    return '/' + topic.strip('/')


def bag_topics(path: Path) -> Dict[str, Tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of a bag (raises :class:`BagError` if unreadable)."""
    reader = open_bag(path)
    with reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def open_bag(path: Path) -> Any:
    """A checked (and closed) rosbags reader of the bag at ``path``, or a one-line
    :class:`BagError` saying why the bag cannot be read."""
    from rosbags.highlevel import AnyReader
    path = Path(path)
    if not path.exists():
        raise BagError(path, 'bag does not exist')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        storage = sorted(p.name for p in path.iterdir() if p.suffix in ('.db3', '.mcap'))
        raise BagError(path, 'the bag folder has no metadata.yaml' + (
            f' (storage files: {", ".join(storage)}); run `ros2 bag reindex {path}` to '
            'recreate it' if storage else ' and no .db3 or .mcap file: not a rosbag2 folder'))
    try:
        reader = AnyReader([path], default_typestore=typestore())
        reader.open()
        reader.close()
    except Exception as error:  # noqa: BLE001 - rosbags raises several kinds for a bad bag
        raise BagError(path, f'not a readable rosbag2 ({type(error).__name__}: {error})'
                       ) from error
    return reader


def _connections(reader: Any, topic: str, allowed: Sequence[str], path: Path,
                 role: str) -> list:
    wanted = norm_topic(topic)
    found = [c for c in reader.connections if norm_topic(c.topic) == wanted]
    if not found:
        listing = ', '.join(f'{c.topic} [{c.msgtype}]' for c in reader.connections) or 'none'
        raise BagError(path, f'{role} topic {topic!r} is not in the bag; topics: {listing}')
    bad = [c.msgtype for c in found if c.msgtype not in allowed]
    if bad:
        raise BagError(path, f'{role} topic {topic!r} has type {bad[0]}, expected one of '
                             f'{list(allowed)}')
    return found


def iter_bag_samples(path: Path, depth_topic: str, rgb_topic: Optional[str] = None,
                     camera_info_topic: Optional[str] = None, tolerance: float = 0.02,
                     stats: Optional[BagStats] = None, max_frames: Optional[int] = None,
                     decode: bool = True) -> Iterator[RGBDSample]:
    """Yield time-synchronised depth(+RGB) samples of a bag, in stamp order.

    ``stats`` (a :class:`BagStats` the caller keeps) is filled in as the bag is read, and is
    complete when the generator is exhausted. A message that cannot be decoded (corrupt CDR,
    unsupported encoding, bad PNG) skips its frame and is counted per topic in
    ``stats.undecodable`` (one warning per topic); only a bag where no frame decodes at all is
    an error. With ``decode=False`` nothing is yielded: frames are decoded and counted only
    (``bag_info``).
    """
    path = Path(path)
    stats = stats if stats is not None else BagStats()
    reader = open_bag(path)
    with reader:
        stats.topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        depth_conns = _connections(reader, depth_topic, (IMAGE, COMPRESSED), path, 'depth')
        rgb_conns = (_connections(reader, rgb_topic, (IMAGE, COMPRESSED), path, 'rgb')
                     if rgb_topic else [])
        info_conns = (_connections(reader, camera_info_topic, (CAMERA_INFO,), path,
                                   'camera_info') if camera_info_topic else [])
        infos = []
        # An empty connection list means *all* topics to rosbags: only ask when there are some.
        for conn, log_time, raw in (read_messages(reader, info_conns, path)
                                    if info_conns else ()):
            msg = reader.deserialize(raw, conn.msgtype)
            infos.append((header_stamp(raw, log_time), msg))
            stats.info_frames += 1
        infos.sort(key=lambda item: item[0])
        context = _DecodeContext(path, reader, infos, stats, depth_topic, rgb_topic)
        produced = 0
        for depth_item, rgb_item in _paired_messages(reader, path, depth_conns, rgb_conns,
                                                     depth_topic, tolerance, stats):
            sample = context.try_sample(depth_item, rgb_item)
            if sample is None:
                continue
            if decode:
                yield sample
            produced += 1
            if max_frames is not None and produced >= max_frames:
                break
    if stats.pairs and not stats.usable:
        topic, reason = next(iter(stats.first_error.items()))
        raise BagError(path, f'none of its {stats.pairs} frames could be decoded; first '
                             f'failure on {topic}: {reason}')
    _log_stats(path, stats)


def _paired_messages(reader: Any, path: Path, depth_conns: list, rgb_conns: list,
                     depth_topic: str, tolerance: float, stats: BagStats
                     ) -> Iterator[Tuple[tuple, Optional[tuple]]]:
    """``(depth, rgb or None)`` raw-message pairs as soon as the bag settles each of them."""
    depth_ids = {id(c) for c in depth_conns}
    pairer = StampPairer(tolerance, stats, bool(rgb_conns))
    for conn, log_time, raw in read_messages(reader, depth_conns + rgb_conns, path):
        item = (header_stamp(raw, log_time), conn.msgtype, raw)
        if id(conn) in depth_ids:
            stats.depth_frames += 1
            yield from pairer.add_depth(item)
        else:
            stats.rgb_frames += 1
            yield from pairer.add_rgb(item)
    listed = sum(c.msgcount for c in depth_conns)
    if stats.depth_frames < listed:
        raise BagError(path, f'its index lists {listed} messages on {depth_topic!r} but '
                             f'only {stats.depth_frames} could be read (corrupt chunks?)')
    yield from pairer.finish()


def read_messages(reader: Any, connections: list, path: Path) -> Iterator[tuple]:
    """``reader.messages`` with storage errors (truncated or corrupt files) naming the bag."""
    iterator = reader.messages(connections=connections)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as error:  # noqa: BLE001 - sqlite3, mcap and rosbags errors
            raise BagError(path, f'cannot read messages ({type(error).__name__}: {error})'
                           ) from error
        yield item


def read_bag_samples(path: Path, depth_topic: str, rgb_topic: Optional[str] = None,
                     camera_info_topic: Optional[str] = None, tolerance: float = 0.02,
                     max_frames: Optional[int] = None) -> Tuple[List[RGBDSample], BagStats]:
    """All samples of a bag and the pairing statistics (see :func:`iter_bag_samples`)."""
    stats = BagStats()
    samples = list(iter_bag_samples(path, depth_topic, rgb_topic, camera_info_topic,
                                    tolerance, stats, max_frames))
    return samples, stats


def _log_stats(path: Path, stats: BagStats) -> None:
    level = logging.WARNING if stats.unmatched_depth else logging.INFO
    LOGGER.log(level, '%s: %s', path, stats.summary())


class _DecodeContext:
    """Turns a paired (depth, rgb) of raw CDR messages into an :class:`RGBDSample`."""

    def __init__(self, path: Path, reader: Any, infos: list, stats: BagStats,
                 depth_topic: str, rgb_topic: Optional[str] = None) -> None:
        self.topics = {'depth': norm_topic(depth_topic),
                       'rgb': norm_topic(rgb_topic) if rgb_topic else None}
        self._failed_role = 'depth'  # which message sample() was decoding
        self.path = path
        self.reader = reader
        self.infos = infos
        self.stats = stats
        self.prefix = f'{path.name}{norm_topic(depth_topic).replace("/", "_")}'
        self.count = 0
        self.warned_resize = False
        self.warned_info = False

    def _decode(self, item: tuple, where: str) -> Tuple[np.ndarray, str]:
        stamp, msgtype, raw = item
        try:
            msg = self.reader.deserialize(raw, msgtype)
        except Exception as error:  # noqa: BLE001
            raise BagError(self.path, f'{where} at {stamp:.6f} s cannot be deserialised '
                                      f'({type(error).__name__}: {error})') from error
        label = f'{self.path} ({where} at {stamp:.6f} s)'
        if where == 'depth' and msgtype == IMAGE and str(msg.encoding) not in DEPTH_ENCODINGS:
            raise BagError(label, f'depth topic has encoding {str(msg.encoding)!r}, not a depth '
                                  f'encoding ({", ".join(DEPTH_ENCODINGS)})')
        if msgtype == COMPRESSED:
            return decode_compressed(msg, label)
        return decode_image(msg, label)

    def try_sample(self, depth_item: tuple, rgb_item: Optional[tuple]
                   ) -> Optional[RGBDSample]:
        """:meth:`sample`, or None (counted, first one per topic logged) if it cannot be
        decoded."""
        try:
            return self.sample(depth_item, rgb_item)
        except BagError as error:
            topic = self.topics[self._failed_role]
            if topic not in self.stats.undecodable:
                LOGGER.warning('%s: skipping undecodable frames on %s (counted); first: %s',
                               self.path, topic, error)
            self.stats.count_undecodable(topic, error)
            self.stats.skipped_pairs += 1
            return None

    def sample(self, depth_item: tuple, rgb_item: Optional[tuple]) -> RGBDSample:
        self._failed_role = 'depth'
        image, encoding = self._decode(depth_item, 'depth')
        depth, valid, unit = to_depth(image, encoding, f'{self.path} (depth)')
        rgb = None
        if rgb_item is not None:
            self._failed_role = 'rgb'
            colour, colour_encoding = self._decode(rgb_item, 'rgb')
            if colour_encoding not in COLOUR_CHANNELS:
                raise BagError(self.path, f'rgb topic has encoding {colour_encoding!r}')
            rgb = to_rgb(colour, colour_encoding)
            if rgb.shape[:2] != depth.shape:
                if not self.warned_resize:
                    LOGGER.warning('%s: RGB %s resized to the depth size %s with INTER_AREA',
                                   self.path, rgb.shape[:2], depth.shape)
                    self.warned_resize = True
                self.stats.rgb_resized += 1
                rgb = cv2.resize(rgb, (depth.shape[1], depth.shape[0]),
                                 interpolation=cv2.INTER_AREA)
        name = f'{self.prefix}_{self.count:06d}'
        self.count += 1
        return RGBDSample(name, depth, valid, unit, rgb=rgb,
                          intrinsics=self._intrinsics(depth_item[0], depth.shape),
                          source=f'{self.path}:{depth_item[0]:.9f}', stamp=depth_item[0])

    def _intrinsics(self, stamp: float, shape: tuple) -> Optional[np.ndarray]:
        if not self.infos:
            return None
        stamps = np.array([s for s, _ in self.infos])
        info = self.infos[int(np.argmin(np.abs(stamps - stamp)))][1]
        k = np.array(info.k, dtype=np.float64).reshape(3, 3)
        if not k.any():
            return None
        height, width = int(info.height), int(info.width)
        if (height, width) != shape and height and width:
            if not self.warned_info:
                LOGGER.warning('%s: camera_info is %dx%d but depth is %dx%d; K scaled to the '
                               'depth', self.path, width, height, shape[1], shape[0])
                self.warned_info = True
            k[0] *= shape[1] / width
            k[1] *= shape[0] / height
        return k
