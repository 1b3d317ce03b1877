"""Samples of different sources that are the same scene, and what training does about it.

Names alone cannot tell that ``aloe2006_full`` (extra_rgbd), ``Df_65`` (msgnet_mat) and
``Middlebury_01`` (lu30, third size) are all Middlebury 2006 Aloe; this module records it:

- a held-out sample takes every other view of its scene out of training (held-out errors
  decide roles and the best checkpoint: a training copy of a held-out scene would flatter
  them);
- two training samples with the *same depth map* (``aloe2006_full`` and ``Df_65`` are
  pixel-identical where both are valid) would count that map twice: the depth-only copy is
  dropped and the RGB-D pair kept.
"""

from __future__ import annotations

import logging
from typing import List, Sequence, Tuple

from training.data.sample import RGBDSample

__all__ = ['SAME_DEPTH', 'SAME_SCENE', 'resolve_overlaps']

LOGGER = logging.getLogger(__name__)

#: Groups of sample names that show the same scene (at any size).
SAME_SCENE: Tuple[frozenset, ...] = (
    frozenset({'aloe2006_full', 'Df_65', 'Middlebury_01'}),
)
#: RGB-D pair -> depth-only map with the identical depth (dropped when both train).
SAME_DEPTH = {'aloe2006_full': 'Df_65'}


def resolve_overlaps(train: Sequence[RGBDSample], val: Sequence[RGBDSample]
                     ) -> Tuple[List[RGBDSample], List[str]]:
    """Training samples without held-out scenes and duplicate depth maps; names dropped."""
    held_out = {s.name for s in val}
    for group in SAME_SCENE:
        if group & held_out:
            held_out |= group
    names = {s.name for s in train}
    duplicates = {copy for pair, copy in SAME_DEPTH.items() if pair in names and copy in names}
    kept, dropped = [], []
    for sample in train:
        if sample.name in held_out or sample.name in duplicates:
            dropped.append(sample.name)
        else:
            kept.append(sample)
    for name in dropped:
        reason = 'a view of a held-out scene' if name in held_out else \
            'the same depth map as an RGB-D pair that trains'
        LOGGER.info('training without %s: %s', name, reason)
    return kept, dropped
