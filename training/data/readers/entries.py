"""Lazily read samples and the entry kinds several reader families share.

A reader lists :class:`Entry` objects (a name and a loader) so that the ``names`` and
``max_samples`` filters apply before any file is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dsr_ros.depth_io import valid_mask
from training.data.readers.files import (crop_rgb_to, read_depth_png, read_mat, read_rgb,
                                         rgb_matching)
from training.data.sample import RGBDSample

__all__ = ['Entry', 'mat_entry', 'png_pair_entry']


@dataclass
class Entry:
    """A sample known by name whose files are read only when ``load`` is called."""

    name: str
    load: Callable[[], RGBDSample]


def png_pair_entry(name: str, depth_path: Path, rgb_path: Optional[Path], unit: str,
                   zero_is_invalid: bool = True) -> Entry:
    """A depth PNG/BMP with an optional registered RGB image of the same size."""
    def load() -> RGBDSample:
        depth = read_depth_png(depth_path)
        rgb = rgb_matching(rgb_path, depth.shape, name) if rgb_path is not None else None
        # Not valid_mask when 0 is a value: per-image normalised depth (lu_rgbd6) maps its
        # nearest point to 0, which is a measurement there, not a hole.
        valid = valid_mask(depth) if zero_is_invalid else np.isfinite(depth)
        return RGBDSample(name, depth, valid, unit, rgb=rgb, source=str(depth_path))
    return Entry(name, load)


def mat_entry(path: Path, name: str, key: str, unit: str,
              rgb_path: Optional[Path] = None) -> Entry:
    """Variable ``key`` of a MATLAB file as depth, with an RGB image at most 1 px larger."""
    def load() -> RGBDSample:
        depth = read_mat(path, key).astype(np.float32)
        rgb = None
        if rgb_path is not None:
            rgb = crop_rgb_to(read_rgb(rgb_path), depth.shape, rgb_path, name)
        return RGBDSample(name, depth, valid_mask(depth), unit, rgb=rgb, source=str(path))
    return Entry(name, load)
