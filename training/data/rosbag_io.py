"""rosbag2 depth (+ RGB, + CameraInfo) streams as training / evaluation samples, and back.

Reading and writing go through the pure-Python ``rosbags`` library (sqlite3 and mcap storage;
no ROS installation needed). Depth frames are paired with the RGB frame whose *header* stamp is
nearest, if it lies within ``tolerance`` seconds (the bag's log time stands in for a zero
header stamp); an RGB frame may serve more than one depth frame. Frames without a partner are
counted in :class:`BagStats` and logged, never dropped silently. Pairing streams through the bag
with a small buffer, so long bags do not have to fit in memory.

Decoding follows REP 118 / the ROS image encodings: ``16UC1`` and ``mono16`` depth are
millimetres with 0 = invalid, ``32FC1`` depth is metres with NaN/inf/<= 0 = invalid; ``step`` and
``is_bigendian`` are honoured; colour may be ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``
or a ``sensor_msgs/CompressedImage`` (any format ``cv2.imdecode`` reads). ``compressedDepth``
PNG depth (image_transport's plugin, 16UC1 only) is accepted too. RGB whose size differs from
the depth is resized to it with INTER_AREA (logged once per bag, counted in the stats).
"""

from __future__ import annotations

import collections
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from dsr_ros.depth_io import encode_depth, valid_mask
from training.data.errors import DataError
from training.data.mcap_crc import add_chunk_crcs
from training.data.sample import RGBDSample

__all__ = ['BagError', 'BagStats', 'BagFrame', 'DEPTH_ENCODINGS', 'DEPTH_TOPIC', 'RGB_TOPIC',
           'INFO_TOPIC', 'decode_image', 'decode_compressed', 'iter_bag_samples',
           'read_bag_samples', 'bag_topics', 'write_bag', 'typestore']

LOGGER = logging.getLogger(__name__)

#: Topic names written by :func:`write_bag` (the relative driver names under a root namespace).
DEPTH_TOPIC = '/depth/image_raw'
RGB_TOPIC = '/color/image_raw'
INFO_TOPIC = '/depth/camera_info'

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
_DEPTH_ENCODINGS = {'16UC1': ('u2', 'millimetre'), 'mono16': ('u2', 'millimetre'),
                    '32FC1': ('f4', 'metre')}
#: The encodings a depth topic may have (REP 118 / image_encodings).
DEPTH_ENCODINGS = tuple(sorted(_DEPTH_ENCODINGS))
_LOOKBACK = 1.0
_COLOUR_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


class BagError(DataError):
    """A bag that cannot be used as asked (missing topic, wrong type, undecodable message)."""


@dataclass
class BagStats:
    """What happened while pairing a bag's frames; attached to every run of the reader."""

    depth_frames: int = 0
    rgb_frames: int = 0
    info_frames: int = 0
    pairs: int = 0
    unmatched_depth: int = 0
    unmatched_rgb: int = 0
    rgb_resized: int = 0
    max_pair_offset: float = 0.0
    topics: Dict[str, Tuple[str, int]] = field(default_factory=dict)
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


@dataclass
class BagFrame:
    """One frame to write: raw depth (uint16 mm or float32 m), optional RGB and intrinsics.

    ``rgb_stamp`` (default: ``stamp``) lets RGB be stamped apart from depth, as an unsynchronised
    camera would; ``depth=None`` writes RGB only.
    """

    depth: Optional[np.ndarray]
    rgb: Optional[np.ndarray] = None
    intrinsics: Optional[np.ndarray] = None
    stamp: Optional[float] = None
    rgb_stamp: Optional[float] = None


