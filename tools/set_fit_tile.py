"""Record an inference-time ``fit_tile`` in checkpoints' depth scaling (weights untouched).

    python tools/set_fit_tile.py 32 dsr_ros/weights/dsrnet_sensor_*.pt

Why a tool: ``fit_tile`` (:class:`dsr_ros.depth_scaling.DepthScaling`) changes how the node
scales a frame, not what the net learned, so checkpoints trained before it existed get it
without retraining. The weights and their SHA-256 stay as they are; the provenance gains a
``revisions`` entry saying what changed, when and why, so the file still tells its history.
Only ``range`` scalings take a tile; any other checkpoint is refused with its path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

REASON = ('range fitted per LR tile at inference: chosen on the sensor suite validation split '
          '(python -m training.evaluate --suite sensor --split val)')


def set_fit_tile(path: Path, tile: int, reason: str = REASON) -> None:
    """Rewrite ``path`` with ``normalization.fit_tile = tile`` and a provenance revision."""
    from dsr_ros.checkpoint import revised_provenance, update_metadata
    from dsr_ros.depth_scaling import DepthScaling

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('tile', type=int, help='LR tile edge (0 = fit over the whole frame)')
    parser.add_argument('checkpoints', nargs='+', type=Path)
    parser.add_argument('--why', default=REASON, help='the reason, kept in the revision')
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        try:
            set_fit_tile(path, args.tile, args.why)
        except ValueError as error:  # CheckpointError is a ValueError
            print(f'set_fit_tile: {error}', file=sys.stderr)
            return 2
        print(f'{path}: fit_tile = {args.tile}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
