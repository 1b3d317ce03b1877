"""NYU Depth v2 test subset: float metres from a Kinect v1, with its registered RGB."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from dsr_ros.depth_io import valid_mask
from training.data.errors import DataError
from training.data.readers.entries import Entry
from training.data.readers.files import read_depth_array, require_dir, rgb_matching
from training.data.sample import RGBDSample

__all__ = ['list_nyuv2']


def list_nyuv2(root: Path, with_rgb: bool = True) -> List[Entry]:
    """nyuv2_test_subset: <i>/depth.npy (float32 metres) + <i>/rgb.jpg; names are the indices."""
    require_dir(root)
    entries = []
    for folder in sorted(p for p in root.iterdir() if (p / 'depth.npy').is_file()):
        entries.append(_npy_entry(folder.name, folder / 'depth.npy',
                                  folder / 'rgb.jpg' if with_rgb else None))
    if not entries:
        raise DataError(root, 'no <index>/depth.npy found')
    return entries


def _npy_entry(name: str, depth_path: Path, rgb_path: Optional[Path]) -> Entry:
    def load() -> RGBDSample:
        depth = read_depth_array(depth_path)
        rgb = rgb_matching(rgb_path, depth.shape, name) if rgb_path is not None else None
        return RGBDSample(name, depth, valid_mask(depth), 'metre', rgb=rgb,
                          source=str(depth_path))
    return Entry(name, load)
