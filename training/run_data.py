"""The data of a training run: its samples, its patch sets and how its depth is scaled.

:func:`load_data` reads the configured sources and keeps every held-out scene out of training;
:func:`build_datasets` turns the samples into the patch sets the loop of :mod:`training.trainer`
draws from; :func:`checkpoint_normalization` is the depth scaling a net trained with a config
expects, stored in every checkpoint it exports.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dsr_ros.depth_scaling import SENSOR_SCALING, DepthScaling
from training.config import ConfigError
from training.data.overlap import resolve_overlaps
from training.data.patches import PatchDataset
from training.data.sample import RGBDSample
from training.data.sensor_degradation import SensorDegradation

__all__ = ['build_datasets', 'checkpoint_normalization', 'load_data', 'load_source',
           'sensor_scaling', 'uses_cross_task']

LOGGER = logging.getLogger('training.train')


def build_datasets(config: Dict[str, Any], train: Sequence[RGBDSample],
                   val: Sequence[RGBDSample], cross_task: bool
                   ) -> Dict[str, Optional[PatchDataset]]:
    """The patch sets of a run: ``depth`` (every sample), ``rgb`` (RGB-D pairs), ``val``.

    ``depth`` feeds DSRNet in stage 1 and the DSRNet student in stage 2 (``mixed``); ``rgb``
    feeds DENet, and the stage-2 student when ``schedule.stage2_data`` is ``rgbd``.
    """
    data = config['data']
    common = dict(scale=config['scale'], patch_size=data['patch_size'],
                  min_valid_ratio=data['min_valid_ratio'], degradation=data['degradation'],
                  normalization=data['normalization'],
                  sensor=SensorDegradation.from_config(data['sensor']),
                  scaling=sensor_scaling(config), scaling_jitter=data['scaling_jitter'],
                  in_channels=int(config['dsrnet'].get('in_channels', 1)),
                  given_lr=bool(data.get('given_lr')))
    noise = dict(rotate180=data['rotate180'], noise_std=data['noise_std'],
                 hole_fraction=data['hole_fraction'])
    sets: Dict[str, Optional[PatchDataset]] = {
        'depth': PatchDataset(train, patches_per_epoch=data['patches_per_epoch'],
                              seed=config['seed'], **noise, **common),
        'rgb': None}
    if any(sample.rgb is not None for sample in train):
        sets['rgb'] = PatchDataset(train, require_rgb=True, seed=config['seed'] + 1,
                                   patches_per_epoch=data['rgb_patches_per_epoch']
                                   or data['patches_per_epoch'], **noise, **common)
    sets['val'] = PatchDataset(val, patches_per_epoch=data['val_patches'], rotate180=False,
                               require_rgb=cross_task, seed=config['seed'] + 2, **common)
    return sets


def uses_cross_task(config: Dict[str, Any], train: Sequence[RGBDSample],
                    val: Sequence[RGBDSample]) -> bool:
    """Whether DENet and SPNet are built: ``loss.distill`` and RGB-D data to train them on.

    Depth-only data trains DSRNet alone with the default config (said once, not an error).
    """
    if not config['loss']['distill']:
        return False
    if not any(sample.rgb is not None for sample in train):
        LOGGER.warning('no RGB-D pair among the training samples: training DSRNet alone '
                       '(loss.distill needs registered RGB)')
        return False
    if not any(sample.rgb is not None for sample in val):
        raise ConfigError('data.val has no RGB-D sample: DENet\'s held-out error (roles, '
                          'teacher gating) needs one; add one or set loss.distill: false')
    return True


def sensor_scaling(config: Dict[str, Any]) -> DepthScaling:
    """The configured ``data.scaling`` of sensor depth, or metres / 10 when there is none."""
    scaling = config['data'].get('scaling')
    return DepthScaling(**scaling) if scaling else SENSOR_SCALING


def checkpoint_normalization(config: Dict[str, Any]) -> Dict[str, Any]:
    """How a net trained with ``config`` expects its input scaled (stored in checkpoints).

    Sensor models: the configured :class:`DepthScaling` (metres / 10 by default). Research
    models: ``minmax`` is per-image min-max (``range`` 0-100); ``fixed`` is 8-bit disparity /
    255 (its other units were divided by each image's maximum, which no scaling reproduces).
    """
    data = config['data']
    if data['degradation'] == 'sensor':
        return sensor_scaling(config).to_dict()
    if data['normalization'] == 'fixed':
        return DepthScaling('fixed', max_value=255.0, unit='disparity_8bit').to_dict()
    return DepthScaling('range').to_dict()


def load_source(spec: Dict[str, Any]) -> List[RGBDSample]:
    """Samples of one data-source spec: procedural, or any reader of training.data."""
    if spec['type'] == 'synthetic':
        from training.data.synthetic import synthetic_samples
        return synthetic_samples(**{k: v for k, v in spec.items() if k != 'type'})
    if spec['type'] == 'rooms':
        from training.data.synthetic import room_samples
        return room_samples(**{k: v for k, v in spec.items() if k != 'type'})
    from training.data.readers import load_samples
    return load_samples(spec)


def load_data(config: Dict[str, Any]) -> Tuple[List[RGBDSample], List[RGBDSample], List[str]]:
    """Train and held-out samples, and the training names dropped for overlapping them.

    A held-out scene never trains under any name (:mod:`training.data.overlap`).
    """
    val = [s for spec in config['data']['val'] for s in load_source(spec)]
    if not val:
        raise ConfigError('data.val names no held-out samples; roles and model selection '
                          'need them')
    train = [s for spec in config['data']['train'] for s in load_source(spec)]
    train, dropped = resolve_overlaps(train, val)
    if not train:
        raise ConfigError('no training sample is left once the held-out scenes are removed')
    return train, val, dropped
