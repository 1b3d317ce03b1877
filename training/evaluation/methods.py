"""What is evaluated: the rows of a table (a :class:`Method`) and the suite's three outputs.

Paper protocol: a :class:`Method` is a label, a predictor ``predict(lr, sample, scale) ->
(hr_prediction, forward_seconds)`` in the sample's unit, and the scales it can fill.

- ``bicubic`` = OpenCV INTER_CUBIC upsampling (a = -0.75) of the LR input (float, not
  rounded); ``bicubic_matlab`` = MATLAB's bicubic ``imresize`` (a = -0.5, uint8 output on 8-bit
  data, :mod:`training.matlab_resize`), which reproduces the paper's bicubic row.
- a checkpoint runs on the LR input prepared by :func:`dsr_ros.net_input.prepare_net_input`
  (the node's path: holes filled, mask channel for mask-aware nets) with the checkpoint's own
  scaling when it accepts the set's unit, otherwise the min-max of the LR input's valid pixels
  (e.g. a metric model on 8-bit disparity); the output is mapped back to the unit. Its scale
  decides the one column it fills.

Sensor suite: every frame is super-resolved by :meth:`DepthSuperResolver.run`, as the node runs
it, and compared with nearest and masked bicubic (:mod:`dsr_ros.baselines`) of the same LR frame.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from dsr_ros.baselines import upsample_bicubic, upsample_bicubic_masked, upsample_nearest
from dsr_ros.depth_io import valid_mask
from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.net_input import prepare_net_input
from dsr_ros.sampling_geometry import SamplingGeometry
from training.data.sample import RGBDSample
from training.evaluation.families import geometry_of_family

__all__ = ['BASELINES', 'METHODS', 'Method', 'bicubic_matlab_method', 'bicubic_method',
           'checkpoint_method', 'model_method', 'run_methods', 'run_told']

PathLike = Union[str, os.PathLike]
#: ``predict(lr, sample, scale) -> (hr_prediction, forward_seconds)``, in the sample's unit.
Predictor = Callable[[np.ndarray, RGBDSample, int], Tuple[np.ndarray, float]]
#: The suite's outputs of every frame: SR, and the baselines over the same pixels.
METHODS = ('sr', 'bicubic', 'nearest')


@dataclass
class Method:
    """A row of the table: a label, a predictor and the scales it can do (None = any)."""

    label: str
    predict: Predictor
    scales: Optional[Tuple[int, ...]] = None
    info: Dict[str, Any] = field(default_factory=dict)


def bicubic_method() -> Method:
    """OpenCV INTER_CUBIC upsampling of the LR input, the paper's baseline row."""
    def predict(lr: np.ndarray, sample: RGBDSample, scale: int) -> Tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = upsample_bicubic(lr, scale)
        return out, time.perf_counter() - start
    return Method('Bicubic', predict)


def bicubic_matlab_method() -> Method:
    """MATLAB-style bicubic (a = -0.5, uint8 result on 8-bit data): the paper's bicubic row."""
    from training.matlab_resize import imresize_bicubic

    def predict(lr: np.ndarray, sample: RGBDSample, scale: int) -> Tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = imresize_bicubic(lr, scale, to_uint8=sample.unit == 'disparity_8bit')
        return out.astype(np.float32), time.perf_counter() - start
    return Method('Bicubic (MATLAB)', predict, info={'kernel': 'cubic a=-0.5, uint8 output'})


#: Baseline rows by ``--method`` name.
BASELINES: Dict[str, Callable[[], Method]] = {'bicubic': bicubic_method,
                                              'bicubic_matlab': bicubic_matlab_method}


def model_method(model: Any, normalization: Dict[str, Any], label: str,
                 device: Optional[str] = None, tile_size: int = 0) -> Method:
    """A :class:`Method` for an in-memory DSRNet (e.g. the training loop's current net).

    ``device`` defaults to where the model already is, so a net training on CUDA is not moved;
    the memory format is left alone (``channels_last=False``).
    """
    if device is None:
        device = str(next(model.parameters()).device)
    resolver = DepthSuperResolver(model, normalization, device=device, tile_size=tile_size,
                                  channels_last=False)
    return _resolver_method(resolver, label, dict(normalization))


def checkpoint_method(path: PathLike, label: Optional[str] = None, device: str = 'cpu',
                      tile_size: int = 0) -> Method:
    """A :class:`Method` for a DSRNet checkpoint file (its scale is the only one it fills)."""
    resolver = DepthSuperResolver.from_checkpoint(path, device=device, tile_size=tile_size)
    info = {'path': os.fspath(path), 'normalization': resolver.scaling.to_dict(),
            'arch': resolver.metadata.get('arch'), 'scale': resolver.scale}
    return _resolver_method(resolver, label or Path(path).stem, info)


def _resolver_method(resolver: DepthSuperResolver, label: str, info: Dict[str, Any]) -> Method:
    scaling = resolver.scaling
    info = dict(info, normalization=scaling.to_dict())

    def predict(lr: np.ndarray, sample: RGBDSample, scale: int) -> Tuple[np.ndarray, float]:
        # Not valid_mask for relative depth: lu_rgbd6 maps each image's nearest point to 0,
        # a measurement there, not a hole (see training.data.readers.lu).
        valid = valid_mask(lr) if sample.unit != 'relative' else np.isfinite(lr)
        if not valid.any():
            raise ValueError('LR input has no valid pixel')
        unit = {'metre': 'm'}.get(sample.unit, sample.unit)
        # A metric model on disparity or relative depth: the LR input's own min-max range.
        used = scaling if scaling.accepts(unit) else DepthScaling('range')
        net_in, affine = prepare_net_input(lr, valid, used, resolver.in_channels, unit)
        start = time.perf_counter()
        out = resolver.run_prepared(net_in)
        seconds = time.perf_counter() - start
        return affine.inverse(out), seconds

    return Method(label, predict, (int(resolver.scale),), info)


# ---------------------------------------------------------------------------- sensor suite
def run_methods(resolver: DepthSuperResolver, lr: np.ndarray, scale: int,
                geometry: Optional[SamplingGeometry] = None) -> Dict[str, np.ndarray]:
    """SR (in ``geometry``, as the node runs it), bicubic, nearest."""
    return {'sr': resolver.run(lr, geometry=geometry),
            'bicubic': upsample_bicubic_masked(lr, scale),
            'nearest': upsample_nearest(lr, scale)}


def run_told(resolver: DepthSuperResolver, lr: np.ndarray,
             phase: Optional[Tuple[int, int]]) -> np.ndarray:
    """SR of ``lr`` told ``phase`` (None: unknown), as the node's sampling_phase does."""
    return resolver.run(lr, geometry=geometry_of_family('point', phase))
