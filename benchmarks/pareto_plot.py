"""The Pareto plot: quality against frames/s for every rung of the model ladder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ['plot_pareto']


def _sensor_mean(row: Dict[str, Any]) -> Optional[float]:
    sensor = row.get('sensor')
    if not sensor:
        return None
    return sum(f['sr_over_bicubic_mad'] for f in sensor.values()) / len(sensor)


def plot_pareto(rows: List[Dict[str, Any]], bicubic_mad: Optional[float], path: Path) -> None:
    """Two panels sharing the frames/s axis: real-sensor SR/bicubic MAD (mean over families,
    below 1 = better than bicubic) and Middlebury x4 MAD. One colour per model (the legend),
    hollow = bare net, filled = through the node, joined by a line; a model without a quality
    number on a panel is named under that panel instead of being drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('real-sensor suite: SR / bicubic MAD\n(mean over families)', _sensor_mean, 1.0),
              ('Middlebury 2005 x4 MAD (0-255)', lambda row: row.get('middlebury_x4_mad'),
               bicubic_mad)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for axis, (title, quality, reference) in zip(axes, panels):
        missing = []
        for index, row in enumerate(rows):
            value, colour = quality(row), f'C{index % 10}'
            points = [(fps, filled) for fps, filled in ((row.get('bare_fps'), False),
                                                        (row.get('node_fps'), True)) if fps]
            if value is None or not points:
                missing.append(row['model'])
                continue
            axis.plot([fps for fps, _ in points], [value] * len(points), color=colour,
                      linewidth=1, label=row['model'])
            for fps, filled in points:
                axis.scatter([fps], [value], s=60, marker='o', edgecolors=colour,
                             facecolors=colour if filled else 'none', zorder=3)
        if reference is not None:
            axis.axhline(reference, color='k', linestyle='--', linewidth=1, label='bicubic')
        axis.legend(loc='lower right', fontsize=8)
        axis.set_xscale('log')
        note = f'\nno value: {", ".join(missing)}' if missing else ''
        axis.set_xlabel('frames/s at 640x480 output (x4, fp32, CPU; log)\n'
                        'hollow: bare net, filled: node' + note, fontsize=9)
        axis.set_title(title, fontsize=10)
        axis.grid(True, which='both', alpha=0.3)
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
