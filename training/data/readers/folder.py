"""A generic folder of RGB-D frames (a camera recording exported to files, Open3D's test data)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from dsr_ros.depth_io import valid_mask
from training.data.errors import DataError
from training.data.readers.entries import Entry
from training.data.readers.files import (natural_key, read_depth_array, read_image, read_rgb,
                                         require_dir)
from training.data.sample import RGBDSample

__all__ = ['list_folder']

LOGGER = logging.getLogger(__name__)

_DEPTH_SUFFIXES = ('.png', '.npy', '.tif', '.tiff')
_RGB_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm')
_INTRINSICS_FILES = ('intrinsics.json', 'camera_info.json', 'camera.json',
                     'camera_primesense.json')


def list_folder(root: Path, depth_dir: str = 'depth', rgb_dir: Optional[str] = None,
                png_units_per_metre: float = 1000.0, with_rgb: bool = True,
                intrinsics: Optional[Sequence[float]] = None) -> List[Entry]:
    """A generic folder of RGB-D frames, e.g. a recording exported from a camera.

    Layout::

        <root>/depth/<stem>.png     16-bit PNG, millimetres (0 = invalid)  -> unit 'millimetre'
        <root>/depth/<stem>.npy     float metres (also .tif/.tiff; NaN/<=0 invalid) -> 'metre'
        <root>/rgb|color|image/<stem>.png|jpg   optional, matched to the depth by file stem
        <root>/intrinsics.json      optional: {"K": [9 row-major]} or {"fx","fy","cx","cy"}
                                    or Open3D's {"intrinsic_matrix": [9 column-major]}
                                    (camera_info.json, camera.json, camera_primesense.json too)

    The Open3D RGB-D test data (color/ + depth/ + camera_primesense.json) is this layout. A
    folder without a ``depth/`` subfolder is read as depth files only. PNGs whose scale is not
    millimetres (TUM: 5000 per metre) are converted to metres with ``png_units_per_metre``.
    Samples are named ``<folder>/<stem>``.
    """
    require_dir(root)
    depth_root = root / depth_dir if (root / depth_dir).is_dir() else root
    depth_files = sorted((p for p in depth_root.iterdir()
                          if p.suffix.lower() in _DEPTH_SUFFIXES and p.is_file()),
                         key=natural_key)
    if not depth_files:
        raise DataError(depth_root, f'no depth files ({", ".join(_DEPTH_SUFFIXES)})')
    rgb_root = None
    if with_rgb and depth_root != root:
        candidates = [rgb_dir] if rgb_dir else ['rgb', 'color', 'colour', 'image', 'images']
        rgb_root = next((root / c for c in candidates if (root / c).is_dir()), None)
        if rgb_dir and rgb_root is None:
            raise DataError(root / rgb_dir, 'folder does not exist')
    rgb_by_stem = {}
    if rgb_root is not None:
        rgb_by_stem = {p.stem: p for p in sorted(rgb_root.iterdir())
                       if p.suffix.lower() in _RGB_SUFFIXES}
    k = (np.asarray(intrinsics, dtype=np.float64).reshape(3, 3) if intrinsics is not None
         else _folder_intrinsics(root))
    entries = []
    for path in depth_files:
        name = f'{root.name}/{path.stem}'
        entries.append(_folder_entry(name, path, rgb_by_stem.get(path.stem),
                                     float(png_units_per_metre), k))
    return entries


def _folder_intrinsics(root: Path) -> Optional[np.ndarray]:
    for file_name in _INTRINSICS_FILES:
        path = root / file_name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            if 'K' in data:
                return np.asarray(data['K'], dtype=np.float64).reshape(3, 3)
            if 'intrinsic_matrix' in data:  # Open3D: column-major
                return np.asarray(data['intrinsic_matrix'], dtype=np.float64).reshape(3, 3).T
            return np.array([[data['fx'], 0, data['cx']], [0, data['fy'], data['cy']],
                             [0, 0, 1]], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(path, f'cannot read intrinsics ({type(error).__name__}: {error}); '
                                  'expected K, intrinsic_matrix or fx/fy/cx/cy') from error
    return None


def _folder_entry(name: str, path: Path, rgb_path: Optional[Path], units_per_metre: float,
                  k: Optional[np.ndarray]) -> Entry:
    def load() -> RGBDSample:
        if path.suffix.lower() == '.png':
            raw = read_image(path, cv2.IMREAD_UNCHANGED)
            if raw.ndim != 2 or raw.dtype != np.uint16:
                raise DataError(path, f'a depth PNG must be 16-bit single-channel, got '
                                      f'{raw.dtype} {raw.shape}')
            depth = raw.astype(np.float32)
            unit = 'millimetre'
            if units_per_metre != 1000.0:
                depth, unit = depth / np.float32(units_per_metre), 'metre'
        else:
            depth, unit = read_depth_array(path), 'metre'
        valid = valid_mask(depth)
        depth = np.where(valid, depth, np.float32(0))
        rgb = None
        if rgb_path is not None:
            rgb = read_rgb(rgb_path)
            if rgb.shape[:2] != depth.shape:
                LOGGER.info('%s: RGB %s resized to the depth size %s (INTER_AREA)', name,
                            rgb.shape[:2], depth.shape)
                rgb = cv2.resize(rgb, (depth.shape[1], depth.shape[0]),
                                 interpolation=cv2.INTER_AREA)
        return RGBDSample(name, depth, valid, unit, rgb=rgb, intrinsics=k, source=str(path))
    return Entry(name, load)
