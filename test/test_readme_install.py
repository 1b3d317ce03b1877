"""README's Install block, run line by line in a fresh workspace: a ``--system-site-packages``
venv, ``python -m colcon build`` from inside it, ``. install/setup.sh``.

Stood in for, as the machine has no ROS installation: ``source /opt/ros/<distro>/setup.bash``
(here: this venv's site-packages on PYTHONPATH, its bin on PATH, as the distro's setup script
does for /opt/ros), ``git clone`` (a copy of the checkout) and ``rosdep install`` (the ROS and
Python packages are already on that path). Everything else runs verbatim. The point it proves:
the installed ``dsr_node`` runs with the workspace venv's Python, which sees the "system" ROS
packages and torch, without any pip install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import REPO, copy_to_workspace

MARKER = '<!-- test/test_readme_install.py'
STOOD_IN_FOR = ('source /opt/ros/', 'mkdir -p ~/dsr_ws/src', 'rosdep install', 'cd ~/dsr_ws')


def install_lines() -> list:
    text = (REPO / 'README.md').read_text()
    start = text.index('```bash', text.index(MARKER)) + len('```bash')
    return [line.split('  #')[0].strip() for line in text[start:text.index('```', start)]
            .splitlines() if line.strip()]


def test_install_block_in_a_system_site_packages_venv(tmp_path):
    if not (Path(sys.executable).parent / 'colcon').exists():
        pytest.skip('colcon is not installed next to this Python (make setup)')
    lines = install_lines()
    assert any(line.startswith(STOOD_IN_FOR[0]) for line in lines)
    run = [line for line in lines if not line.startswith(STOOD_IN_FOR)]
    assert any('--system-site-packages' in line for line in run), run
    assert any(line.startswith('python -m colcon build') for line in run), run
    copy_to_workspace(tmp_path)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()['purelib'],
               PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}')
    env.pop('VIRTUAL_ENV', None)
    script = '\n'.join(['set -e'] + run + [
        'head -1 install/dsr_ros/lib/dsr_ros/dsr_node',
        'dsr_ros_node=install/dsr_ros/lib/dsr_ros/dsr_node',
        '$dsr_ros_node --ros-args -p weights_path:=/nonexistent.pt || echo "exit $?"'])
    result = subprocess.run(['bash', '-c', script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shebang = next(line for line in result.stdout.splitlines() if line.startswith('#!'))
    assert shebang == f'#!{tmp_path}/.venv/bin/python', shebang
    assert (tmp_path / '.venv' / 'COLCON_IGNORE').exists()
    assert 'exit 1' in result.stdout, result.stdout
    assert "cannot use checkpoint '/nonexistent.pt': file does not exist" in result.stderr
