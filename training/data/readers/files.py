"""File helpers shared by every reader: decoding that raises :class:`DataError`, never None.

Each function checks what OpenCV, numpy or scipy would otherwise return silently (None, a
3-channel palette image, a 3-D array) and names the file and the reason when it is unusable.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from training.data.errors import DataError

__all__ = ['crop_rgb_to', 'natural_key', 'read_depth_array', 'read_depth_png', 'read_image',
           'read_mat', 'read_npz', 'read_rgb', 'require_dir', 'rgb_matching']

LOGGER = logging.getLogger(__name__)


def read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """``cv2.imread`` that raises :class:`DataError` instead of returning None."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as error:
        raise DataError(path, f'OpenCV could not decode it ({error})') from error
    if image is None or image.size == 0:
        raise DataError(path, 'not a readable image (corrupt or unsupported format)')
    return image


def read_rgb(path: Path) -> np.ndarray:
    """A colour image as uint8 RGB (H, W, 3) (OpenCV reads BGR; palettes/grey are expanded)."""
    image = read_image(path, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(image[:, :, ::-1])


def read_depth_png(path: Path) -> np.ndarray:
    """A single-channel 8- or 16-bit depth image as float32, values unchanged."""
    image = read_image(path, cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        # Palette BMPs and some PNGs decode to 3 identical channels.
        if not (np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 0], image[..., 2])):
            raise DataError(path, f'expected a single-channel depth image, got {image.shape}')
        image = image[..., 0]
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise DataError(path, f'unsupported depth dtype {image.dtype}')
    return image.astype(np.float32)


def read_depth_array(path: Path) -> np.ndarray:
    """A float depth map from .npy, .tif or .tiff, as float32 (any unit; values unchanged)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    if path.suffix.lower() == '.npy':
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as error:  # noqa: BLE001 - numpy raises several kinds
            raise DataError(path, f'not a readable .npy ({type(error).__name__}: {error})'
                            ) from error
    else:
        array = read_image(path, cv2.IMREAD_UNCHANGED)
    array = np.squeeze(np.asarray(array))
    if array.ndim != 2 or array.size == 0 or array.dtype.kind not in 'fui':
        raise DataError(path, f'expected a 2-D numeric depth map, got {array.dtype} '
                              f'{array.shape}')
    return array.astype(np.float32)


def read_mat(path: Path, key: str) -> np.ndarray:
    """One 2-D array of a MATLAB file (v5 via scipy; v7.3/HDF5 via h5py when installed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    with path.open('rb') as handle:
        head = handle.read(512)
    if head[:8] == b'\x89HDF\r\n\x1a\n' or b'MATLAB 7.3' in head[:128]:
        try:
            import h5py  # noqa: F401 - optional, only for v7.3 files
        except ImportError as error:
            raise DataError(path, 'MATLAB v7.3 (HDF5) file; install h5py to read it') from error
        with h5py.File(path, 'r') as mat:
            if key not in mat:
                raise DataError(path, f'no variable {key!r}; found {sorted(mat.keys())}')
            array = np.asarray(mat[key]).T  # HDF5 stores MATLAB arrays transposed
    else:
        import scipy.io
        try:
            mat = scipy.io.loadmat(str(path))
        except Exception as error:  # noqa: BLE001 - scipy raises many kinds for a bad file
            raise DataError(path, f'not a readable MATLAB file ({type(error).__name__}: '
                                  f'{error})') from error
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith('__'))
            raise DataError(path, f'no variable {key!r}; found {found}')
        array = np.asarray(mat[key])
    if array.ndim != 2 or array.size == 0:
        raise DataError(path, f'variable {key!r} is not a 2-D array (shape {array.shape})')
    return array


def read_npz(path: Path, key: str) -> np.ndarray:
    """One 2-D float array of a ``.npz`` file, as float32 (non-finite values kept)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise DataError(path, f'no array {key!r} (has {archive.files})')
            array = archive[key]
    except (OSError, ValueError) as error:
        raise DataError(path, f'not a readable .npz ({error})') from error
    if array.ndim != 2:
        raise DataError(path, f'array {key!r} is not 2-D (shape {array.shape})')
    return array.astype(np.float32)


def rgb_matching(path: Path, shape: tuple, name: str) -> np.ndarray:
    """The RGB image at ``path``, which must have the depth's ``shape`` (registered pairs)."""
    rgb = read_rgb(path)
    if rgb.shape[:2] != shape:
        raise DataError(path, f'RGB {rgb.shape[:2]} does not match the depth {shape} of {name}')
    return rgb


def crop_rgb_to(rgb: np.ndarray, shape: tuple, path: Path, name: str) -> np.ndarray:
    """Drop extra trailing rows/columns of an RGB image that is at most 1 px larger."""
    extra_rows, extra_cols = rgb.shape[0] - shape[0], rgb.shape[1] - shape[1]
    if not (0 <= extra_rows <= 1 and 0 <= extra_cols <= 1):
        raise DataError(path, f'RGB {rgb.shape[:2]} does not match the depth {shape} of {name}')
    if extra_rows or extra_cols:
        LOGGER.info('%s: RGB %s cropped to the depth size %s (bottom/right)', name,
                    rgb.shape[:2], shape)
    return np.ascontiguousarray(rgb[:shape[0], :shape[1]])


def require_dir(path: Path) -> None:
    """Refuse a data set folder that is missing, naming it (not an empty listing later)."""
    if not path.is_dir():
        raise DataError(path, 'folder does not exist')


def natural_key(path: Path) -> tuple:
    """Sort key that orders ``Df_9`` before ``Df_10`` (numbers compared as numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r'(\d+)', path.name))
