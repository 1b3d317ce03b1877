"""Which model a fine-tune starts from, the recipe it was trained with, and the export.

Every checkpoint this project writes carries the merged config of the run that made it
(``metadata['config']``): the loss, degradation, patch size, learning rate and scaling that
produced those weights. A fine-tune reuses that recipe rather than a config file that may have
changed since, and replaces only what a fine-tune must: the data (the user's bags), the warm
start (these weights) and the schedule (a time budget of short epochs at the recipe's rate).

The export inherits what the node reads from the starting model, not from the recipe: the
``normalization`` (a tiny model's ``fit_tile`` 0 was set after training, so the recipe still
says 32) and ``sampling`` (the measured point alignment, checked on the held-out frames).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from dsr_ros.checkpoint import load_checkpoint, save_checkpoint
from dsr_ros.networks import DSRNet
from dsr_ros.weights import DEFAULT_WEIGHTS_NAME, MODEL_SIZES, shipped_models, shipped_weights
from training.config import DEFAULTS, ConfigError, validate

__all__ = ['file_sha256', 'recipe_config', 'resolve_model', 'write_node_checkpoint']

LOGGER = logging.getLogger('training.finetune')
#: The rung the node uses by default (dsr_ros.weights.DEFAULT_WEIGHTS_NAME: lite).
DEFAULT_SIZE = DEFAULT_WEIGHTS_NAME.split('_')[2]


def resolve_model(model: Optional[str], scale: Optional[int]) -> Path:
    """A shipped rung name (``tiny``, ``lite``, ``paper``) at ``scale``, or a checkpoint path;
    by default the node's default rung at that scale (the smallest shipped one if it has none).
    """
    scale = int(scale or 4)
    if model is None:
        sizes = shipped_models().get(scale, {})
        if not sizes:
            raise ConfigError(f'no shipped model for x{scale}; pass --model PATH.pt')
        return sizes.get(DEFAULT_SIZE) or next(iter(sizes.values()))
    if model in MODEL_SIZES:
        try:
            return shipped_weights(model, scale)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f'--model {model!r} is neither a shipped model '
                          f'({", ".join(MODEL_SIZES)}) nor a checkpoint file')
    return path


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _known(defaults: Dict[str, Any], config: Dict[str, Any], where: str = '') -> Dict[str, Any]:
    """``config`` over ``defaults``, leaving out keys this version no longer knows (logged):
    an older checkpoint's recipe must still start a fine-tune."""
    merged = copy.deepcopy(defaults)
    for key, value in config.items():
        path = f'{where}.{key}' if where else key
        if key not in defaults:
            LOGGER.info('recipe key %s is not used by this version; ignored', path)
        elif isinstance(defaults[key], dict) and isinstance(value, dict) and path not in (
                'data.sensor', 'data.scaling'):
            merged[key] = _known(defaults[key], value, path)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def recipe_config(start: Path, metadata: Dict[str, Any], *, train_specs: list, val_specs: list,
                  epoch_patches: int, max_epochs: int, seed: int, threads: int,
                  device: str, given_lr: bool = False) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The fine-tune's config from the starting checkpoint's recipe, and what was changed;
    ``given_lr``: train on the bags' real LR frames instead of the recipe's sensor model."""
    recipe = metadata.get('config') or {}
    if not recipe.get('data'):
        raise ConfigError(f'{start} records no training config (metadata "config"), so its '
                          'recipe is unknown; start from a shipped model or one trained here')
    config = _known(DEFAULTS, recipe)
    arch = metadata['arch']
    changes = {
        'name': f'finetune_{start.stem}', 'seed': seed, 'init_weights': str(start.resolve()),
        'scale': int(metadata['scale']), 'device': device, 'torch_threads': threads,
        'dsrnet': {key: arch[key] for key in ('num_channels', 'num_blocks', 'in_channels',
                                              'global_residual', 'residual_base') if key in arch},
        'data': {'train': train_specs, 'val': val_specs, 'num_workers': 0,
                 'patches_per_epoch': int(epoch_patches), 'rgb_patches_per_epoch': None,
                 'given_lr': bool(given_lr)},
        # A constant rate (the recipe's) over short epochs until the budget is spent.
        'schedule': {'stage1_epochs': int(max_epochs), 'stage2_epochs': 0},
        'optim': {'lr_step_epochs': int(max_epochs) + 1},
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            config[key] = dict(config[key], **value)
        else:
            config[key] = value
    validate(config, f'the recipe of {start}')
    return config, changes


def write_node_checkpoint(path: Path, model: DSRNet, start_meta: Dict[str, Any],
                          provenance: Dict[str, Any], metrics: Dict[str, Any],
                          config: Dict[str, Any],
                          sampling: Optional[Dict[str, Any]] = None) -> Path:
    """A node-ready checkpoint of ``model`` with the starting model's normalization (fit_tile
    included) and ``sampling`` (default: the starting model's, unchanged)."""
    chosen = start_meta.get('sampling') if sampling is None else sampling
    return save_checkpoint(path, model, normalization=start_meta['normalization'],
                           provenance=provenance, metrics=metrics, config=config,
                           sampling=chosen)


def load_start(path: Path) -> Tuple[DSRNet, Dict[str, Any]]:
    """The starting checkpoint through the node's own loader (every check it makes)."""
    return load_checkpoint(path)