def typestore() -> Any:
    """The ROS 2 Humble message definitions (sensor_msgs is unchanged through Kilted)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


# ---------------------------------------------------------------------------- decoding
def decode_image(msg: Any, where: str = 'message') -> Tuple[np.ndarray, str]:
    """A ``sensor_msgs/Image`` as a numpy array and its encoding (rows trimmed to ``width``)."""
    encoding = str(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if encoding in _DEPTH_ENCODINGS:
        kind, channels = _DEPTH_ENCODINGS[encoding][0], 1
    elif encoding in _COLOUR_CHANNELS:
        kind, channels = 'u1', _COLOUR_CHANNELS[encoding]
    else:
        raise BagError(where, f'unsupported image encoding {encoding!r}; expected one of '
                              f'{sorted(_DEPTH_ENCODINGS) + sorted(_COLOUR_CHANNELS)}')
    dtype = np.dtype(('>' if msg.is_bigendian else '<') + kind)
    row_bytes = width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    needed = step * (height - 1) + row_bytes
    if height == 0 or width == 0 or step < row_bytes or data.size < needed:
        raise BagError(where, f'{encoding} image {width}x{height} with step {step} does not fit '
                              f'its {data.size} data bytes')
    if data.size < step * height:  # a last row without padding
        data = np.concatenate([data, np.zeros(step * height - data.size, np.uint8)])
    rows = data[:step * height].reshape(height, step)[:, :row_bytes]
    image = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    image = image.astype(dtype.newbyteorder('='))
    return (image[..., 0] if channels == 1 else image), encoding


def decode_compressed(msg: Any, where: str = 'message') -> Tuple[np.ndarray, str]:
    """A ``sensor_msgs/CompressedImage``: colour as RGB uint8, compressedDepth as 16UC1."""
    fmt = str(msg.format)
    buffer = np.asarray(msg.data, dtype=np.uint8)
    if 'compresseddepth' in fmt.lower():
        if not fmt.startswith('16UC1') and 'png' not in fmt.lower():
            raise BagError(where, f'only 16UC1 PNG compressedDepth is supported, got {fmt!r}')
        start = bytes(buffer[:64]).find(b'\x89PNG')
        image = cv2.imdecode(buffer[max(start, 0):], cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint16:
            raise BagError(where, f'cannot decode compressedDepth data ({fmt!r})')
        return image, '16UC1'
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None:
        raise BagError(where, f'cv2.imdecode cannot decode CompressedImage ({fmt!r}, '
                              f'{buffer.size} bytes)')
    return np.ascontiguousarray(image[:, :, ::-1]), 'rgb8'


def _to_depth(image: np.ndarray, encoding: str, where: str) -> Tuple[np.ndarray, np.ndarray, str]:
    if encoding not in _DEPTH_ENCODINGS:
        raise BagError(where, f'depth topic has encoding {encoding!r}; expected 16UC1, mono16 '
                              'or 32FC1')
    unit = _DEPTH_ENCODINGS[encoding][1]
    depth = image.astype(np.float32)
    valid = valid_mask(depth)
    depth[~valid] = 0.0
    return depth, valid, unit


def _to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == 'mono8':
        return np.repeat(image[..., None], 3, axis=2)
    if encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(image[..., 2::-1])
    return np.ascontiguousarray(image[..., :3])


def _stamp(raw: bytes, log_time_ns: int) -> float:
    """Header stamp of a CDR message whose first field is std_msgs/Header, without decoding."""
    if len(raw) >= 12:
        order = '<' if raw[1] == 1 else '>'
        sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
        if sec or nanosec:
            return sec + nanosec * 1e-9
    return log_time_ns * 1e-9


# ---------------------------------------------------------------------------- reading
def _norm_topic(topic: str) -> str:
    return '/' + topic.strip('/')


def bag_topics(path: Path) -> Dict[str, Tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of a bag (raises :class:`BagError` if unreadable)."""
    reader = _open(path)
    with reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def _open(path: Path) -> Any:
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
    wanted = _norm_topic(topic)
    found = [c for c in reader.connections if _norm_topic(c.topic) == wanted]
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
    reader = _open(path)
    with reader:
        stats.topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        depth_conns = _connections(reader, depth_topic, (IMAGE, COMPRESSED), path, 'depth')
        rgb_conns = (_connections(reader, rgb_topic, (IMAGE, COMPRESSED), path, 'rgb')
                     if rgb_topic else [])
        info_conns = (_connections(reader, camera_info_topic, (CAMERA_INFO,), path,
                                   'camera_info') if camera_info_topic else [])
        infos = []
        # An empty connection list means *all* topics to rosbags: only ask when there are some.
        for conn, log_time, raw in (_messages(reader, info_conns, path)
                                    if info_conns else ()):
            msg = reader.deserialize(raw, conn.msgtype)
            infos.append((_stamp(raw, log_time), msg))
            stats.info_frames += 1
        infos.sort(key=lambda item: item[0])
        depth_ids = {id(c) for c in depth_conns}
        pairer = _Pairer(tolerance, stats, bool(rgb_conns))
        context = _DecodeContext(path, reader, infos, stats, depth_topic, rgb_topic)
        produced = 0
        for conn, log_time, raw in _messages(reader, depth_conns + rgb_conns, path):
            item = (_stamp(raw, log_time), conn.msgtype, raw)
            if id(conn) in depth_ids:
                stats.depth_frames += 1
                ready = pairer.add_depth(item)
            else:
                stats.rgb_frames += 1
                ready = pairer.add_rgb(item)
            for depth_item, rgb_item in ready:
                sample = context.try_sample(depth_item, rgb_item)
                if sample is None:
                    continue
                if decode:
                    yield sample
                produced += 1
                if max_frames is not None and produced >= max_frames:
                    _log_stats(path, stats)
                    return
        listed = sum(c.msgcount for c in depth_conns)
        if stats.depth_frames < listed:
            raise BagError(path, f'its index lists {listed} messages on {depth_topic!r} but '
                                 f'only {stats.depth_frames} could be read (corrupt chunks?)')
        for depth_item, rgb_item in pairer.finish():
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


