"""Build the command line that starts ``dsr_node`` the way ``ros2 launch`` would (no ROS needed).

launch_ros turns a ``Node`` action into ``<exe> --ros-args -r __node:=NAME -r __ns:=NS
--params-file FILE -p key:=value -r from:=to``. The demo and the tests start the node with the
same line, so what they exercise is what a launch file runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ['default_params_file', 'format_parameter', 'node_command']

PACKAGE = 'dsr_ros'


def default_params_file() -> Path:
    """``config/dsr.yaml`` of a source checkout, else of the installed package share."""
    in_checkout = Path(__file__).resolve().parents[2] / 'config' / 'dsr.yaml'
    if in_checkout.is_file():
        return in_checkout
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory(PACKAGE)) / 'config' / 'dsr.yaml'


def format_parameter(value: Any) -> str:
    """Render a value for ``-p name:=value`` (YAML syntax, as rcl parses it)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        # Quote so that '', 'true' or '1' stay strings.
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def node_command(executable: Optional[Sequence[str]] = None, *, name: str = 'dsr_node',
                 namespace: str = '', params_file: Optional[os.PathLike] = None,
                 parameters: Optional[Mapping[str, Any]] = None,
                 remaps: Optional[Dict[str, str]] = None,
                 log_level: Optional[str] = None) -> List[str]:
    """The argv that runs the node with the given name, namespace, parameters and remaps.

    ``executable`` defaults to ``python -m dsr_ros.ros.node`` with the running interpreter.
    """
    argv = list(executable or [sys.executable, '-m', 'dsr_ros.ros.node'])
    argv += ['--ros-args', '-r', f'__node:={name}']
    if namespace:
        argv += ['-r', f'__ns:=/{namespace.strip("/")}']
    if params_file is not None:
        argv += ['--params-file', os.fspath(params_file)]
    for key, value in (parameters or {}).items():
        argv += ['-p', f'{key}:={format_parameter(value)}']
    for source, target in (remaps or {}).items():
        argv += ['-r', f'{source}:={target}']
    if log_level:
        argv += ['--log-level', log_level]
    return argv
