"""The ROS 2 distribution under test is the one `make test` meant (Kilted in .venv, Jazzy in
.venv-jazzy): a Jazzy run that silently picked up Kilted wheels would prove nothing.

``DSR_ROS_TEST_DISTRO`` is set by the Makefile; run by hand without it, the test only reports.
"""

from __future__ import annotations

import os
from importlib import metadata

import pytest

#: rclpy major version of each distribution (Humble 3, Jazzy 7, Kilted 9).
RCLPY_MAJOR = {'humble': 3, 'jazzy': 7, 'kilted': 9}


def rclpy_version() -> str:
    return metadata.version('ros-rclpy')


def test_rclpy_is_the_expected_distribution():
    pytest.importorskip('rclpy')
    version = rclpy_version()
    expected = os.environ.get('DSR_ROS_TEST_DISTRO', '')
    print(f'rclpy {version}; expected distribution: {expected or "(not set)"}')
    if not expected:
        pytest.skip(f'DSR_ROS_TEST_DISTRO not set (rclpy {version}); make test sets it')
    assert expected in RCLPY_MAJOR, f'unknown distribution {expected!r}'
    assert int(version.split('.')[0]) == RCLPY_MAJOR[expected], version
    if expected == 'jazzy':
        assert metadata.version('ros-jazzy-rclpy') == version
