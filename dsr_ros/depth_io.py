"""Depth image bytes <-> numpy and encoding conversion (numpy only; CameraInfo: camera_info).

The node receives ``sensor_msgs/Image`` messages from drivers we do not control, so every field
is checked before it is trusted: a frame that lies about its size must be refused with a reason
(:class:`FrameError`), never crash the node or allocate gigabytes. Functions here take the
message *fields*, not messages, so they work and are tested without ROS.

Conventions (REP 118): ``16UC1`` (and ``mono16``) is depth in millimetres with 0 for invalid;
``32FC1`` is metres with NaN for invalid.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ['DEFAULT_MAX_PIXELS', 'ENCODING_DTYPES', 'FrameError', 'OUTPUT_ENCODINGS',
           'convert_depth', 'decode_depth', 'decode_pixels', 'encode_depth', 'encoding_for',
           'to_metres']

#: Accepted input encodings and their little-endian item types.
ENCODING_DTYPES = {'16UC1': np.dtype('<u2'), 'mono16': np.dtype('<u2'),
                   '32FC1': np.dtype('<f4')}
#: Encodings the node can publish.
OUTPUT_ENCODINGS = ('16UC1', '32FC1')
#: Refuse frames above 8192 x 8192 pixels: no depth camera is that large, a corrupt header is.
DEFAULT_MAX_PIXELS = 8192 * 8192
#: Largest depth representable in 16UC1, in metres.
MAX_UINT16_METRES = 65.535


class FrameError(ValueError):
    """A frame (or its camera_info) that cannot be used; ``kind`` names the check that failed.

    Kinds: ``encoding``, ``zero_size``, ``too_large``, ``step_too_small``, ``step_alignment``,
    ``data_length``, ``camera_info``.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def decode_depth(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
                 data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Turn the fields of a depth ``sensor_msgs/Image`` into a 2-D native-order array.

    Returns ``uint16`` millimetres for ``16UC1``/``mono16`` and ``float32`` metres for
    ``32FC1``. Padded rows (``step > width * itemsize``) and big-endian data are honoured.
    Raises :class:`FrameError` naming the first inconsistency found.
    """
    dtype = ENCODING_DTYPES.get(encoding)
    if dtype is None:
        raise FrameError('encoding', f'unsupported encoding {encoding!r}, expected one of '
                                     f'{sorted(ENCODING_DTYPES)}')
    return decode_pixels(encoding, dtype, 1, height, width, step, is_bigendian, data,
                         max_pixels)


def decode_pixels(encoding: str, dtype: np.dtype, channels: int, height: int, width: int,
                  step: int, is_bigendian: bool, data: bytes,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The pixels of any ``sensor_msgs/Image`` whose channels share one item type.

    The one decoder of image rows: the node's depth (:func:`decode_depth`) and the colour and
    depth of recorded bags (``training.data.bag_messages``) both go through it, so a frame
    decodes the same wherever it is read. ``dtype`` is the little-endian item type; the result
    is native-order, ``(height, width)`` for one channel and ``(height, width, channels)``
    otherwise. Raises :class:`FrameError` naming the first inconsistency found.
    """
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise FrameError('zero_size', f'empty image {width}x{height}')
    if height * width > max_pixels:
        raise FrameError('too_large', f'image {width}x{height} exceeds the limit of '
                                      f'{max_pixels} pixels')
    itemsize = dtype.itemsize
    pixel_bytes = itemsize * channels
    if step < width * pixel_bytes:
        raise FrameError('step_too_small', f'step {step} is smaller than width {width} x '
                                           f'{pixel_bytes} bytes')
    if step % itemsize:
        raise FrameError('step_alignment', f'step {step} is not a multiple of the '
                                           f'{itemsize}-byte {encoding} pixel')
    if len(data) != step * height:
        raise FrameError('data_length', f'data has {len(data)} bytes, expected step {step} x '
                                        f'height {height} = {step * height}')
    if is_bigendian:
        dtype = dtype.newbyteorder('>')
    rows = np.frombuffer(data, dtype=dtype).reshape(height, step // itemsize)
    pixels = np.ascontiguousarray(rows[:, :width * channels], dtype=dtype.newbyteorder('='))
    return pixels if channels == 1 else pixels.reshape(height, width, channels)


def encoding_for(depth: np.ndarray) -> str:
    """The ROS encoding of a depth array: ``16UC1`` for uint16, ``32FC1`` for float32."""
    if depth.dtype == np.uint16:
        return '16UC1'
    if depth.dtype == np.float32:
        return '32FC1'
    raise ValueError(f'no depth encoding for dtype {depth.dtype}')


def encode_depth(depth: np.ndarray) -> Tuple[str, int, bytes]:
    """Return ``(encoding, step, data)`` for a little-endian, unpadded ``sensor_msgs/Image``.

    ``data`` is ``bytes`` on purpose: assigning a numpy array to ``msg.data`` is ~300x slower.
    """
    if depth.ndim != 2:
        raise ValueError(f'expected a 2-D depth image, got shape {depth.shape}')
    encoding = encoding_for(depth)
    little = depth.astype(ENCODING_DTYPES[encoding], copy=False)
    return encoding, int(depth.shape[1] * little.itemsize), np.ascontiguousarray(little).tobytes()


def valid_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels that carry a measurement: finite and strictly positive (the one definition).

    Integer depth (``16UC1`` mm) is valid where non-zero; float depth (``32FC1`` m, or any unit
    in training) where finite and > 0, so NaN, inf, 0 and negative values are holes.
    """
    if depth.dtype.kind in 'ui':
        return depth > 0
    with np.errstate(invalid='ignore'):
        return np.isfinite(depth) & (depth > 0)


def to_metres(depth: np.ndarray) -> np.ndarray:
    """Float32 metres with NaN for invalid, from either depth convention."""
    return convert_depth(depth, '32FC1')


def convert_depth(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Convert between ``16UC1`` mm (0 = invalid) and ``32FC1`` m (NaN = invalid).

    Depth that ``16UC1`` cannot hold (beyond 65.535 m, or non-positive) becomes 0, i.e. invalid,
    rather than a saturated and therefore wrong distance.
    """
    if encoding not in OUTPUT_ENCODINGS:
        raise ValueError(f'output encoding must be one of {OUTPUT_ENCODINGS}, got {encoding!r}')
    if encoding_for(depth) == encoding:
        return depth
    if encoding == '32FC1':
        metres = depth.astype(np.float32) / np.float32(1000.0)
        metres[depth == 0] = np.nan
        return metres
    with np.errstate(invalid='ignore'):
        valid = valid_mask(depth) & (depth <= MAX_UINT16_METRES)
    millimetres = np.zeros(depth.shape, np.uint16)
    millimetres[valid] = np.rint(depth[valid] * 1000.0).astype(np.uint16)
    return millimetres
