"""Record an inference-time ``fit_tile`` in checkpoints' depth scaling (weights untouched).

Why: ``fit_tile`` (:class:`dsr_ros.depth_scaling.DepthScaling`) changes how the node scales a
frame, not what the net learned, so checkpoints trained before it existed get it without
retraining. The weights and their SHA-256 stay as they are; the provenance gains a
``revisions`` entry saying what changed, when and why, so the file still tells its history.
Only ``range`` scalings take a tile; any other checkpoint is refused with its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from dsr_ros.checkpoint import revised_provenance, update_metadata
from dsr_ros.depth_scaling import DepthScaling

__all__ = ['REASON', 'set_fit_tile']

REASON = ('range fitted per LR tile at inference: chosen on the sensor suite validation split '
          '(python -m training.evaluation sensor --split val)')


def set_fit_tile(path: Path, tile: int, reason: str = REASON) -> None:
    """Rewrite ``path`` with ``normalization.fit_tile = tile`` and a provenance revision."""

    def with_tile(metadata: Dict[str, Any]) -> Dict[str, Any]:
        scaling = DepthScaling.from_dict(metadata.get('normalization'))
        if scaling.mode != 'range':
            raise ValueError(f'{path}: its scaling is {scaling.mode!r}; only range scalings '
                             'are fitted per tile')
        before = scaling.to_dict()
        after = dict(before, fit_tile=int(tile))
        DepthScaling.from_dict(after)  # refuses a bad tile before anything is written
        provenance = revised_provenance(metadata, 'normalization.fit_tile',
                                        before.get('fit_tile', 0), int(tile), reason)
        return {'normalization': after, 'provenance': provenance}

    update_metadata(path, with_tile)
