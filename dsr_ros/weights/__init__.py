"""Models shipped with the package (installed as package data by setup.py).

The node uses :func:`default_weights_path` when its ``weights_path`` parameter is empty, so a
shipped model works out of the box and an unshipped one gives a clear start-up error instead of
a silently untrained network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ['DEFAULT_WEIGHTS_NAME', 'default_weights_path']

#: File name of the default model: a light DSRNet for x4 on CPUs.
DEFAULT_WEIGHTS_NAME = 'dsrnet_lite_x4.pt'


def default_weights_path() -> Optional[Path]:
    """Path of the shipped default checkpoint, or None while no model is shipped."""
    path = Path(__file__).resolve().parent / DEFAULT_WEIGHTS_NAME
    return path if path.is_file() else None
