"""Writing depth (+ RGB, + CameraInfo) frames to a new rosbag2 (sqlite3 or mcap).

Through the pure-Python ``rosbags`` library, no ROS installation needed: the test bags, and
``python -m training.make_bag`` that turns image folders into bags. What it writes reads back
through :mod:`training.data.rosbag_io` frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from dsr_ros.depth_io import encode_depth
from training.data.bag_messages import CAMERA_INFO, COMPRESSED, IMAGE, typestore
from training.data.mcap_crc import add_chunk_crcs

__all__ = ['BagFrame', 'DEPTH_TOPIC', 'INFO_TOPIC', 'RGB_TOPIC', 'write_bag']

#: Topic names written by :func:`write_bag` (the relative driver names under a root namespace).
DEPTH_TOPIC = '/depth/image_raw'
RGB_TOPIC = '/color/image_raw'
INFO_TOPIC = '/depth/camera_info'


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
