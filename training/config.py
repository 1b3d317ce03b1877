"""Training configuration: YAML files whose keys equal constructor and function arguments.

Unknown keys are refused (a typo must not silently fall back to a default), and every section
is merged over :data:`DEFAULTS`, so a config names only what it changes. A config may start
with ``base: other.yaml`` (a path relative to its own folder): it is then merged over that
file instead of near-copying it; lists (e.g. ``data.train``) are replaced, not appended.

:data:`DEFAULTS` follow the paper wherever it says something; every deviation from it is a
switch listed in :data:`PAPER_DEVIATIONS` (and in the table of docs/training.md).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import yaml

from dsr_ros.depth_scaling import DepthScaling
from training.data.sensor_degradation import SensorDegradation
from training.networks import STRUCTURE_KERNELS as _KERNELS
from training.weight_init import INITS

__all__ = ['ConfigError', 'DEFAULTS', 'OUTPUT_GATINGS', 'PAPER_DEVIATIONS', 'ROLE_POLICIES',
           'STAGE2_DATA', 'apply_overrides', 'config_chain', 'load_config', 'merge_config',
           'total_epochs']

ROLE_POLICIES = ('errors', 'dsr_student', 'alternate')
OUTPUT_GATINGS = ('none', 'pixel', 'error_ratio')
STAGE2_DATA = ('mixed', 'rgbd')
STRUCTURE_KERNELS = tuple(_KERNELS)
SPNET_SCHEDULES = ('stage2', 'global')
DISTILL_TARGETS = ('sides', 'final')
TEACHER_KINDS = ('denet', 'guided')
UNTRAINED_HEADS = ('error', 'warn')

DEFAULTS: Dict[str, Any] = {
    'name': 'unnamed',
    'seed': 0,
    # A DSRNet checkpoint to start from (warm start; 1-channel weights can start a 2-channel net)
    'init_weights': None,
    'scale': 4,
    'device': 'auto',
    'amp': True,
    'torch_threads': 0,
    'channels_last': True,
    'dsrnet': {'num_channels': 64, 'num_blocks': 5, 'global_residual': True, 'in_channels': 1,
               'residual_base': 'bicubic'},
    'denet': {'num_channels': 64, 'num_res_blocks': 2},
    # residual: a net with a global residual adds its base to its side outputs (ours)
    'side_outputs': {'hidden_channels': 32, 'residual': False},
    'spnet': {'num_channels': 64, 'num_layers': 5},
    # The net that teaches DSRNet: 'denet' (RGB only, the paper) or 'guided' (RGB + LR depth,
    # privileged information of training time; training/guided_teacher.py). Both use 'denet'.
    'teacher': 'denet',
    # The guided teacher's body reads (base - its mean) x this gain instead of the raw bicubic
    # base (None: the raw base); the raw base kept it at its base (training/guided_teacher.py).
    'teacher_depth_gain': None,
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
        # sensor + range scaling: widen each patch's range by a random factor up to this, so
        # the net sees edges at the contrast a whole frame's range gives them
        'scaling_jitter': 1.0,
        # train on each sample's own LR frame (lr_inputs[scale]: a bag's real LR/HR pairs,
        # training.finetune) instead of degrading the HR frame; needs degradation 'sensor'
        'given_lr': False,
        'noise_std': 0.0,
        'hole_fraction': 0.0,
        'num_workers': 0,
    },
    'optim': {'lr': 1.0e-3, 'betas': [0.9, 0.99], 'eps': 1.0e-8, 'lr_step_epochs': 50,
              'lr_gamma': 0.1, 'spnet_schedule': 'stage2',
              # linear learning-rate warm-up over each optimiser's first steps (0: none)
              'warmup_steps': 0,
              # DSRNet's (and the guided teacher's) initialisation: 'torch' (PyTorch's) or
              # 'residual' (true fan-in, residual head at zero; training/weight_init.py)
              'init': 'torch'},
    'schedule': {'stage1_epochs': 100, 'stage2_epochs': 100, 'role_policy': 'errors',
                 'stage2_data': 'mixed'},
    'loss': {'ssim_lambda': 0.2, 'gamma': 0.5, 'rho1': 0.1, 'rho2': 0.1, 'affinity_size': 32,
             'affinity_normalize': False, 'output_gating': 'none', 'structure_kernel': 'spsr',
             'side_weight': 0.0, 'distill': True, 'use_output': True, 'use_affinity': True,
             'use_spnet': True, 'dsr_l2_weight': 0.0,
             # L_O between the side outputs D^n (the paper) or the final outputs D
             'distill_target': 'sides', 'affinity_temperature': 1.0, 'affinity_center': False},
    # Run checks (training/stall.py, training/teacher_gate.py, CrossTaskModel.begin_epoch):
    # a held-out DSRNet error within stall_rel_tol of the residual base's flags the epoch;
    # teacher_gate refuses to distil from a teacher that does not beat a constant and a
    # per-image-median predictor and is not within teacher_max_ratio x the student's error
    # or, seeing the LR depth (the guided teacher), is not teacher_base_margin below its base;
    # untrained_heads: 'error' stops, 'warn' warns, when L_O would distil side outputs whose
    # heads never received a gradient.
    'checks': {'stall_rel_tol': 5.0e-3, 'teacher_gate': False, 'teacher_max_ratio': 4.0,
               'teacher_base_margin': 0.05, 'untrained_heads': 'warn'},
}

#: Every switch by which a run may deviate from the paper: ``key: (paper value, why ours
#: exists)``. The defaults above are the paper's values except where the paper is silent.
PAPER_DEVIATIONS: Dict[str, tuple] = {
    'loss.affinity_normalize': (False, 'cosine affinity (L2-normalised features); with raw '
                                       'features L_A can be ~0 on unnormalised nets'),
    'loss.affinity_size': (None, 'L_A on features pooled to at most P x P positions; the '
                                 'paper does not say how it fits (HW)^2 in memory'),
    'loss.output_gating': ('none', 'pixel: L_O only where the teacher is closer to the truth; '
                                   'error_ratio: L_O x min(1, e_student / e_teacher)'),
    'loss.side_weight': (0.0, 'GT supervision of the side outputs D^n in both stages (deep '
                              'supervision: our reading, the heads mean nothing untrained)'),
    'side_outputs.residual': (False, 'side outputs of a global-residual net add its base: '
                                     'absolute-depth heads kept DSRNet at the bicubic base'),
    'loss.distill_target': ('sides', 'final: L_O between the final outputs D_sr and D_de'),
    'loss.affinity_temperature': (1.0, 'softmax(R R^T / T): T < 1 on cosine affinity keeps '
                                       'rows from being uniform, raw products are one-hot'),
    'loss.affinity_center': (False, 'subtract each channel\'s mean over positions before the '
                                    'cosine: our features are 0.99-cosine alike everywhere'),
    'optim.warmup_steps': (0, 'linear lr warm-up over each optimiser\'s first steps (gentle '
                              'first steps; alone it did not unstick DSRNet, optim.init did)'),
    'optim.init': ('torch', 'residual: true-fan-in init, last conv zero: PyTorch\'s default '
                            'starves the x8 stack of signal and DSRNet sits at the bicubic base'),
    'checks.teacher_gate': (False, 'refuse to distil from a teacher no better than a '
                                   'constant / per-image median, or far worse than the '
                                   'student'),
    'loss.dsr_l2_weight': (0.0, 'L_DSR + w * mean squared error: hedges edges it cannot place '
                                '(RMSE), for the sensor models'),
    'loss.structure_kernel': ('spsr', 'half: central differences / 2 (halves S_gt)'),
    'schedule.role_policy': ('errors', 'dsr_student / alternate instead of "the better net '
                                       'teaches"'),
    'schedule.stage2_data': (None, 'mixed: stage-2 batches hold depth-only and RGB-D patches '
                                   'as in stage 1; rgbd: RGB-D pairs only'),
    'optim.spnet_schedule': ('stage2', 'global: SPNet\'s step schedule counts from epoch 0'),
    'data.normalization': ('fixed', 'minmax: per-patch min-max instead of / 255'),
}


class ConfigError(ValueError):
    """A configuration that cannot be used, with the file and the offending key."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``5e-4`` and ``1e3`` as numbers.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``lr: 5e-4``
    (or ``--set optim.lr=5e-4``) would be the *string* '5e-4' and fail deep inside Adam.
    """


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'),
    list('-+0123456789'))


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


#: Sections whose default is None (the owner's own defaults) and whose keys the owner checks:
#: a config that bases on another may add keys to them (``validate`` refuses unknown ones).
OPEN_SECTIONS = ('data.sensor', 'data.scaling')


def merge_config(base: Dict[str, Any], override: Dict[str, Any], where: str = '') -> Dict:
    """Deep-merge ``override`` into a copy of ``base``, refusing keys ``base`` lacks."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        path = f'{where}.{key}' if where else key
        if key not in base:
            raise ConfigError(f'unknown config key {path!r}; known: {sorted(base)}')
        if path in OPEN_SECTIONS and isinstance(base[key], dict) and isinstance(value, dict):
            merged[key] = {**base[key], **copy.deepcopy(value)}
        elif isinstance(base[key], dict) and isinstance(value, dict):
            merged[key] = merge_config(base[key], value, path)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f'config file {os.fspath(path)!r} does not exist')
    try:
        raw = _yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f'config file {os.fspath(path)!r} is not valid YAML: {error}') from error
    if not isinstance(raw, dict):
        raise ConfigError(f'config file {os.fspath(path)!r} must hold a mapping')
    return raw


