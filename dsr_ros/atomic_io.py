"""Write files atomically, with the permissions the user asked for, leaving no litter.

Checkpoints and training histories are read by other processes (a node running as another
user, a plotting script) while a run writes them, and a run can be killed at any moment. So a
file is written to a temporary file in the same directory and renamed over the target: a
reader sees the old file or the new one, never half of one. Three details matter:

* ``tempfile.mkstemp`` creates mode 0600 whatever the umask; the finished file gets the mode
  ``open()`` would have given it (0666 minus the process umask).
* A kill between creating and renaming leaves the temporary file behind. Its name carries the
  writer's process id, so the next write to the same target removes those of dead writers.
* The temporary file is flushed to disk before the rename, so a power cut cannot leave a
  renamed but empty file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

__all__ = ['atomic_write', 'atomic_write_text', 'default_file_mode', 'remove_stale_temporaries']

PathLike = Union[str, os.PathLike]


def default_file_mode() -> int:
    """0666 minus this process's umask: the mode a plain ``open(path, 'w')`` would create."""
    try:
        with open('/proc/self/status', encoding='ascii') as handle:
            for line in handle:
                if line.startswith('Umask:'):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # no other portable way to read it; restored at once
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_prefix(path: Path) -> str:
    return f'{path.name}.'


def remove_stale_temporaries(path: PathLike) -> int:
    """Delete temporary files of earlier writes to ``path`` whose writer no longer runs;
    return how many were removed."""
    path = Path(path)
    removed = 0
    if not path.parent.is_dir():
        return 0
    for candidate in path.parent.glob(_temporary_prefix(path) + '*.tmp'):
        pid_text = candidate.name[len(_temporary_prefix(path)):].split('.', 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        try:
            candidate.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_name)`` and rename the result over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f'{_temporary_prefix(path)}{os.getpid()}.',
                                        suffix='.tmp', dir=path.parent)
    os.close(handle)
    try:
        write(tmp_name)
        with open(tmp_name, 'rb') as stream:
            os.fsync(stream.fileno())
        os.chmod(tmp_name, default_file_mode())
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    return atomic_write(path, lambda name: Path(name).write_text(text, encoding='utf-8'))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
