"""The exception every data reader raises for an unusable file or folder.

It lives in its own module so that the readers and :mod:`training.data.rosbag_io` (whose
``BagError`` is a ``DataError``) can both import it without importing each other.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ['DataError']


class DataError(ValueError):
    """A data file or folder that cannot be used; the message names the path and the reason."""

    def __init__(self, path: Any, reason: str) -> None:
        super().__init__(f'cannot read {os.fspath(path)!r}: {reason}')
        self.path = os.fspath(path)
        self.reason = reason
