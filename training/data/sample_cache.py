"""Procedural samples rendered once and read back memory-mapped: thousands of rooms in bounded RAM.

A synthetic room at the fair configs' size (288 x 384, RGB) takes ~150 ms to render and 0.9 MB
to hold; 2,000 of them are 5 minutes and 1.8 GB per process. With ``cache`` a source renders
each sample once into ``<cache>/<kind>_<digest of its parameters>/`` (``.npy`` files written
atomically) and every later run maps them read-only (``np.load(mmap_mode='r')``): the pages
live in the OS page cache, shared by every process and data-loader worker, and are evicted under
pressure instead of counting against the run. The digest covers every parameter that changes a
sample, so a cache never serves another source's rooms.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np

from training.data.sample import RGBDSample

__all__ = ['CACHE_ENV', 'cache_folder', 'cached_samples']

#: Environment variable overriding the default cache root (``cache: true``).
CACHE_ENV = 'DSR_SAMPLE_CACHE'
_ARRAYS = ('depth', 'valid', 'rgb')


def cache_folder(cache: Union[bool, str, os.PathLike], kind: str,
                 params: Dict[str, Any]) -> Path:
    """The folder of one parameter set: ``cache`` (a path, or True for the default root)."""
    if cache is True:
        root = Path(os.environ.get(CACHE_ENV) or Path(os.environ.get(
            'XDG_CACHE_HOME', Path.home() / '.cache')) / 'dsr_ros' / 'samples')
    else:
        root = Path(cache).expanduser()
    key = json.dumps(params, sort_keys=True)
    return root / f'{kind}_{hashlib.sha256(key.encode()).hexdigest()[:16]}'


def cached_samples(folder: Path, names: List[str], unit: str, source: str,
                   rendered: Iterable[RGBDSample]) -> List[RGBDSample]:
    """The samples ``names`` from ``folder``, after rendering the missing ones into it.

    ``rendered`` is a lazy stream of every sample in order (a generator draws sample ``i``
    after samples ``0 .. i-1``); it is consumed only when a file is missing, one sample at a
    time, so the first run holds one rendered sample in memory, not thousands.
    """
    if not all(_complete(folder, name) for name in names):
        folder.mkdir(parents=True, exist_ok=True)
        for sample in rendered:
            if not _complete(folder, sample.name):
                _write(folder, sample)
    return [_read(folder, name, unit, source) for name in names]


def _complete(folder: Path, name: str) -> bool:
    # valid.npy is written last: its presence means the sample's other files are whole.
    return (folder / f'{name}.valid.npy').is_file()


def _write(folder: Path, sample: RGBDSample) -> None:
    arrays = {'depth': sample.depth, 'rgb': sample.rgb, 'valid': sample.valid}
    for key in ('depth', 'rgb', 'valid'):
        if arrays[key] is None:
            continue
        final = folder / f'{sample.name}.{key}.npy'
        partial = final.with_name(f'{final.name}.{os.getpid()}.tmp')
        with open(partial, 'wb') as handle:
            np.save(handle, np.ascontiguousarray(arrays[key]))
        os.replace(partial, final)


def _read(folder: Path, name: str, unit: str, source: str) -> RGBDSample:
    arrays: Dict[str, Optional[np.ndarray]] = {}
    for key in _ARRAYS:
        path = folder / f'{name}.{key}.npy'
        arrays[key] = np.load(path, mmap_mode='r') if path.is_file() else None
    return RGBDSample(name, arrays['depth'], arrays['valid'], unit, rgb=arrays['rgb'],
                      source=f'{source} (cached in {folder})')
