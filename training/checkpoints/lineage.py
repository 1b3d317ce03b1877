"""Record how a checkpoint came to be, across runs and machines, in its provenance.

Why: a checkpoint's own provenance names the one ``training.train`` run that wrote it
(command, config, overrides, data, git revision), but a shipped model is often the last of
several runs (a CPU stage, GPU rounds that each start from the last, an average of two), some
of them on a lent machine whose copy of the tree has no git history. The ``lineage`` entry of
the provenance says the whole chain in words; each ``KEY=VALUE`` entry adds or replaces one
line and ``recorded`` dates it. The weights (their dtype and SHA-256 too) and everything else in
the file stay as they are; the file is rewritten atomically. A file that does not load as a
checkpoint is refused with its path and the reason.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any, Dict, Tuple

from dsr_ros.checkpoint import update_metadata

__all__ = ['parse_entry', 'record_lineage']


def parse_entry(text: str) -> Tuple[str, str]:
    """``KEY=VALUE`` -> (key, value); the value may contain '='."""
    key, sep, value = text.partition('=')
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f'--entry {text!r} is not KEY=VALUE')
    return key.strip(), value.strip()


def record_lineage(path: Path, entries: Dict[str, str]) -> Dict[str, str]:
    """Merge ``entries`` into ``path``'s provenance lineage; return the lineage written."""

    def with_lineage(metadata: Dict[str, Any]) -> Dict[str, Any]:
        provenance = dict(metadata.get('provenance') or {})
        lineage = dict(provenance.get('lineage') or {})
        lineage.update(entries)
        lineage['recorded'] = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds')
        provenance['lineage'] = lineage
        return {'provenance': provenance}

    return update_metadata(path, with_lineage)['provenance']['lineage']
