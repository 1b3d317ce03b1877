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
    """Two panels sharing the frames/s axis (bare net: hollow, node: filled): real-sensor
    SR/bicubic MAD (mean over families, below 1 = better than bicubic) and Middlebury x4 MAD.
    Models without a quality number are drawn on the panel's floor with their label."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('real-sensor suite: SR / bicubic MAD\n(mean over families)', _sensor_mean, 1.0,
               'bicubic'),
              ('Middlebury 2005 x4 MAD (0-255)', lambda row: row.get('middlebury_x4_mad'),
               bicubic_mad, 'bicubic')]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, (title, quality, reference, reference_label) in zip(axes, panels):
        for row in rows:
            value = quality(row)
            for fps, filled in ((row.get('bare_fps'), False), (row.get('node_fps'), True)):
                if not fps:
                    continue
                y = value if value is not None else 0.0
                if value is None:
                    axis.scatter([fps], [y], s=60, marker='x', color='C7')
                else:
                    axis.scatter([fps], [y], s=60, marker='o', edgecolors='C0',
                                 facecolors='C0' if filled else 'none')
                axis.annotate(f'{row["model"]} ({"node" if filled else "bare"})', (fps, y),
                              textcoords='offset points', xytext=(5, 5), fontsize=8)
        if reference is not None:
            axis.axhline(reference, color='C3', linestyle='--', linewidth=1,
                         label=reference_label)
            axis.legend(loc='upper right', fontsize=8)
        axis.set_xscale('log')
        axis.set_xlabel('frames/s at 640x480 output (x4, fp32, CPU; log)')
        axis.set_title(title, fontsize=10)
        axis.grid(True, which='both', alpha=0.3)
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
