"""Where a training run's numbers go: ``history.csv``, TensorBoard and the console.

One :class:`RunLog` per run: the TensorBoard writer is opened once (lazily) and closed by
:meth:`RunLog.close`, not reopened every epoch. ``history.csv`` is rewritten atomically, so a
run killed while logging keeps a readable file, and a resumed run replaces the rows of the
epochs it repeats.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from dsr_ros.atomic_io import atomic_write_text

__all__ = ['RunLog', 'NEGLIGIBLE_SHARE', 'negligible_terms']

LOGGER = logging.getLogger('training.train')
#: A distillation or structure term adding less than this fraction of the task loss.
NEGLIGIBLE_SHARE = 0.01
_TEACHING_TERMS = ('share_o', 'share_a', 'share_struc')


class RunLog:
    """Appends one row per epoch to ``out_dir/history.csv`` and TensorBoard (``out_dir/tb``)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._writer: Optional[Any] = None
        self._writer_failed = False

    def write(self, row: Dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / 'history.csv'
        fields = list(row)
        rows: List[Dict[str, Any]] = []
        if path.exists():
            with path.open(newline='') as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                rows = [r for r in reader if int(r['epoch']) < row['epoch']]
            fields = header + [f for f in row if f not in header]
        atomic_write_text(path, _csv_text(rows + [row], fields))
        writer = self._tensorboard()
        if writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(key, value, row['epoch'])
            writer.flush()

    def _tensorboard(self) -> Optional[Any]:
        if self._writer is None and not self._writer_failed:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional; the CSV holds the same numbers.
                self._writer_failed = True
                return None
            self._writer = SummaryWriter(os.fspath(self.out_dir / 'tb'))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def negligible_terms(row: Dict[str, Any]) -> Dict[str, float]:
    """The teaching terms of an epoch row whose share of the task loss is negligible."""
    return {key: row[key] for key in _TEACHING_TERMS
            if key in row and row[key] < NEGLIGIBLE_SHARE}


def _csv_text(rows: List[Dict[str, Any]], fields: List[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
