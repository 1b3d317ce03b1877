"""What each topic of a rosbag2 carries (type, count, encoding, size, rate) and which to use.

A robot's bag holds a driver's topics (``/camera/depth/image_raw``, its ``camera_info``, colour,
IMU, ...) under names the user should not have to type: :func:`pick_topics` finds the depth,
camera_info and colour topics when the bag leaves one choice, and otherwise lists the
candidates with their encodings and sizes. One pass over the bag reads every message's log
time (the rate) and decodes only the first message of each image and camera_info topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from training.data.bag_messages import (CAMERA_INFO, COMPRESSED, DEPTH_ENCODINGS, IMAGE,
                                        BagError)
from training.data.rosbag_io import norm_topic, open_bag, read_messages

__all__ = ['TopicInfo', 'bag_digest', 'describe_topic', 'pick_topics', 'survey_bag']

#: Bags larger than this are identified by a digest of their metadata and file sizes rather
#: than the SHA-256 of every byte (hashing tens of GB would dominate a fine-tune).
FULL_HASH_LIMIT = 1 << 30


@dataclass
class TopicInfo:
    """One topic of a bag, as far as its first message tells."""

    topic: str
    msgtype: str
    count: int
    encoding: str = ''
    width: int = 0
    height: int = 0
    rate_hz: float = 0.0
    frame_id: str = ''
    #: camera_info topics: the first message's K (row-major), distortion model and binning.
    camera: Optional[Dict[str, Any]] = None

    @property
    def is_depth(self) -> bool:
        """An image topic in a depth encoding (or compressedDepth)."""
        return self.msgtype in (IMAGE, COMPRESSED) and self.encoding in DEPTH_ENCODINGS

    @property
    def is_colour(self) -> bool:
        """An image topic in a colour encoding (or a compressed colour stream)."""
        return self.msgtype in (IMAGE, COMPRESSED) and self.encoding in (
            'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'jpeg/png')

    def as_dict(self) -> Dict[str, Any]:
        """Plain data for provenance."""
        return {'topic': self.topic, 'msgtype': self.msgtype, 'count': self.count,
                'encoding': self.encoding, 'width': self.width, 'height': self.height,
                'rate_hz': round(self.rate_hz, 3), 'frame_id': self.frame_id,
                **({'camera_info': self.camera} if self.camera else {})}


def describe_topic(info: TopicInfo) -> str:
    """``/topic  type  encoding  WxH  rate  count`` for listings and errors."""
    size = f'{info.width}x{info.height}' if info.width else '-'
    return (f'{info.topic}  [{info.msgtype}]  {info.encoding or "-"}  {size}  '
            f'{info.rate_hz:.1f} Hz  {info.count} msgs')


def survey_bag(path: Path) -> Dict[str, TopicInfo]:
    """Every topic of the bag with its message type, count, rate and (images) encoding/size."""
    path = Path(path)
    reader = open_bag(path)
    found: Dict[str, TopicInfo] = {}
    times: Dict[str, List[int]] = {}
    with reader:
        for conn in reader.connections:
            found.setdefault(norm_topic(conn.topic), TopicInfo(norm_topic(conn.topic),
                                                               conn.msgtype, 0))
        for conn, log_time, raw in read_messages(reader, list(reader.connections), path):
            info = found[norm_topic(conn.topic)]
            info.count += 1
            stamps = times.setdefault(info.topic, [log_time, log_time])
            stamps[0], stamps[1] = min(stamps[0], log_time), max(stamps[1], log_time)
            if info.count == 1 and conn.msgtype in (IMAGE, COMPRESSED, CAMERA_INFO):
                _describe_first(info, reader.deserialize(raw, conn.msgtype))
    for topic, (first, last) in times.items():
        if found[topic].count > 1 and last > first:
            found[topic].rate_hz = (found[topic].count - 1) / ((last - first) * 1e-9)
    return found


def _describe_first(info: TopicInfo, msg: Any) -> None:
    info.frame_id = str(msg.header.frame_id)
    if info.msgtype == IMAGE:
        info.encoding, info.width, info.height = str(msg.encoding), int(msg.width), int(msg.height)
    elif info.msgtype == COMPRESSED:
        fmt = str(msg.format)
        info.encoding = '16UC1' if 'compresseddepth' in fmt.lower() else 'jpeg/png'
    else:
        info.width, info.height = int(msg.width), int(msg.height)
        info.camera = {'k': [float(v) for v in msg.k], 'distortion_model':
                       str(msg.distortion_model), 'd': [float(v) for v in msg.d],
                       'binning': [int(msg.binning_y), int(msg.binning_x)],
                       'roi': [int(msg.roi.y_offset), int(msg.roi.x_offset),
                               int(msg.roi.height), int(msg.roi.width)]}


def pick_topics(path: Path, topics: Dict[str, TopicInfo], depth: Optional[str] = None,
                info: Optional[str] = None, rgb: Optional[str] = None, want_rgb: bool = True
                ) -> Dict[str, Optional[str]]:
    """The depth, camera_info and colour topics to use: the ones named, else the only candidate.

    A named depth topic in a colour (or any non-depth) encoding is refused with the depth
    encodings only; several candidates are listed, never guessed between. camera_info defaults
    to the depth topic's sibling ``.../camera_info``; colour is optional (``rgb='none'`` turns it
    off) and only chosen when exactly one colour stream exists.
    """
    depths = [t for t in topics.values() if t.is_depth]
    if depth:
        chosen = topics.get(norm_topic(depth))
        if chosen is None:
            raise BagError(path, f'depth topic {depth!r} is not in the bag; depth topics: '
                                 f'{_listing(depths)}')
        if not chosen.is_depth:
            raise BagError(path, f'topic {chosen.topic!r} has encoding {chosen.encoding!r}, not '
                                 f'a depth encoding ({", ".join(sorted(DEPTH_ENCODINGS))}); '
                                 f'depth topics in this bag: {_listing(depths)}')
    elif len(depths) == 1:
        chosen = depths[0]
    else:
        raise BagError(path, ('no depth image topic (16UC1, mono16 or 32FC1)' if not depths else
                              f'{len(depths)} depth topics; pick one with --depth-topic')
                       + f': {_listing(depths or list(topics.values()))}')
    picked: Dict[str, Optional[str]] = {'depth': chosen.topic, 'info': None, 'rgb': None,
                                        'rgb_info': None}
    infos = [t for t in topics.values() if t.msgtype == CAMERA_INFO]
    if info:
        if norm_topic(info) not in topics or topics[norm_topic(info)].msgtype != CAMERA_INFO:
            raise BagError(path, f'camera_info topic {info!r} is not in the bag; camera_info '
                                 f'topics: {_listing(infos)}')
        picked['info'] = norm_topic(info)
    else:
        sibling = chosen.topic.rsplit('/', 1)[0] + '/camera_info'
        matches = [t for t in infos if t.topic == sibling] or (infos if len(infos) == 1 else [])
        picked['info'] = matches[0].topic if matches else None
    colours = [t for t in topics.values() if t.is_colour]
    if rgb and rgb.lower() != 'none':
        if norm_topic(rgb) not in topics or not topics[norm_topic(rgb)].is_colour:
            raise BagError(path, f'rgb topic {rgb!r} is not a colour image topic of the bag; '
                                 f'colour topics: {_listing(colours)}')
        picked['rgb'] = norm_topic(rgb)
    elif rgb is None and want_rgb and len(colours) == 1:
        picked['rgb'] = colours[0].topic
    elif rgb is None and want_rgb and len(colours) > 1:
        raise BagError(path, f'{len(colours)} colour topics; pick one with --rgb-topic (or '
                             f'--rgb-topic none): {_listing(colours)}')
    if picked['rgb']:
        base = picked['rgb'].removesuffix('/compressed').rsplit('/', 1)[0]
        sibling = [t.topic for t in infos if t.topic == base + '/camera_info']
        picked['rgb_info'] = sibling[0] if sibling else None
    return picked


def _listing(infos: Sequence[TopicInfo]) -> str:
    return '; '.join(describe_topic(t) for t in infos) or 'none'


def bag_digest(path: Path) -> Dict[str, Any]:
    """SHA-256 of every file of the bag folder (small bags), else of metadata and file sizes."""
    path = Path(path)
    files = sorted(p for p in (path.rglob('*') if path.is_dir() else [path]) if p.is_file())
    total = sum(p.stat().st_size for p in files)
    if total <= FULL_HASH_LIMIT:
        hashes = {}
        for file in files:
            digest = hashlib.sha256()
            with open(file, 'rb') as handle:
                for block in iter(lambda: handle.read(1 << 20), b''):
                    digest.update(block)
            hashes[file.relative_to(path).as_posix() if path.is_dir() else file.name] = \
                digest.hexdigest()
        return {'kind': 'sha256 of every file', 'bytes': total, 'files': hashes}
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(path).as_posix() if path.is_dir() else file.name
        digest.update(f'{name}|{file.stat().st_size}|'.encode())
        if file.name == 'metadata.yaml':
            digest.update(file.read_bytes())
    return {'kind': 'sha256 of metadata.yaml, file names and sizes', 'bytes': total,
            'metadata_digest': digest.hexdigest()}
