"""Benchmark frames: the paper protocol's scenes and the real-sensor suite's metric frames.

Paper protocol (:func:`read_scenes`): the data set's own samples, read scene by scene so that
one unreadable file costs one scene, reported by name (cached per process for the training
loop, :func:`cached_scenes`).

Sensor suite (:func:`load_frames`; metric ground truth, never trained on by the sensor configs):

* ``middlebury``: Middlebury 2005 GT (6 scenes, centre 480 x 640), disparity -> metres with
  ``z = fB / (d + d_off)``, fB = 3740 px x 0.16 m, d_off = 200 px (about Middlebury 2005's
  full-size camera: 1.3-2.7 m);
* ``nyuv2``: the three NYUv2 test samples (metres);
* ``lu``: the Lu RGB-D 6 set (8-bit relative depth, mapped to 0.5-4.5 m);
* ``ferstl``: Middlebury 2005 with the noisy LR inputs of Ferstl et al. (their own degradation,
  one family of its own);
* ``real``: real PrimeSense frames (Open3D's 5-frame sequence, 16UC1 mm) and single TUM and
  SUN3D Kinect frames, decimated and compared with the original frames.

**Validation split** (``split='val'``): frames the shipped sensor models were selected on but
never trained on: ``lu_val`` (the three held-out Lu Middlebury views of the sensor configs'
``data.val``, 8-bit disparity mapped like ``lu``), ``rooms_val`` (the eight procedural rooms of
``data.val``, rendered at 480 x 640) and, as ``real``, the raw NYUv2 Kinect frame of Open3D's
test data (11-bit disparity, byte-swapped; ``z = 351.3 / (1092.5 - raw)``, 2047 and
non-physical values invalid).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from dsr_ros.depth_io import valid_mask
from training.data.readers import DataError, list_samples, load_samples
from training.data.sample import RGBDSample

__all__ = ['Frame', 'LU_VAL_NAMES', 'SPLITS', 'cached_scenes', 'centre_crop', 'load_frames',
           'read_scenes']

LOGGER = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
MIDDLEBURY_FB = 3740.0 * 0.16
MIDDLEBURY_DOFF = 200.0
#: The data sets of each split (see the module docstring).
SPLITS: Dict[str, Tuple[str, ...]] = {
    'test': ('middlebury', 'nyuv2', 'lu', 'ferstl', 'real'),
    'val': ('lu_val', 'rooms_val', 'real_val')}
#: The held-out Lu views of the sensor configs' ``data.val`` (training/configs/sensor_*.yaml).
LU_VAL_NAMES = ('Middlebury_05', 'Middlebury_12', 'Middlebury_22')


# ---------------------------------------------------------------------------- paper protocol
def read_scenes(dataset: str, data_root: Optional[PathLike],
                names: Optional[Sequence[str]]) -> Tuple[List[RGBDSample], Dict[str, str]]:
    """Read scene by scene so that one unreadable file costs one scene, reported by name."""
    spec: Dict[str, Any] = {'type': dataset}
    if data_root is not None:
        spec['root'] = os.fspath(data_root)
    if names:
        spec['names'] = list(names)
    samples, errors = [], {}
    for name in list_samples(spec):
        try:
            samples.extend(load_samples(dict(spec, names=[name])))
        except DataError as error:
            errors[name] = str(error)
            LOGGER.error('scene %s cannot be read: %s', name, error)
    return samples, errors


_SCENE_CACHE: Dict[Tuple[str, str, Tuple[str, ...]], Tuple[List[RGBDSample], Dict]] = {}


def cached_scenes(dataset: str, data_root: Optional[PathLike],
                  names: Optional[Sequence[str]]) -> Tuple[List[RGBDSample], Dict[str, str]]:
    """:func:`read_scenes`, read once per process (the training loop evaluates every few
    epochs)."""
    key = (dataset, os.fspath(data_root) if data_root else '', tuple(names or ()))
    if key not in _SCENE_CACHE:
        _SCENE_CACHE[key] = read_scenes(dataset, data_root, names)
    return _SCENE_CACHE[key]


# ---------------------------------------------------------------------------- sensor suite
@dataclass
class Frame:
    """One metric ground-truth frame (float32 m, NaN = invalid)."""

    dataset: str
    name: str
    depth: np.ndarray
    lr_given: Optional[Dict[int, np.ndarray]] = None
    sequence: Optional[str] = None


def centre_crop(depth: np.ndarray, size: int, width: Optional[int] = None) -> np.ndarray:
    """The centre ``size`` x ``width`` (square when ``width`` is None) of a frame."""
    width = size if width is None else width
    rows, cols = depth.shape
    top, left = max(0, (rows - size) // 2), max(0, (cols - width) // 2)
    return depth[top:top + size, left:left + width]


def load_frames(data_root: Path, datasets: Optional[Sequence[str]] = None,
                quick: bool = False, split: str = 'test') -> Tuple[List[Frame], Dict[str, str]]:
    """Read every data set of ``split`` that exists under ``data_root``; say why others don't."""
    if split not in SPLITS:
        raise ValueError(f'unknown sensor-suite split {split!r}; known: {sorted(SPLITS)}')
    wanted = datasets or SPLITS[split]
    frames: List[Frame] = []
    missing: Dict[str, str] = {}
    readers: Dict[str, Callable[[], List[Frame]]] = {
        'middlebury': lambda: [
            Frame('middlebury', s.name, _disparity_to_metres(np.where(s.valid, s.depth, 0)))
            for s in load_samples({'type': 'middlebury2005',
                                   'root': data_root / 'middlebury2005_sun'})],
        'nyuv2': lambda: [
            Frame('nyuv2', s.name, _nan_invalid(s.depth, s.valid))
            for s in load_samples({'type': 'nyuv2', 'root': data_root / 'nyuv2_test_subset'})],
        'lu': lambda: [
            Frame('lu', s.name, _lu_metres(s))
            for s in load_samples({'type': 'lu_rgbd6', 'root': data_root / 'lu_rgbd6'})],
        'ferstl': lambda: [
            Frame('ferstl', s.name, _disparity_to_metres(np.where(s.valid, s.depth, 0)),
                  lr_given={k: _disparity_to_metres(v) for k, v in s.lr_inputs.items()})
            for s in load_samples({'type': 'ferstl_noisy',
                                   'root': data_root / 'middlebury2005_ferstl_noisy'})],
        'real': lambda: _real_frames(data_root / 'open3d_rgbd_testdata'),
        'lu_val': lambda: [
            Frame('lu_val', s.name, _lu_metres(s))
            for s in load_samples({'type': 'lu30', 'root': data_root / 'middlebury_lu30',
                                   'names': list(LU_VAL_NAMES)})],
        'rooms_val': _validation_rooms,
        'real_val': lambda: [_nyu_raw_frame(data_root / 'open3d_rgbd_testdata')],
    }
    for name in wanted:
        try:
            loaded = readers[name]()
        except (OSError, ValueError) as error:
            missing[name] = str(error)
            continue
        if quick:
            loaded = loaded[:2] if name == 'real' else loaded[:1]
        frames.extend(loaded)
    return frames, missing


