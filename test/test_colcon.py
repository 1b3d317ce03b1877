"""The package builds with colcon like any ament_python package and runs from the install space.

The sources are copied (not linked) into a temporary workspace so that the build's egg-info and
build/ never touch the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope='module')
def workspace(colcon_workspace) -> Path:
    return colcon_workspace


def _sourced(workspace: Path, command: str) -> subprocess.CompletedProcess:
    """Run ``command`` in bash after ``. install/setup.sh``, as a user would."""
    return subprocess.run(['bash', '-c', f'. install/setup.sh && {command}'], cwd=workspace,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_install_space_layout(workspace):
    prefix = workspace / 'install' / 'dsr_ros'
    for executable in ('dsr_node', 'dsr_demo'):
        path = prefix / 'lib' / 'dsr_ros' / executable
        assert path.is_file() and os.access(path, os.X_OK), path
    share = prefix / 'share' / 'dsr_ros'
    for relative in ('launch/dsr.launch.py', 'config/dsr.yaml', 'package.xml'):
        assert (share / relative).is_file(), relative
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'dsr_ros').exists()


def test_sourced_install_is_used_and_finds_its_share(workspace):
    script = ('import dsr_ros; from dsr_ros.ros.ros_args import default_params_file; '
              'print(dsr_ros.__file__); print(default_params_file())')
    result = _sourced(workspace, f'{sys.executable} -c "{script}"')
    assert result.returncode == 0, result.stderr
    module_file, params_file = result.stdout.split()
    assert module_file.startswith(str(workspace / 'install'))
    assert params_file == str(workspace / 'install' / 'dsr_ros' / 'share' / 'dsr_ros' / 'config'
                              / 'dsr.yaml')


def test_installed_executable_runs(workspace):
    result = _sourced(workspace, 'install/dsr_ros/lib/dsr_ros/dsr_node --ros-args '
                                 '-p weights_path:=/nonexistent/dsr.pt')
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "cannot use checkpoint '/nonexistent/dsr.pt': file does not exist" in lines[0]
