"""Models shipped with the package (installed as package data by setup.py).

File names say what a model is for: ``dsrnet_sensor_<size>_x<scale>.pt`` are trained on the
randomised sensor degradation for real cameras (the node's models), ``<size>`` one rung of the
ladder ``tiny`` (real time on a CPU), ``lite`` (better, about 1 frame/s at 640x480 on a 2-core
CPU), ``paper`` (the paper's 64 x 5 net, for GPUs; shipped at x4, weights stored in fp16).
The research-protocol model of the paper's benchmark table is ``dsrnet_research_lite_x4.pt``
(OpenCV-bicubic degradation only: do not use it on a real camera).

The node picks a shipped model by its ``model`` and ``scale`` parameters when ``weights_path``
is empty, so a shipped model works out of the box and a missing one gives a clear start-up
error instead of a silently untrained network.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

__all__ = ['DEFAULT_SCALE', 'DEFAULT_WEIGHTS_NAME', 'MODEL_SIZES', 'RESEARCH_WEIGHTS_NAME',
           'default_weights_path', 'shipped_models', 'shipped_weights', 'weights_dir']

#: Rungs of the model ladder, smallest first.
MODEL_SIZES = ('tiny', 'lite', 'paper')
DEFAULT_SCALE = 4
#: The default model when nothing is measured: the lite sensor model at x4.
DEFAULT_WEIGHTS_NAME = 'dsrnet_sensor_lite_x4.pt'
RESEARCH_WEIGHTS_NAME = 'dsrnet_research_lite_x4.pt'
_PATTERN = re.compile(r'dsrnet_sensor_(?P<size>[a-z]+)_x(?P<scale>\d+)\.pt$')


def weights_dir() -> Path:
    """The folder holding the shipped checkpoints."""
    return Path(__file__).resolve().parent


def shipped_models() -> Dict[int, Dict[str, Path]]:
    """``{scale: {size: path}}`` of every shipped sensor model, sizes in ladder order."""
    found: Dict[int, Dict[str, Path]] = {}
    for path in sorted(weights_dir().glob('dsrnet_sensor_*_x*.pt')):
        match = _PATTERN.match(path.name)
        if match and match['size'] in MODEL_SIZES:
            found.setdefault(int(match['scale']), {})[match['size']] = path
    return {scale: {size: sizes[size] for size in MODEL_SIZES if size in sizes}
            for scale, sizes in sorted(found.items())}


def shipped_weights(size: str, scale: int) -> Path:
    """The shipped checkpoint of one ladder rung at one scale; a clear error if there is none."""
    models = shipped_models()
    if size not in MODEL_SIZES:
        raise ValueError(f'model must be one of {MODEL_SIZES} (or auto), got {size!r}')
    if size not in models.get(int(scale), {}):
        available: List[str] = [f'{name} x{s}' for s, sizes in models.items() for name in sizes]
        raise ValueError(f'no shipped {size} model for x{scale}; shipped: '
                         f'{", ".join(available) or "none"} (set weights_path to your own)')
    return models[int(scale)][size]


def default_weights_path() -> Optional[Path]:
    """Path of the shipped default checkpoint, or None while no model is shipped."""
    path = weights_dir() / DEFAULT_WEIGHTS_NAME
    return path if path.is_file() else None
