"""Training configuration: YAML files whose keys equal constructor and function arguments.

Unknown keys are refused (a typo must not silently fall back to a default), and every section
is merged over :data:`DEFAULTS`, so a config names only what it changes.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict, Union

import yaml

__all__ = ['ConfigError', 'DEFAULTS', 'ROLE_POLICIES', 'load_config', 'merge_config']

ROLE_POLICIES = ('errors', 'dsr_student', 'alternate')

DEFAULTS: Dict[str, Any] = {
    'name': 'unnamed',
    'seed': 0,
    'scale': 4,
    'device': 'auto',
    'amp': True,
    'torch_threads': 0,
    'channels_last': True,
    'dsrnet': {'num_channels': 64, 'num_blocks': 5, 'global_residual': True, 'in_channels': 1},
    'denet': {'num_channels': 64, 'num_res_blocks': 2},
    'side_outputs': {'hidden_channels': 32},
    'spnet': {'num_channels': 64, 'num_layers': 5},
    'data': {
        'train': [],
        'val': [],
        'patch_size': 256,
        'patches_per_epoch': 10000,
        'rgb_patches_per_epoch': None,
        'val_patches': 64,
        'batch_size': 16,
        'min_valid_ratio': 0.9,
        'rotate180': True,
        'degradation': 'cubic',
        'normalization': 'minmax',
        # degradation 'sensor': ranges of training.data.sensor_degradation.SensorDegradation
        # (None = its documented defaults) and the depth scaling (None = metres / 10).
        'sensor': None,
        'scaling': None,
        'noise_std': 0.0,
        'hole_fraction': 0.0,
        'num_workers': 0,
    },
    'optim': {'lr': 1.0e-3, 'betas': [0.9, 0.99], 'eps': 1.0e-8, 'lr_step_epochs': 50,
              'lr_gamma': 0.1},
    'schedule': {'stage1_epochs': 100, 'stage2_epochs': 100, 'role_policy': 'errors'},
    'loss': {'ssim_lambda': 0.2, 'gamma': 0.5, 'rho1': 0.1, 'rho2': 0.1, 'affinity_size': 32,
             'affinity_normalize': True,
             'side_weight': 0.1, 'distill': True, 'use_output': True, 'use_affinity': True,
             'use_spnet': True},
}


class ConfigError(ValueError):
    """A configuration that cannot be used, with the file and the offending key."""


def merge_config(base: Dict[str, Any], override: Dict[str, Any], where: str = '') -> Dict:
    """Deep-merge ``override`` into a copy of ``base``, refusing keys ``base`` lacks."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        path = f'{where}.{key}' if where else key
        if key not in base:
            raise ConfigError(f'unknown config key {path!r}; known: {sorted(base)}')
        if isinstance(base[key], dict) and isinstance(value, dict):
            merged[key] = merge_config(base[key], value, path)
        else:
            merged[key] = value
    return merged


def load_config(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read a YAML config, merge it over the defaults and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'config file {os.fspath(path)!r} does not exist')
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f'config file {os.fspath(path)!r} is not valid YAML: {error}') from error
    if not isinstance(raw, dict):
        raise ConfigError(f'config file {os.fspath(path)!r} must hold a mapping')
    try:
        config = merge_config(DEFAULTS, raw)
    except ConfigError as error:
        raise ConfigError(f'{os.fspath(path)}: {error}') from error
    config['data']['train'] = [_expand(spec) for spec in config['data']['train']]
    config['data']['val'] = [_expand(spec) for spec in config['data']['val']]
    validate(config, os.fspath(path))
    return config


def validate(config: Dict[str, Any], where: str = 'config') -> None:
    """Check values that would otherwise fail deep inside the training loop."""
    if config['scale'] not in (2, 4, 8, 16):
        raise ConfigError(f'{where}: scale must be 2, 4, 8 or 16, got {config["scale"]!r}')
    if config['schedule']['role_policy'] not in ROLE_POLICIES:
        raise ConfigError(f'{where}: schedule.role_policy must be one of {ROLE_POLICIES}')
    if config['data']['patch_size'] % config['scale']:
        raise ConfigError(f'{where}: data.patch_size must be a multiple of scale')
    if not config['data']['train']:
        raise ConfigError(f'{where}: data.train names no data source')
    for section in ('stage1_epochs', 'stage2_epochs'):
        if int(config['schedule'][section]) < 0:
            raise ConfigError(f'{where}: schedule.{section} must be >= 0')


def _expand(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Expand ``$VARS`` and ``~`` in path-like entries of a data-source spec."""
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ConfigError(f'a data source must be a mapping with a "type", got {spec!r}')
    expanded = dict(spec)
    for key in ('root', 'path'):
        if isinstance(expanded.get(key), str):
            expanded[key] = os.path.expanduser(os.path.expandvars(expanded[key]))
    return expanded
