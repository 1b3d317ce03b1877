"""MSG-Net's data: its training depth maps (.mat) and its test sets A, B and C."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from dsr_ros.depth_io import valid_mask
from training.data.errors import DataError
from training.data.readers.entries import Entry, mat_entry, png_pair_entry
from training.data.readers.files import natural_key, read_depth_png, read_rgb, require_dir
from training.data.sample import RGBDSample

__all__ = ['MSGNET_TEST_SCENE_MAPS', 'list_msgnet_mat', 'list_msgnet_testsets']

#: msgnet_training_depth Middlebury maps that are one of the six test scenes: none.
#: Checked (training/data/leakage.py, ``python -m training.data.leakage``): every Df_59..Df_70 map
#: (full-size ones first reduced by 3 with INTER_AREA) was rescaled by 0.85..1.15 and its central
#: 70 % searched with normalised cross-correlation (cv2.TM_CCOEFF_NORMED) in the third-size
#: disp1.png of each test scene and in the middlebury2005_sun GT reduced by 3. The known test
#: scenes of middlebury_lu30 (02/06/14/18/21/24), used as positive controls, score 0.987-0.999
#: against their own scene; the best score of any Df map is 0.864 (Df_67 vs Books) and the
#: median of their best scores about 0.76, the level of unrelated scenes (lu30 01/03: 0.54/0.75).
#: Their shapes fit other scenes too: Df_59..64 (380-383 x 430-435) are the six Middlebury 2001
#: sizes, Df_65..70 (1110 x 1240-1330) are 2006 full-size widths, none the 1390/1342 of 2005.
MSGNET_TEST_SCENE_MAPS: tuple = ()


def list_msgnet_mat(root: Path, subsets: Sequence[str] = ('sintel', 'middlebury'),
                    exclude: Optional[Sequence[str]] = None) -> List[Entry]:
    """msgnet_training_depth: <subset>/Df_<n>.mat, variable ``Df``; depth only.

    Sintel maps are in Sintel depth units (``sintel_depth``), the Middlebury maps on the 8-bit
    disparity scale. ``exclude`` defaults to :data:`MSGNET_TEST_SCENE_MAPS` (empty: none of the
    maps is a test scene, see there how that was checked).
    """
    units = {'sintel': 'sintel_depth', 'middlebury': 'disparity_8bit'}
    unknown = [s for s in subsets if s not in units]
    if unknown:
        raise ValueError(f'msgnet_mat: unknown subsets {unknown}, expected {sorted(units)}')
    skip = set(MSGNET_TEST_SCENE_MAPS if exclude is None else exclude)
    entries = []
    for subset in subsets:
        require_dir(root / subset)
        paths = sorted((root / subset).glob('Df_*.mat'), key=natural_key)
        for path in paths:
            if path.stem in skip:
                continue
            entries.append(mat_entry(path, path.stem, 'Df', units[subset]))
    return entries


def list_msgnet_testsets(root: Path, sets: Sequence[str] = ('A', 'B', 'C')) -> List[Entry]:
    """msgnet_testsets: A/<s>/{depth,rgb}.png, B/<s>/depth.bmp, C/<s>/{depth_<s>_2.mat,rgb.bmp}.

    Names are ``<set>/<scene>``. A's RGB is the uncropped full view: the depth sits at offset
    (11, 7) in it (see that folder's SOURCE.md), so it is cropped there. B has no RGB. C's
    ``img_double`` is at most one row shorter than its RGB, which loses its last row. Values
    are treated as ``disparity_8bit`` for all three sets (C's tsukuba/venus use other
    disparity scalings, but stay in 0-255).
    """
    entries = []
    for subset in sets:
        if subset not in ('A', 'B', 'C'):
            raise ValueError(f'msgnet_testsets: unknown set {subset!r}, expected A, B or C')
        require_dir(root / subset)
        for folder in sorted(p for p in (root / subset).iterdir() if p.is_dir()):
            name = f'{subset}/{folder.name}'
            if subset == 'A':
                entries.append(_msgnet_a_entry(name, folder))
            elif subset == 'B':
                entries.append(png_pair_entry(name, folder / 'depth.bmp', None,
                                              'disparity_8bit'))
            else:
                entries.append(mat_entry(folder / f'depth_{folder.name}_2.mat', name,
                                         'img_double', 'disparity_8bit', folder / 'rgb.bmp'))
    return entries


def _msgnet_a_entry(name: str, folder: Path) -> Entry:
    def load() -> RGBDSample:
        depth_path = folder / 'depth.png'
        depth = read_depth_png(depth_path)
        rgb = read_rgb(folder / 'rgb.png')
        top = (rgb.shape[0] - depth.shape[0]) // 2
        left = (rgb.shape[1] - depth.shape[1]) // 2
        if top < 0 or left < 0:
            raise DataError(folder / 'rgb.png', f'RGB {rgb.shape[:2]} is smaller than the '
                                                f'depth {depth.shape}')
        rgb = np.ascontiguousarray(rgb[top:top + depth.shape[0], left:left + depth.shape[1]])
        return RGBDSample(name, depth, valid_mask(depth), 'disparity_8bit', rgb=rgb,
                          source=str(depth_path))
    return Entry(name, load)
