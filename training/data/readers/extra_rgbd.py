"""extra_rgbd: two registered full-size Middlebury RGB-D pairs (2006 Aloe, 2014 Motorcycle)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from dsr_ros.depth_io import valid_mask
from training.data.readers.entries import Entry
from training.data.readers.files import read_depth_png, read_npz, require_dir, rgb_matching
from training.data.sample import RGBDSample

__all__ = ['list_extra_rgbd']


def list_extra_rgbd(root: Path) -> List[Entry]:
    """extra_rgbd: two registered Middlebury RGB-D pairs at full size (see its SOURCE.md).

    ``aloe2006_full``: Middlebury 2006 Aloe, 1282x1110, 8-bit full-size disparity (0 = unknown)
    and the left view as JPEG. Its depth equals MSG-Net's ``Df_65`` where both are valid (see
    :mod:`training.data.overlap`). ``motorcycle2014``: Middlebury 2014 Motorcycle at quarter
    size, float disparity in pixels with ``+inf`` where unknown (7 % of the pixels): unit
    ``relative`` (a disparity, not 8-bit), invalid pixels set to 0 and masked.
    """
    require_dir(root)
    aloe, motorcycle = root / 'aloe2006_full', root / 'motorcycle2014'

    def load_aloe() -> RGBDSample:
        depth = read_depth_png(aloe / 'aloeGT.png')
        rgb = rgb_matching(aloe / 'aloeL.jpg', depth.shape, 'aloe2006_full')
        return RGBDSample('aloe2006_full', depth, valid_mask(depth), 'disparity_8bit',
                          rgb=rgb, source=str(aloe / 'aloeGT.png'))

    def load_motorcycle() -> RGBDSample:
        path = motorcycle / 'motorcycle_disp.npz'
        depth = read_npz(path, 'arr_0')
        valid = valid_mask(depth)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
        rgb = rgb_matching(motorcycle / 'motorcycle_left.png', depth.shape, 'motorcycle2014')
        return RGBDSample('motorcycle2014', depth, valid, 'relative', rgb=rgb, source=str(path))

    return [Entry('aloe2006_full', load_aloe), Entry('motorcycle2014', load_motorcycle)]
