"""The model the node runs: device, precision, and the checkpoint or shipped model to load.

Kept apart from the node because choosing and checking a model is most of start-up and has
nothing to do with topics: it reads the node's (already checked, see
:mod:`dsr_ros.ros.node_parameters`) parameters and logs through its logger, and fails with one
:class:`ModelError` line a user can act on (the node turns it into its start-up error).
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Tuple

import torch

from dsr_ros.checkpoint import CheckpointError
from dsr_ros.device import resolve_device
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.model_selection import choose_model
from dsr_ros.ros.node_parameters import RuntimeSettings, phase_problem, requested_precision
from dsr_ros.precision import PrecisionError, check_precision
from dsr_ros.weights import shipped_models, shipped_weights

__all__ = ['ModelError', 'load_model']

Build = Callable[[Path], DepthSuperResolver]


class ModelError(RuntimeError):
    """No usable model for these parameters (device, precision, weights); one line."""


def _param(node: Any, name: str) -> Any:
    return node.get_parameter(name).value


def load_model(node: Any, settings: RuntimeSettings,
               stop_event: threading.Event) -> Tuple[str, DepthSuperResolver]:
    """The weights path and the resolver for ``node``'s parameters, on the device they name.

    Raises :class:`ModelError` when the device, the precision or the checkpoint cannot serve;
    ``stop_event`` lets the node interrupt inference at shutdown.
    """
    precision = requested_precision(node)
    try:
        device = resolve_device(_param(node, 'device'))
    except ValueError as error:
        raise ModelError(str(error)) from error
    if precision == 'fp16' and device.type != 'cuda':
        node.get_logger().warning(f'fp16 (half) needs CUDA but the device is {device}; '
                                  'running in fp32')
        precision = 'fp32'
    try:
        check_precision(precision, device)
    except PrecisionError as error:
        raise ModelError(str(error)) from error
    threads = _param(node, 'torch_threads')
    if threads > 0:
        torch.set_num_threads(threads)

    def build(path: Path) -> DepthSuperResolver:
        try:
            resolver = DepthSuperResolver.from_checkpoint(
                path, device=str(device), precision=precision,
                channels_last=_param(node, 'channels_last'), backend=_param(node, 'backend'),
                stop_event=stop_event, **asdict(settings.options))
            if not resolver.input_scaling().accepts('m'):
                raise ValueError(f'its scaling ({resolver.input_scaling().describe()}) '
                                 'cannot take depth in metres; set normalization to '
                                 'range, minmax or fixed')
        except CheckpointError as error:
            raise ModelError(str(error)) from error
        except (RuntimeError, ValueError) as error:
            raise ModelError(f'cannot use checkpoint {str(path)!r} on {device} '
                             f'({precision}): {error}') from error
        if not resolver.metadata.get('weights_verified', True):
            node.get_logger().warning(
                f'{path} stores no weights SHA-256 (an older checkpoint): corruption '
                'cannot be detected; re-save it to add one')
        return resolver

    path, resolver = _select_model(node, build)
    problem = phase_problem(settings, resolver)
    if problem:
        raise ModelError(f'cannot use checkpoint {str(path)!r}: {problem}')
    return str(path), resolver


def _select_model(node: Any, build: Build) -> Tuple[Path, DepthSuperResolver]:
    """``weights_path`` if set, else the shipped model named by ``model`` and ``scale``.

    ``model: auto`` times the shipped sensor models of that scale on a frame of the
    expected size and keeps the largest that keeps up with ``expected_rate_hz``
    (:mod:`dsr_ros.model_selection`); the measurement is logged.
    """
    weights = _param(node, 'weights_path')
    if weights:
        path = Path(weights).expanduser()
        return path, build(path)
    size, scale = _param(node, 'model'), _param(node, 'scale')
    if size != 'auto':
        try:
            path = shipped_weights(size, scale)
        except ValueError as error:
            raise ModelError(str(error)) from error
        return path, build(path)
    candidates = shipped_models().get(scale, {})
    if not candidates:
        raise ModelError(f'no model: weights_path is empty and no sensor model is shipped '
                         f'for x{scale} (shipped scales: {sorted(shipped_models())}); '
                         'set weights_path to a DSRNet checkpoint')
    shape = (_param(node, 'expected_input_height'), _param(node, 'expected_input_width'))
    rate = _param(node, 'expected_rate_hz')
    choice, resolver = choose_model(candidates, build, shape, rate)
    log = node.get_logger().info if choice.keeps_up else node.get_logger().warning
    log(choice.describe(rate) + f' at {shape[1]}x{shape[0]} input')
    return choice.path, resolver