def _messages(reader: Any, connections: list, path: Path) -> Iterator[tuple]:
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


class _Pairer:
    """Nearest-stamp pairing of two streams in bag order, with a bounded look-ahead."""

    def __init__(self, tolerance: float, stats: BagStats, with_rgb: bool) -> None:
        self.tolerance = float(tolerance)
        self.stats = stats
        self.with_rgb = with_rgb
        self.pending: Deque[tuple] = collections.deque()
        self.rgb: Deque[list] = collections.deque()  # [stamp, msgtype, raw, used]
        self.latest_rgb = -np.inf

    def add_depth(self, item: tuple) -> List[tuple]:
        if not self.with_rgb:
            self.stats.pairs += 1
            return [(item, None)]
        self.pending.append(item)
        return self._resolve(final=False)

    def add_rgb(self, item: tuple) -> List[tuple]:
        self.rgb.append([item[0], item[1], item[2], False])
        self.latest_rgb = max(self.latest_rgb, item[0])
        return self._resolve(final=False)

    def finish(self) -> List[tuple]:
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


class _DecodeContext:
    """Turns a paired (depth, rgb) of raw CDR messages into an :class:`RGBDSample`."""

    def __init__(self, path: Path, reader: Any, infos: list, stats: BagStats,
                 depth_topic: str, rgb_topic: Optional[str] = None) -> None:
        self.topics = {'depth': _norm_topic(depth_topic),
                       'rgb': _norm_topic(rgb_topic) if rgb_topic else None}
        self._failed_role = 'depth'  # which message sample() was decoding
        self.path = path
        self.reader = reader
        self.infos = infos
        self.stats = stats
        self.prefix = f'{path.name}{_norm_topic(depth_topic).replace("/", "_")}'
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
        if where == 'depth' and msgtype == IMAGE and str(msg.encoding) not in _DEPTH_ENCODINGS:
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
        depth, valid, unit = _to_depth(image, encoding, f'{self.path} (depth)')
        rgb = None
        if rgb_item is not None:
            self._failed_role = 'rgb'
            colour, colour_encoding = self._decode(rgb_item, 'rgb')
            if colour_encoding not in _COLOUR_CHANNELS:
                raise BagError(self.path, f'rgb topic has encoding {colour_encoding!r}')
            rgb = _to_rgb(colour, colour_encoding)
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


