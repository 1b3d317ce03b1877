"""The repository stays lean: no large tracked file outside an allow-list, a bounded tree.

Every clone pulls every tracked file, so size is a cost each user pays. The shipped weights
(``dsr_ros/weights/*.pt``) and the fair ablation's fp16 nets
(``results/ablation_fair/**/dsrnet.pt``) are the only files allowed over 1 MB; the tracked
tree must stay under 100 MB, and tracked figures under 300 KB (downscale, crop or JPEG them).
Run checkpoints belong in ``runs/`` (ignored), not in ``results/``.

Only files that exist on disk are counted: a file deleted but not yet committed still appears
in ``git ls-files`` and must not fail the check. Outside a git checkout (an installed package,
a source tarball) there is nothing to check, and the tests skip saying so.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path, PurePosixPath
from typing import Dict

import pytest
from conftest import REPO

MAX_FILE_BYTES = 1 << 20
MAX_TREE_BYTES = 100 << 20
MAX_FIGURE_BYTES = 300 << 10
FIGURE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp')


def tracked_sizes() -> Dict[str, int]:
    """Size in bytes of every tracked regular file present on disk, by repository path."""
    if shutil.which('git') is None:
        pytest.skip('git is not installed: cannot list tracked files')
    top = subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--show-toplevel'],
                         capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO.resolve():
        pytest.skip(f'{REPO} is not the root of a git checkout: no tracked files to check')
    listed = subprocess.run(['git', '-C', str(REPO), 'ls-files', '-z'], capture_output=True,
                            check=True)
    sizes = {}
    for name in listed.stdout.decode('utf-8', 'surrogateescape').split('\0'):
        if not name:
            continue
        try:
            info = (REPO / name).lstat()
        except FileNotFoundError:
            continue  # deleted in the working tree, not yet committed
        if stat.S_ISREG(info.st_mode):
            sizes[name] = info.st_size
    return sizes


def allowed_large(name: str) -> bool:
    """Whether a tracked file may exceed MAX_FILE_BYTES: the shipped weights and the fair
    ablation's nets."""
    path = PurePosixPath(name)
    if str(path.parent) == 'dsr_ros/weights' and path.suffix == '.pt':
        return True
    return name.startswith('results/ablation_fair/') and path.name == 'dsrnet.pt'


def _megabytes(size: int) -> str:
    return f'{size / (1 << 20):.1f} MB'


def test_allow_list_names_what_it_should():
    assert allowed_large('dsr_ros/weights/dsrnet_sensor_lite_x4.pt')
    assert allowed_large('results/ablation_fair/full/seed0/dsrnet.pt')
    assert not allowed_large('dsr_ros/weights/sub/dsrnet_sensor_lite_x4.pt')
    assert not allowed_large('results/gpu_round2/lite_x4_l1.pt')
    assert not allowed_large('results/ablation_x8/full/seed0/dsrnet.pt')
    assert not allowed_large('results/ablation_fair/full/seed0/best_dsrnet.pt')


def test_no_large_tracked_file_outside_the_allow_list():
    sizes = tracked_sizes()
    assert sizes, 'git ls-files listed no file present on disk'
    large = {name: size for name, size in sizes.items()
             if size > MAX_FILE_BYTES and not allowed_large(name)}
    assert not large, ('tracked files over 1 MB outside the allow-list (shipped weights, '
                       'results/ablation_fair/**/dsrnet.pt): '
                       + ', '.join(f'{name} ({_megabytes(size)})'
                                   for name, size in sorted(large.items())))


def test_tracked_tree_is_under_100_mb():
    sizes = tracked_sizes()
    total = sum(sizes.values())
    biggest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    assert total <= MAX_TREE_BYTES, (
        f'tracked tree is {_megabytes(total)}, over {_megabytes(MAX_TREE_BYTES)}; largest: '
        + ', '.join(f'{name} ({_megabytes(size)})' for name, size in biggest))


def test_tracked_figures_are_under_300_kb():
    figures = {name: size for name, size in tracked_sizes().items()
               if name.lower().endswith(FIGURE_SUFFIXES) and size > MAX_FIGURE_BYTES}
    assert not figures, ('tracked figures over 300 KB (downscale, crop or save as JPEG): '
                         + ', '.join(f'{name} ({size >> 10} KB)'
                                     for name, size in sorted(figures.items())))
