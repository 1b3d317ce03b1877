"""Record how a checkpoint came to be, across runs and machines, in its provenance.

    python tools/record_lineage.py W.pt \\
        --entry machine="one lent NVIDIA H100, torch 2.11.0+cu130, bf16 autocast" \\
        --entry round1="python tools/train_concurrently.py --out runs_gpu6 ... (12 x 29 k)"

Why a tool: a checkpoint's own provenance names the one ``training.train`` run that wrote it
(command, config, overrides, data, git revision), but a shipped model is often the last of
several runs (a CPU stage, GPU rounds that each start from the last, an average of two), some
of them on a lent machine whose copy of the tree has no git history. The ``lineage`` entry of
the provenance says the whole chain in words; each ``--entry KEY=VALUE`` adds or replaces one
line and ``recorded`` dates it. The weights (their dtype and SHA-256 too) and everything else in
the file stay as they are; the file is rewritten atomically. A file that does not load as a
checkpoint is refused with its path and the reason.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))


def parse_entry(text: str) -> tuple:
    """``KEY=VALUE`` -> (key, value); the value may contain '='."""
    key, sep, value = text.partition('=')
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f'--entry {text!r} is not KEY=VALUE')
    return key.strip(), value.strip()


def record_lineage(path: Path, entries: Dict[str, str]) -> Dict[str, str]:
    """Merge ``entries`` into ``path``'s provenance lineage; return the lineage written."""
    from dsr_ros.checkpoint import update_metadata

    def with_lineage(metadata: Dict[str, Any]) -> Dict[str, Any]:
        provenance = dict(metadata.get('provenance') or {})
        lineage = dict(provenance.get('lineage') or {})
        lineage.update(entries)
        lineage['recorded'] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds')
        provenance['lineage'] = lineage
        return {'provenance': provenance}

    return update_metadata(path, with_lineage)['provenance']['lineage']


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', type=Path)
    parser.add_argument('--entry', dest='entries', type=parse_entry, action='append',
                        required=True, metavar='KEY=VALUE', help='a lineage line (repeatable)')
    args = parser.parse_args(argv)
    try:
        lineage = record_lineage(args.checkpoint, dict(args.entries))
    except ValueError as error:  # CheckpointError is a ValueError
        print(f'record_lineage: {error}', file=sys.stderr)
        return 1
    print(f'{args.checkpoint}: lineage {sorted(lineage)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
