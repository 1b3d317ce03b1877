"""Every config in training/configs runs from a fresh clone.

A config that starts from a ``runs/`` or ``results/`` checkpoint, or reads data from a folder a
clone does not have, can be neither re-run nor reviewed: each one here is loaded with the
project's loader (its ``base:`` chain resolved), its start checkpoint must be a file the
repository ships (or none), its data must come from ``../shared/data`` or be generated, and its
model must build (which also loads the start weights into the net the config describes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.config import config_chain, load_config
from training.model import CrossTaskModel

from conftest import REPO

CONFIGS = REPO / 'training' / 'configs'
SHIPPED = REPO / 'dsr_ros' / 'weights'
SHARED_DATA = REPO.parent / 'shared' / 'data'
#: Data-source types made by the project's code (no files to read).
GENERATED = {'synthetic', 'rooms'}
#: ``base:`` chains stay shallow, so that a config reads as its recipe: the shipped models'
#: recipes are flat, the research scales base on ``paper_x4``, and an ablation arm is written as
#: its difference from the arm it forks from (stage 1 -> full arm -> reference arm).
MAX_CHAIN = {'sensor_': 1, 'ablation_': 3}
ALL = sorted(CONFIGS.glob('*.yaml'))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def test_the_folder_holds_the_recipes_of_every_shipped_sensor_model():
    shipped = {p.stem.replace('dsrnet_', '') for p in SHIPPED.glob('dsrnet_sensor_*.pt')}
    assert shipped and shipped <= {p.stem for p in ALL}


@pytest.mark.parametrize('path', ALL, ids=lambda p: p.stem)
def test_config_resolves_and_starts_from_what_a_clone_has(path, monkeypatch):
    monkeypatch.chdir(REPO)  # paths in configs are relative to the repository root
    most = next((n for prefix, n in MAX_CHAIN.items() if path.stem.startswith(prefix)), 2)
    assert len(config_chain(path)) <= most, 'flatten the base: chain'
    config = load_config(path)
    assert config['name'] == path.stem
    assert config['data']['patch_size'] % config['scale'] == 0
    assert config['data']['val'], 'held-out data is needed for roles and model selection'
    start = config['init_weights']
    if start is not None:
        assert _inside(REPO / start, SHIPPED), f'init_weights {start!r} is not a shipped file'
        assert (REPO / start).is_file(), start
    for spec in config['data']['train'] + config['data']['val']:
        if spec['type'] in GENERATED:
            continue
        root = REPO / (spec.get('root') or spec.get('path') or '')
        assert _inside(root, SHARED_DATA), f'{spec} is not under ../shared/data'
        if SHARED_DATA.parent.is_dir():
            assert root.exists(), f'{root} is missing from ../shared'


@pytest.mark.parametrize('path', ALL, ids=lambda p: p.stem)
def test_config_builds_its_model(path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(path)
    model = CrossTaskModel(config, torch.device('cpu'), cross_task=config['loss']['distill'])
    assert model.dsrnet.scale == config['scale']
    assert model.dsrnet.num_channels == config['dsrnet']['num_channels']
