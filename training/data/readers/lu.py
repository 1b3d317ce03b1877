"""Lu et al.'s RGB-D sets: 30 Middlebury pairs (six are test scenes) and six RGBD pairs."""

from __future__ import annotations

from pathlib import Path
from typing import List

from training.data.readers.entries import Entry, png_pair_entry
from training.data.readers.files import require_dir

__all__ = ['LU30_TEST_INDICES', 'list_lu30', 'list_lu_rgbd6']

#: Indices of middlebury_lu30 that ARE the six test scenes (Art, Books, Dolls, Laundry, Moebius,
#: Reindeer; identified by correlation in that folder's SOURCE.md). Never train on them.
LU30_TEST_INDICES = ('02', '06', '14', '18', '21', '24')


def list_lu30(root: Path, exclude_test_scenes: bool = True) -> List[Entry]:
    """middlebury_lu30: Middlebury_NN/Middlebury_NN_output_{depth,color}.png, NN = 01..30.

    ``exclude_test_scenes`` (default) drops :data:`LU30_TEST_INDICES`, the six test scenes at
    third size: training on them would leak the Middlebury benchmark.
    """
    require_dir(root)
    entries = []
    for folder in sorted(root.glob('Middlebury_[0-9][0-9]')):
        index = folder.name.split('_')[1]
        if exclude_test_scenes and index in LU30_TEST_INDICES:
            continue
        entries.append(png_pair_entry(folder.name,
                                      folder / f'{folder.name}_output_depth.png',
                                      folder / f'{folder.name}_output_color.png',
                                      'disparity_8bit'))
    return entries


def list_lu_rgbd6(root: Path, with_rgb: bool = True) -> List[Entry]:
    """lu_rgbd6: RGBD_0k/RGBD_0k_output_depth.png + RGBD_0k_ouput_color.png (sic).

    The depth is 8-bit and normalised per image with no metric meaning: unit ``relative``.
    Its 0 is the per-image minimum, not a hole, so every pixel is valid.
    """
    require_dir(root)
    entries = []
    for folder in sorted(root.glob('RGBD_[0-9][0-9]')):
        entries.append(png_pair_entry(folder.name, folder / f'{folder.name}_output_depth.png',
                                      folder / f'{folder.name}_ouput_color.png'
                                      if with_rgb else None, 'relative',
                                      zero_is_invalid=False))
    return entries
