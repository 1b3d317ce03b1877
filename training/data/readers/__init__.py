"""Readers for the RGB-D sources we train and evaluate on; all return :class:`RGBDSample`.

One entry point, :func:`load_samples`, takes a *spec* dictionary (as written in the training
configs) and dispatches on ``spec['type']`` through :data:`READERS`, one module per family of
data sets (:mod:`.middlebury`, :mod:`.msgnet`, :mod:`.lu`, :mod:`.nyu`, :mod:`.extra_rgbd`,
:mod:`.folder`, :mod:`.rosbag`; file decoding in :mod:`.files`). Every reader first lists its
samples by name, the ``names`` / ``max_samples`` filters are applied to that listing, and only
then are files read, so selecting three scenes of a large set reads three scenes. Every file
that cannot be decoded is reported as a :class:`DataError` naming the file, never as a bare
``None`` from OpenCV deep in a training step.

Spec keys common to every type:

- ``type``: one of :data:`READERS`.
- ``root``: folder of the data set; when absent, the set's usual folder under
  :func:`shared_data_root` (``DSR_SHARED_DATA`` or ``<repo>/../shared/data``).
- ``names``: keep only these sample names (an unknown name is an error, not an empty set).
- ``max_samples``: keep at most this many (after ``names``), in listing order.

Unknown keys are refused so that a typo in a config does not silently change the data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List

from tqdm import tqdm

from training.data.errors import DataError
from training.data.readers.entries import Entry
from training.data.readers.extra_rgbd import list_extra_rgbd
from training.data.readers.files import (read_depth_array, read_depth_png, read_image, read_mat,
                                         read_npz, read_rgb)
from training.data.readers.folder import list_folder
from training.data.readers.lu import LU30_TEST_INDICES, list_lu30, list_lu_rgbd6
from training.data.readers.middlebury import (MIDDLEBURY2005_SCENES, list_ferstl_noisy,
                                              list_middlebury2005, list_middlebury_thirdsize)
from training.data.readers.msgnet import (MSGNET_TEST_SCENE_MAPS, list_msgnet_mat,
                                          list_msgnet_testsets)
from training.data.readers.nyu import list_nyuv2
from training.data.readers.rosbag import list_rosbag
from training.data.sample import RGBDSample

__all__ = ['DataError', 'READERS', 'MIDDLEBURY2005_SCENES', 'LU30_TEST_INDICES',
           'MSGNET_TEST_SCENE_MAPS', 'load_samples', 'shared_data_root', 'read_image',
           'read_depth_png', 'read_depth_array', 'read_mat', 'read_npz', 'read_rgb',
           'list_samples']

LOGGER = logging.getLogger(__name__)

#: The spec ``type`` -> the function listing that data set's samples. A reader's keyword
#: arguments are the options its spec may carry (checked in :func:`_select`).
READERS: Dict[str, Callable[..., List[Entry]]] = {
    'middlebury2005': list_middlebury2005,
    'msgnet_mat': list_msgnet_mat,
    'lu30': list_lu30,
    'msgnet_testsets': list_msgnet_testsets,
    'middlebury_thirdsize': list_middlebury_thirdsize,
    'ferstl_noisy': list_ferstl_noisy,
    'nyuv2': list_nyuv2,
    'lu_rgbd6': list_lu_rgbd6,
    'extra_rgbd': list_extra_rgbd,
    'folder': list_folder,
    'rosbag': list_rosbag,
}

_SHARED_FOLDERS = {
    'middlebury2005': 'middlebury2005_sun',
    'msgnet_mat': 'msgnet_training_depth',
    'lu30': 'middlebury_lu30',
    'msgnet_testsets': 'msgnet_testsets',
    'middlebury_thirdsize': 'middlebury2005_thirdsize',
    'ferstl_noisy': 'middlebury2005_ferstl_noisy',
    'nyuv2': 'nyuv2_test_subset',
    'lu_rgbd6': 'lu_rgbd6',
    'extra_rgbd': 'extra_rgbd',
}
_COMMON_KEYS = {'type', 'root', 'path', 'names', 'max_samples'}
#: The repository root (this file is training/data/readers/__init__.py).
_REPO = Path(__file__).resolve().parents[3]


def shared_data_root() -> Path:
    """Where ../shared/data is: ``$DSR_SHARED_DATA`` or the folder next to the repository."""
    env = os.environ.get('DSR_SHARED_DATA')
    if env:
        return Path(env)
    return _REPO.parent / 'shared' / 'data'


def list_samples(spec: Dict[str, Any]) -> List[str]:
    """The sample names a spec selects, without reading any image."""
    return [entry.name for entry in _select(spec)]


def load_samples(spec: Dict[str, Any]) -> List[RGBDSample]:
    """Read the samples a spec describes (see the module docstring for the keys)."""
    entries = _select(spec)
    label = spec['type']
    iterator: Iterable[Entry] = entries
    if len(entries) > 3:
        iterator = tqdm(entries, desc=f'reading {label}', unit='sample', leave=False)
    samples = [entry.load() for entry in iterator]
    LOGGER.info('%s: %d samples (%s)', label, len(samples),
                ', '.join(s.name for s in samples[:8]) + (' ...' if len(samples) > 8 else ''))
    return samples


def _select(spec: Dict[str, Any]) -> List[Entry]:
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ValueError(f'a data spec must be a dict with a "type"; got {spec!r}')
    kind = spec['type']
    if kind not in READERS:
        raise ValueError(f'unknown data type {kind!r}; known: {sorted(READERS)}')
    reader = READERS[kind]
    options = {k: v for k, v in spec.items() if k not in _COMMON_KEYS}
    allowed = set(reader.__code__.co_varnames[1:reader.__code__.co_argcount])
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f'{kind}: unknown option(s) {unknown}; allowed: '
                         f'{sorted(allowed | _COMMON_KEYS)}')
    root = spec.get('root', spec.get('path'))  # 'path' reads better for one bag or file
    if root is None:
        if kind not in _SHARED_FOLDERS:
            raise ValueError(f'{kind}: "root" is required')
        root = shared_data_root() / _SHARED_FOLDERS[kind]
    entries = reader(Path(root).expanduser(), **options)
    names = spec.get('names')
    if names is not None:
        if isinstance(names, str):
            names = [names]
        by_name = {entry.name: entry for entry in entries}
        lowered = {entry.name.lower(): entry for entry in entries}
        missing = [n for n in names if n not in by_name and str(n).lower() not in lowered]
        if missing:
            raise ValueError(f'{kind}: no sample named {missing} under {root}; available: '
                             f'{sorted(by_name)}')
        entries = [by_name.get(n) or lowered[str(n).lower()] for n in names]
    max_samples = spec.get('max_samples')
    if max_samples is not None:
        entries = entries[:int(max_samples)]
    return entries