# ---------------------------------------------------------------------------- writing
def write_bag(path: Path, frames: Sequence[BagFrame], storage: str = 'sqlite3',
              rate: float = 10.0, compressed_rgb: bool = False, start: float = 1.7e9,
              frame_id: str = 'camera_depth_optical_frame', version: int = 8, *,
              depth_topic: str = DEPTH_TOPIC, rgb_topic: str = RGB_TOPIC,
              info_topic: str = INFO_TOPIC) -> Dict[str, int]:
    """Write frames to a new rosbag2 (``storage`` sqlite3 or mcap); return messages per topic.

    Depth goes to ``depth_topic`` (default :data:`DEPTH_TOPIC`), RGB (``rgb8`` Image, or JPEG
    CompressedImage on ``<rgb_topic>/compressed``) and CameraInfo (``info_topic``, when a frame
    has intrinsics) share its stamp.
    Frames without a stamp get ``start + i / rate``. Bag format ``version`` 8 is what rosbags
    writes; ROS 2 Humble needs ``ros2 bag reindex`` before it replays such a bag.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    plugins = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f'storage must be one of {sorted(plugins)}, got {storage!r}')
    if rate <= 0:
        raise ValueError(f'rate must be positive, got {rate}')
    path = Path(path)
    if path.exists():
        raise FileExistsError(f'{path} exists; rosbag2 writers never overwrite')
    store = typestore()
    types = store.types
    counts = {depth_topic: 0}
    writer = Writer(path, version=version, storage_plugin=plugins[storage])
    with writer:
        depth_conn = writer.add_connection(depth_topic, IMAGE, typestore=store)
        rgb_conn = info_conn = None
        rgb_topic = rgb_topic + '/compressed' if compressed_rgb else rgb_topic
        if any(f.rgb is not None for f in frames):
            rgb_conn = writer.add_connection(rgb_topic, COMPRESSED if compressed_rgb else IMAGE,
                                             typestore=store)
            counts[rgb_topic] = 0
        if any(f.intrinsics is not None for f in frames):
            info_conn = writer.add_connection(info_topic, CAMERA_INFO, typestore=store)
            counts[info_topic] = 0
        for index, frame in enumerate(frames):
            stamp = frame.stamp if frame.stamp is not None else start + index / rate
            header, time_ns = _header(types, stamp, frame_id)
            if frame.depth is not None:
                height, width = frame.depth.shape
                # Any float depth is metres: 32FC1 holds it as float32 (uint16 stays mm).
                depth = (frame.depth.astype(np.float32) if frame.depth.dtype.kind == 'f'
                         else frame.depth)
                encoding, step, data = encode_depth(depth)
                msg = types[IMAGE](header=header, height=height, width=width,
                                   encoding=encoding, is_bigendian=0, step=step,
                                   data=np.frombuffer(data, np.uint8))
                writer.write(depth_conn, time_ns, store.serialize_cdr(msg, IMAGE))
                counts[depth_topic] += 1
            if frame.rgb is not None and rgb_conn is not None:
                rgb_header, rgb_ns = header, time_ns
                if frame.rgb_stamp is not None:
                    rgb_header, rgb_ns = _header(types, frame.rgb_stamp, frame_id)
                rgb = np.ascontiguousarray(frame.rgb, np.uint8)
                if compressed_rgb:
                    ok, jpeg = cv2.imencode('.jpg', rgb[:, :, ::-1],
                                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                    if not ok:
                        raise ValueError(f'frame {index}: JPEG encoding failed')
                    msg = types[COMPRESSED](header=rgb_header,
                                            format='rgb8; jpeg compressed bgr8',
                                            data=jpeg.reshape(-1))
                    writer.write(rgb_conn, rgb_ns, store.serialize_cdr(msg, COMPRESSED))
                else:
                    msg = types[IMAGE](header=rgb_header, height=rgb.shape[0],
                                       width=rgb.shape[1], encoding='rgb8', is_bigendian=0,
                                       step=rgb.shape[1] * 3,
                                       data=np.frombuffer(rgb.tobytes(), np.uint8))
                    writer.write(rgb_conn, rgb_ns, store.serialize_cdr(msg, IMAGE))
                counts[rgb_topic] += 1
            if (frame.intrinsics is not None and info_conn is not None
                    and frame.depth is not None):
                writer.write(info_conn, time_ns,
                             store.serialize_cdr(_camera_info(types, header, frame), CAMERA_INFO))
                counts[info_topic] += 1
    if storage == 'mcap':
        add_chunk_crcs(path / f'{path.name}.mcap')  # rosbags leaves them 0 ("not set")
    return counts


def _header(types: Any, stamp: float, frame_id: str) -> Tuple[Any, int]:
    """A std_msgs/Header for ``stamp`` seconds and the same time in integer nanoseconds."""
    sec = int(np.floor(stamp))
    nanosec = int(round((stamp - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)
    return header, sec * 1_000_000_000 + nanosec


def _camera_info(types: Any, header: Any, frame: BagFrame) -> Any:
    k = np.asarray(frame.intrinsics, dtype=np.float64).reshape(3, 3)
    p = np.zeros((3, 4))
    p[:, :3] = k
    height, width = frame.depth.shape
    roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                    do_rectify=False)
    return types[CAMERA_INFO](header=header, height=height, width=width,
                              distortion_model='plumb_bob', d=np.zeros(5),
                              k=k.reshape(-1), r=np.eye(3).reshape(-1), p=p.reshape(-1),
                              binning_x=0, binning_y=0, roi=roi)
