"""Plot a run's ``history.csv``: held-out errors, loss terms and learning rate per epoch.

    python -m training.plot_history runs/lite_x4/history.csv --out results/lite_x4_history.png

Stage-2 epochs are shaded and labelled with their role, so the effect of the switch from
independent training to cross-task distillation can be seen at a glance.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ['plot_history', 'read_history']


def read_history(path: Path) -> List[Dict[str, object]]:
    """Rows of ``history.csv`` with numbers parsed (empty cells become NaN)."""
    rows = []
    with Path(path).open(newline='') as handle:
        for row in csv.DictReader(handle):
            parsed: Dict[str, object] = {}
            for key, value in row.items():
                try:
                    parsed[key] = float(value) if value != '' else math.nan
                except ValueError:
                    parsed[key] = value
            rows.append(parsed)
    if not rows:
        raise ValueError(f'{path}: no epochs logged yet')
    return rows


def plot_history(rows: Sequence[Dict[str, object]], out: Path, title: str = '') -> Path:
    """Write a three-panel PNG (errors, losses, learning rate) and return its path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    epochs = [int(row['epoch']) for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    series = {'val_e_dsr': 'DSRNet held-out |D-D_hr|', 'val_e_de': 'DENet held-out |D-D_hr|'}
    for key, label in series.items():
        values = [row.get(key, math.nan) for row in rows]
        if any(isinstance(v, float) and math.isfinite(v) for v in values):
            axes[0].plot(epochs, values, label=label)
    axes[0].set_yscale('log')
    axes[0].set_title('held-out error (normalised depth)')
    losses = sorted({k for row in rows for k in row if str(k).startswith('l_')})
    for key in losses:
        values = [row.get(key, math.nan) for row in rows]
        axes[1].plot(epochs, values, label=key, marker='.', linewidth=1)
    axes[1].set_yscale('log')
    axes[1].set_title('loss terms (epoch means)')
    axes[2].plot(epochs, [row['lr'] for row in rows])
    axes[2].set_yscale('log')
    axes[2].set_title('learning rate')
    stage2 = [row['epoch'] for row in rows if row.get('stage') == 2.0]
    for axis in axes:
        axis.set_xlabel('epoch')
        if stage2:
            axis.axvspan(min(stage2) - 0.5, max(stage2) + 0.5, color='0.9', zorder=0,
                         label='stage 2: ' + str(rows[int(min(stage2)) - 1].get('role', '')))
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('history', type=Path, help='history.csv of a run')
    parser.add_argument('--out', type=Path, required=True, help='PNG to write')
    args = parser.parse_args(argv)
    try:
        rows = read_history(args.history)
    except (OSError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(plot_history(rows, args.out, title=str(args.history.parent.name)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