def _disparity_to_metres(disparity: np.ndarray) -> np.ndarray:
    out = np.full(disparity.shape, np.nan, np.float32)
    valid = valid_mask(disparity)
    out[valid] = MIDDLEBURY_FB / (disparity[valid] + MIDDLEBURY_DOFF)
    return out


def _nan_invalid(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = depth.astype(np.float32).copy()
    out[~valid] = np.nan
    return out


def _real_frames(root: Path) -> List[Frame]:
    """Open3D's PrimeSense sequence (mm) and single TUM (1/5000 m) and SUN3D frames."""
    frames = []
    paths = sorted((root / 'depth').glob('*.png'))
    if not paths:
        raise OSError(f'no depth/*.png under {root}')
    for path in paths:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        frames.append(Frame('real', f'primesense_{path.stem}', _mm_to_metres(raw),
                            sequence='primesense'))
    other = root / 'other_formats'
    tum = cv2.imread(str(other / 'TUM_depth.png'), cv2.IMREAD_UNCHANGED)
    if tum is not None:
        frames.append(Frame('real', 'tum', _nan_invalid(tum / 5000.0, tum > 0)))
    sun = cv2.imread(str(other / 'SUN_depth.png'), cv2.IMREAD_UNCHANGED)
    if sun is not None:
        rotated = ((sun >> 3) | (sun << 13)) & 0xFFFF
        frames.append(Frame('real', 'sun3d', _nan_invalid(rotated / 1000.0,
                                                          (rotated > 0) & (rotated < 10000))))
    return frames


def _lu_metres(sample: Any) -> np.ndarray:
    """Lu's 8-bit relative depth mapped to 0.5-4.5 m (NaN = invalid)."""
    return _nan_invalid(0.5 + 4.0 * sample.depth / 255.0, sample.valid)


def _validation_rooms() -> List[Frame]:
    from training.data.synthetic import room_samples
    return [Frame('rooms_val', s.name, s.depth) for s in room_samples(8, 480, 640, seed=1)]


def _nyu_raw_frame(root: Path) -> Frame:
    """Open3D's raw NYUv2 Kinect frame (validation split's real frame), in metres."""
    path = root / 'other_formats' / 'NYU_depth.pgm'
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f'cannot read {path}')
    raw = raw.astype(np.uint16).byteswap().astype(np.float64)  # true 11-bit Kinect disparity
    with np.errstate(divide='ignore'):
        metres = 351.3 / (1092.5 - raw)
    valid = (raw < 2047) & (metres > 0.3) & (metres < 10.0)
    return Frame('real', 'nyu_raw', _nan_invalid(metres, valid))


def _mm_to_metres(raw: np.ndarray) -> np.ndarray:
    return _nan_invalid(raw.astype(np.float32) / 1000.0, raw > 0)