def config_chain(path: Union[str, os.PathLike]) -> List[Path]:
    """The files a config is built from, the most basic first (follows ``base:`` keys)."""
    chain = [Path(path)]
    while True:
        base = _read_yaml(chain[-1]).get('base')
        if base is None:
            return chain[::-1]
        parent = (chain[-1].parent / str(base)).resolve()
        if parent in [p.resolve() for p in chain]:
            raise ConfigError(f'{os.fspath(chain[-1])}: base {base!r} makes a cycle')
        chain.append(parent)


def load_config(path: Union[str, os.PathLike],
                overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Read a YAML config (and its ``base:`` chain), merge it over the defaults, validate it.

    ``overrides`` are ``dotted.key=yaml_value`` strings applied last (see
    :func:`apply_overrides`), e.g. ``seed=1`` for another seed of the same arm.
    """
    config = copy.deepcopy(DEFAULTS)
    for file in config_chain(path):
        raw = _read_yaml(file)
        raw.pop('base', None)
        try:
            config = merge_config(config, raw)
        except ConfigError as error:
            raise ConfigError(f'{os.fspath(file)}: {error}') from error
    config = apply_overrides(config, overrides)
    config['data']['train'] = [_expand(spec) for spec in config['data']['train']]
    config['data']['val'] = [_expand(spec) for spec in config['data']['val']]
    validate(config, os.fspath(path))
    return config


def total_epochs(config: Dict[str, Any]) -> int:
    """Epochs of a config's whole schedule (stage 1 + stage 2)."""
    schedule = config['schedule']
    return int(schedule['stage1_epochs']) + int(schedule['stage2_epochs'])


def apply_overrides(config: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``a.b=value`` strings (value parsed as YAML) to a merged config; unknown keys fail."""
    for item in overrides:
        key, sep, text = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'override {item!r} is not KEY=VALUE (e.g. seed=1)')
        try:
            value = _yaml(text)
        except yaml.YAMLError as error:
            raise ConfigError(f'override {item!r}: value is not valid YAML ({error})') from error
        nested: Any = value
        for part in reversed(key.split('.')):
            nested = {part: nested}
        config = merge_config(config, nested)
    return config


def validate(config: Dict[str, Any], where: str = 'config') -> None:
    """Check values that would otherwise fail deep inside the training loop."""
    if config['scale'] not in (2, 4, 8, 16):
        raise ConfigError(f'{where}: scale must be 2, 4, 8 or 16, got {config["scale"]!r}')
    choices = {'schedule.role_policy': ROLE_POLICIES, 'schedule.stage2_data': STAGE2_DATA,
               'loss.output_gating': OUTPUT_GATINGS, 'loss.structure_kernel': STRUCTURE_KERNELS,
               'optim.spnet_schedule': SPNET_SCHEDULES,
               'loss.distill_target': DISTILL_TARGETS,
               'checks.untrained_heads': UNTRAINED_HEADS,
               'optim.init': INITS}
    for dotted, allowed in choices.items():
        section, key = dotted.split('.')
        if config[section][key] not in allowed:
            raise ConfigError(f'{where}: {dotted} must be one of {allowed}, got '
                              f'{config[section][key]!r}')
    if config['teacher'] not in TEACHER_KINDS:
        raise ConfigError(f'{where}: teacher must be one of {TEACHER_KINDS}, got '
                          f'{config["teacher"]!r}')
    gain = config['teacher_depth_gain']
    if gain is not None and not float(gain) > 0:
        raise ConfigError(f'{where}: teacher_depth_gain must be > 0 or null, got {gain!r}')
    if not float(config['loss']['affinity_temperature']) > 0:
        raise ConfigError(f'{where}: loss.affinity_temperature must be > 0')
    if int(config['optim']['warmup_steps']) < 0 or float(config['checks']['stall_rel_tol']) < 0:
        raise ConfigError(f'{where}: optim.warmup_steps and checks.stall_rel_tol must be >= 0')
    if not float(config['checks']['teacher_max_ratio']) > 0:
        raise ConfigError(f'{where}: checks.teacher_max_ratio must be > 0')
    if config['data']['patch_size'] % config['scale']:
        raise ConfigError(f'{where}: data.patch_size must be a multiple of scale')
    if not config['data']['train']:
        raise ConfigError(f'{where}: data.train names no data source')
    for section in ('stage1_epochs', 'stage2_epochs'):
        if int(config['schedule'][section]) < 0:
            raise ConfigError(f'{where}: schedule.{section} must be >= 0')
    # The open sections: their owners know their keys and ranges.
    try:
        SensorDegradation.from_config(config['data']['sensor'])
    except (TypeError, ValueError) as error:
        raise ConfigError(f'{where}: data.sensor: {error}') from error
    try:
        DepthScaling(**(config['data']['scaling'] or {}))
    except (TypeError, ValueError) as error:
        raise ConfigError(f'{where}: data.scaling: {error}') from error


def _expand(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Expand ``$VARS`` and ``~`` in path-like entries of a data-source spec."""
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ConfigError(f'a data source must be a mapping with a "type", got {spec!r}')
    expanded = dict(spec)
    for key in ('root', 'path'):
        if isinstance(expanded.get(key), str):
            expanded[key] = os.path.expanduser(os.path.expandvars(expanded[key]))
    return expanded
