"""The ``sensor_msgs`` of a rosbag2 recording: their type names and how they decode.

Decoding follows REP 118 / the ROS image encodings: ``16UC1`` and ``mono16`` depth are
millimetres with 0 = invalid, ``32FC1`` depth is metres with NaN/inf/<= 0 = invalid; ``step`` and
``is_bigendian`` are honoured; colour may be ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8``
or a ``sensor_msgs/CompressedImage`` (any format ``cv2.imdecode`` reads). ``compressedDepth``
PNG depth (image_transport's plugin, 16UC1 only) is accepted too. The rows of an Image are
decoded by :func:`dsr_ros.depth_io.decode_pixels`, the node's own decoder; a recording is
forgiven only a last row without its padding and rows not aligned to the pixel size.
"""

from __future__ import annotations

import struct
from typing import Any, Tuple

import cv2
import numpy as np

from dsr_ros.depth_io import ENCODING_DTYPES, FrameError, decode_pixels, valid_mask
from training.data.errors import DataError

__all__ = ['BagError', 'CAMERA_INFO', 'COLOUR_CHANNELS', 'COMPRESSED', 'DEPTH_ENCODINGS',
           'IMAGE', 'decode_compressed', 'decode_image', 'header_stamp', 'to_depth', 'to_rgb',
           'typestore']

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
#: The encodings a depth topic may have (REP 118 / image_encodings).
DEPTH_ENCODINGS = tuple(sorted(ENCODING_DTYPES))
#: Colour encodings and their channels.
COLOUR_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


class BagError(DataError):
    """A bag that cannot be used as asked (missing topic, wrong type, undecodable message)."""


def typestore() -> Any:
    """The ROS 2 Humble message definitions (sensor_msgs is unchanged through Kilted)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_HUMBLE)


def decode_image(msg: Any, where: str = 'message') -> Tuple[np.ndarray, str]:
    """A ``sensor_msgs/Image`` as a numpy array and its encoding (rows trimmed to ``width``)."""
    encoding = str(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if encoding in ENCODING_DTYPES:
        dtype, channels = ENCODING_DTYPES[encoding], 1
    elif encoding in COLOUR_CHANNELS:
        dtype, channels = np.dtype('u1'), COLOUR_CHANNELS[encoding]
    else:
        raise BagError(where, f'unsupported image encoding {encoding!r}; expected one of '
                              f'{sorted(ENCODING_DTYPES) + sorted(COLOUR_CHANNELS)}')
    row_bytes = width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    needed = step * (height - 1) + row_bytes
    if height == 0 or width == 0 or step < row_bytes or data.size < needed:
        raise BagError(where, f'{encoding} image {width}x{height} with step {step} does not fit '
                              f'its {data.size} data bytes')
    if data.size < step * height:  # a last row without padding
        data = np.concatenate([data, np.zeros(step * height - data.size, np.uint8)])
    data = data[:step * height]
    if step % dtype.itemsize:  # the node refuses such rows; a recording is read as it is
        data = np.ascontiguousarray(data.reshape(height, step)[:, :row_bytes]).reshape(-1)
        step = row_bytes
    try:
        image = decode_pixels(encoding, dtype, channels, height, width, step,
                              bool(msg.is_bigendian), data)
    except FrameError as error:
        raise BagError(where, str(error)) from None
    # a sample owns its pixels, never a view of the message's buffer
    return (image.copy() if np.may_share_memory(image, data) else image), encoding


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


def to_depth(image: np.ndarray, encoding: str, where: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """Float depth with 0 at holes, its validity and its unit (``millimetre`` or ``metre``)."""
    if encoding not in ENCODING_DTYPES:
        raise BagError(where, f'depth topic has encoding {encoding!r}; expected 16UC1, mono16 '
                              'or 32FC1')
    unit = 'metre' if ENCODING_DTYPES[encoding].kind == 'f' else 'millimetre'
    depth = image.astype(np.float32)
    valid = valid_mask(depth)
    depth[~valid] = 0.0
    return depth, valid, unit


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """RGB uint8 of a decoded colour image (grey repeated, BGR reversed, alpha dropped)."""
    if encoding == 'mono8':
        return np.repeat(image[..., None], 3, axis=2)
    if encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(image[..., 2::-1])
    return np.ascontiguousarray(image[..., :3])


def header_stamp(raw: bytes, log_time_ns: int) -> float:
    """Header stamp of a CDR message whose first field is std_msgs/Header, without decoding.

    A zero stamp (drivers that never set it) falls back to the bag's log time.
    """
    if len(raw) >= 12:
        order = '<' if raw[1] == 1 else '>'
        sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
        if sec or nanosec:
            return sec + nanosec * 1e-9
    return log_time_ns * 1e-9
