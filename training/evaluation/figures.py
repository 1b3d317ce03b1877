"""Figures of the runs: the paper protocol's error maps and overview, the suite's error maps."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
from tqdm import tqdm

from dsr_ros.depth_metrics import masked_errors
from training.evaluation.protocols import Protocol

__all__ = ['save_error_maps', 'save_figure']


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_error_maps(maps: Dict[Tuple[str, str, int], np.ndarray], out: Path,
                    protocol: Protocol) -> None:
    """``maps/<method>/<scene>_x<s>.png`` (|error| per pixel) and ``overview.png`` (all of
    them, one colour scale) under ``out``."""
    plt = _pyplot()
    for (method, scene, scale), error in tqdm(maps.items(), desc='error maps', leave=False,
                                              disable=len(maps) < 8):
        folder = out / 'maps' / _safe(method)
        folder.mkdir(parents=True, exist_ok=True)
        plt.imsave(folder / f'{_safe(scene)}_x{scale}.png', error, cmap='inferno', vmin=0.0,
                   vmax=protocol.error_range)
    methods = sorted({m for m, _, _ in maps})
    scenes = list(dict.fromkeys(s for _, s, _ in maps))
    scales = sorted({k for _, _, k in maps})
    fig, axes = plt.subplots(len(scenes), len(methods) * len(scales), squeeze=False,
                             figsize=(2.2 * len(methods) * len(scales), 1.9 * len(scenes)))
    image = None
    for row, scene in enumerate(scenes):
        for m_index, method in enumerate(methods):
            for k_index, scale in enumerate(scales):
                axis = axes[row][m_index * len(scales) + k_index]
                axis.set_xticks([])
                axis.set_yticks([])
                error = maps.get((method, scene, scale))
                if error is not None:
                    step = max(1, max(error.shape) // 400)
                    image = axis.imshow(error[::step, ::step], cmap='inferno', vmin=0,
                                        vmax=protocol.error_range)
                if row == 0:
                    axis.set_title(f'{method} x{scale}', fontsize=8)
                if m_index == 0 and k_index == 0:
                    axis.set_ylabel(scene, fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label=f'|error| ({protocol.unit_label})')
    fig.savefig(out / 'overview.png', dpi=80)
    plt.close(fig)


def _safe(name: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)


def save_figure(maps: Dict[str, Dict[str, np.ndarray]], path: Path) -> None:
    """The sensor suite's error maps (|method - GT|, mm) for the first image of every family."""
    plt = _pyplot()
    families = list(maps)
    fig, axes = plt.subplots(len(families), 5, figsize=(15, 2.6 * len(families)),
                             squeeze=False)
    for row, family in enumerate(families):
        item = maps[family]
        gt = item['gt']
        low, high = np.nanpercentile(gt, [1, 99])
        axes[row, 0].imshow(gt, cmap='turbo', vmin=low, vmax=high)
        axes[row, 0].set_title(f'{family}: GT')
        axes[row, 1].imshow(item['lr'], cmap='turbo', vmin=low, vmax=high)
        axes[row, 1].set_title('LR input')
        errs = {m: np.abs(item[m] - gt) * 1000.0 for m in ('nearest', 'bicubic', 'sr')}
        top = np.nanpercentile(np.concatenate([e[np.isfinite(e)] for e in errs.values()]), 99)
        for col, method in enumerate(('nearest', 'bicubic', 'sr'), start=2):
            axes[row, col].imshow(errs[method], cmap='magma', vmin=0, vmax=max(top, 1e-3))
            valid = np.isfinite(errs[method])
            mad_mm = masked_errors(item[method], gt, valid)['mad']
            axes[row, col].set_title(f'|{method} - GT| (MAD {mad_mm:.1f} mm)')
        for axis in axes[row]:
            axis.axis('off')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=45)  # under 300 KB at 17 families (the repository's figure limit)
    plt.close(fig)
