"""The Middlebury 2005 test scenes: the benchmark set, its raw third-size maps, Ferstl's noise.

All three families read the same six scenes (:data:`MIDDLEBURY2005_SCENES`) on the 8-bit
disparity scale; they differ in which LR inputs come with them and whether holes are filled.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from dsr_ros.depth_io import valid_mask
from training.data.errors import DataError
from training.data.readers.entries import Entry, png_pair_entry
from training.data.readers.files import read_depth_png, require_dir, rgb_matching
from training.data.sample import RGBDSample

__all__ = ['MIDDLEBURY2005_SCENES', 'list_ferstl_noisy', 'list_middlebury2005',
           'list_middlebury_thirdsize']

#: The six Middlebury 2005 test scenes, in the index order of middlebury2005_sun (1..6).
MIDDLEBURY2005_SCENES = ('art', 'books', 'dolls', 'laundry', 'moebius', 'reindeer')


def list_middlebury2005(root: Path, with_rgb: bool = True,
                        scales: Sequence[int] = (2, 4, 8, 16)) -> List[Entry]:
    """middlebury2005_sun: test_gt/<i>.png, test_color/<i>.png, testx<s>/<i>.png, i = 1..6.

    Depth is the hole-filled 0-255 Middlebury disparity; the LR inputs are the benchmark's own
    (``lr_inputs[s]``), so evaluation uses exactly what the paper's group used.
    """
    require_dir(root / 'test_gt')

    def make(index: int, name: str) -> Entry:
        def load() -> RGBDSample:
            gt_path = root / 'test_gt' / f'{index}.png'
            depth = read_depth_png(gt_path)
            lr = {}
            for scale in scales:
                lr_path = root / f'testx{scale}' / f'{index}.png'
                lr[int(scale)] = read_depth_png(lr_path)
                expected = (depth.shape[0] // scale, depth.shape[1] // scale)
                if lr[int(scale)].shape != expected:
                    raise DataError(lr_path, f'LR input {lr[int(scale)].shape} is not '
                                             f'{expected} = GT {depth.shape} / {scale}')
            rgb = (rgb_matching(root / 'test_color' / f'{index}.png', depth.shape, name)
                   if with_rgb else None)
            return RGBDSample(name, depth, valid_mask(depth), 'disparity_8bit', rgb=rgb,
                              lr_inputs=lr, source=str(gt_path))
        return Entry(name, load)

    return [make(index, name) for index, name in enumerate(MIDDLEBURY2005_SCENES, 1)]


def list_middlebury_thirdsize(root: Path, view: int = 1, with_rgb: bool = True
                              ) -> List[Entry]:
    """middlebury2005_thirdsize: <Scene>/disp<v>.png + view<v>.png, v = 1 or 5.

    Raw third-size disparity on the 8-bit scale (value = 3 x third-size disparity) with its
    real holes: 0 = unknown, so ``valid`` is False there and the zeros are kept as they are.
    """
    if view not in (1, 5):
        raise ValueError(f'middlebury_thirdsize: view must be 1 or 5, got {view!r}')
    require_dir(root)
    entries = []
    for scene in MIDDLEBURY2005_SCENES:
        folder = root / scene.capitalize()
        entries.append(png_pair_entry(scene, folder / f'disp{view}.png',
                                      folder / f'view{view}.png' if with_rgb else None,
                                      'disparity_8bit'))
    return entries


def list_ferstl_noisy(root: Path, with_rgb: bool = True) -> List[Entry]:
    """middlebury2005_ferstl_noisy: <s>/<f>_big.png GT, <f>_color.png, <f>_depth_<k>_n.png.

    ``<f>`` is the scene name except Books (``book``). The noisy LR maps for k = 1..4 become
    ``lr_inputs`` for scales 2, 4, 8, 16 (same 8-bit scale as the GT, plus noise).
    """
    require_dir(root)
    entries = []
    for scene in MIDDLEBURY2005_SCENES:
        prefix = 'book' if scene == 'books' else scene
        entries.append(_ferstl_entry(scene, root / scene, prefix, with_rgb))
    return entries


def _ferstl_entry(name: str, folder: Path, prefix: str, with_rgb: bool) -> Entry:
    def load() -> RGBDSample:
        gt_path = folder / f'{prefix}_big.png'
        depth = read_depth_png(gt_path)
        lr = {}
        for k, scale in enumerate((2, 4, 8, 16), 1):
            lr_path = folder / f'{prefix}_depth_{k}_n.png'
            lr[scale] = read_depth_png(lr_path)
            expected = (depth.shape[0] // scale, depth.shape[1] // scale)
            if lr[scale].shape != expected:
                raise DataError(lr_path, f'LR input {lr[scale].shape} is not {expected}')
        rgb = (rgb_matching(folder / f'{prefix}_color.png', depth.shape, name)
               if with_rgb else None)
        return RGBDSample(name, depth, valid_mask(depth), 'disparity_8bit', rgb=rgb,
                          lr_inputs=lr, source=str(gt_path))
    return Entry(name, load)
