"""package.xml declares exactly what the code imports, as rosdep keys, so that `rosdep install`
brings every dependency and `colcon test` can collect the tests.

Imports are read from the source (every ``import`` statement, including the lazy ones inside
functions); modules of the standard library and of this repository are not dependencies.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Dict, Iterable, Set

from conftest import REPO

#: Imported module -> rosdep key (ROS packages are their own keys).
ROSDEP_KEYS = {
    'numpy': 'python3-numpy', 'scipy': 'python3-scipy', 'cv2': 'python3-opencv',
    'yaml': 'python3-yaml', 'matplotlib': 'python3-matplotlib', 'pytest': 'python3-pytest',
    'psutil': 'python3-psutil',
}
#: Imported but deliberately not declared, with the reason.
NOT_DECLARED = {
    'torch': 'the user keeps their own CPU/CUDA/Jetson build (README, Install)',
    'onnx': 'only the optional export tool dsr_ros.export_onnx needs it',
    'tensorrt': 'optional GPU backend (backend: tensorrt): falls back to torch without it',
    'rosbags': 'training from bags (training/, pip): not part of the node',
}
LOCAL = {'dsr_ros', 'training', 'benchmarks', 'conftest', 'driver_bag'}


def imported_modules(paths: Iterable[Path]) -> Set[str]:
    """Top-level names of every module imported by the given Python files."""
    names: Set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split('.')[0])
    return {name for name in names if name not in sys.stdlib_module_names
            and name not in LOCAL and not name.startswith('test_')}


def declared() -> Dict[str, Set[str]]:
    root = ElementTree.parse(REPO / 'package.xml').getroot()
    kinds: Dict[str, Set[str]] = {}
    for element in root:
        if element.tag.endswith('depend'):
            kinds.setdefault(element.tag, set()).add(element.text.strip())
    return kinds


def _keys(modules: Set[str]) -> Set[str]:
    return {ROSDEP_KEYS.get(name, name) for name in modules if name not in NOT_DECLARED}


def test_exec_depends_are_exactly_the_runtime_imports():
    sources = list((REPO / 'dsr_ros').rglob('*.py')) + list((REPO / 'launch').glob('*.py'))
    expected = _keys(imported_modules(sources))
    if list((REPO / 'launch').glob('*.launch.xml')):
        expected.add('launch_xml')
    assert declared()['exec_depend'] == expected


def test_test_depends_cover_what_the_tests_import_beyond_the_runtime():
    runtime = declared()['exec_depend']
    tests = _keys(imported_modules((REPO / 'test').glob('*.py')))
    assert declared()['test_depend'] == tests - runtime


def test_no_other_dependency_kinds_and_no_pip_keys():
    kinds = declared()
    assert set(kinds) == {'exec_depend', 'test_depend'}
    for names in kinds.values():
        assert not any(name.endswith('-pip') for name in names), names
