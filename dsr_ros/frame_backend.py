"""Which implementation runs a resolver's frames: the numpy or the torch pipeline, and the net
through eager torch, a CUDA graph or a TensorRT engine.

Why one place: :class:`dsr_ros.inference.DepthSuperResolver` keeps one ``run``; the choice of
how a frame is computed is made once, at construction, and said in one line for the log.

* ``frame_pipeline``: ``numpy`` (the host path, the CPU default), ``torch``
  (:mod:`dsr_ros.frame_pipeline_torch`: every step on the resolver's device, one copy each
  way) or ``auto`` (torch on CUDA, numpy elsewhere). Tests force ``torch`` on a CPU.
* ``backend``: ``torch`` (the model), ``tensorrt`` (:mod:`dsr_ros.tensorrt_backend`; falls back
  to torch with one line when TensorRT is missing, the device is not CUDA or a build fails) or
  ``auto`` (TensorRT where it imports on CUDA, torch otherwise, said in the line). TensorRT
  replaces only the net inside the torch pipeline.
* ``cuda_graphs``: on CUDA with the torch net, the whole frame between the two copies (the
  pipeline's ``device_frame``: validity, fill, fits, tiles, net, blend, move, encoding) is
  replayed from one CUDA graph per frame shape and settings (:mod:`dsr_ros.cuda_graphs`):
  a frame is then one copy in, one launch and one copy out, instead of some 150 small kernels
  each waiting for Python to issue it. Under a memory budget (``max_memory_mb``) frames run
  eagerly, since the budget may retile them. With TensorRT the engine's own launch is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dsr_ros.cuda_graphs import CudaGraphRunner
from dsr_ros.frame_encoding import SuperResolved
from dsr_ros.frame_pipeline_torch import TorchFramePipeline
from dsr_ros.tensorrt_backend import BACKENDS, import_tensorrt, report_probe, tensorrt_forward

__all__ = ['BACKENDS', 'FRAME_PIPELINES', 'FrameBackend', 'configure_frames']

#: Values of the resolver's ``frame_pipeline`` argument.
FRAME_PIPELINES = ('auto', 'numpy', 'torch')


@dataclass
class FrameBackend:
    """The resolved choice: ``pipeline`` (``numpy``/``torch``), ``backend`` (``torch``/
    ``tensorrt``), the one ``line`` that says so, and the torch pipeline when it runs."""

    pipeline: str
    backend: str
    line: str
    torch_frames: Optional[TorchFramePipeline] = None

    def run(self, depth: np.ndarray, max_depth: Optional[float], geometry: Any,
            options: Any = None, dtype: Optional[np.dtype] = None) -> SuperResolved:
        """One frame through the torch pipeline (and, after a new TensorRT engine, its error
        against torch in mm, logged once)."""
        output = self.torch_frames.resolve(depth, max_depth, geometry, options, dtype)
        if self.backend == 'tensorrt':
            report_probe(self.torch_frames, output.depth, depth, max_depth, geometry,
                         options=options, dtype=dtype)
        return output

    def numpy_fallback(self, error: BaseException) -> 'FrameBackend':
        """The numpy pipeline, for good, after the torch one failed on a frame: a device
        path that breaks (a driver, a capture) must cost speed, not frames."""
        return FrameBackend('numpy', 'torch', f'frames: the torch pipeline failed '
                            f'({type(error).__name__}: {error}); numpy pipeline from now on')


def configure_frames(resolver: Any, frame_pipeline: str = 'auto', backend: str = 'torch',
                     cuda_graphs: bool = True, engine_cache: Optional[Path] = None
                     ) -> FrameBackend:
    """Resolve the arguments for ``resolver`` (already on its device, precision chosen)."""
    if frame_pipeline not in FRAME_PIPELINES:
        raise ValueError(f'frame_pipeline must be one of {FRAME_PIPELINES}, got '
                         f'{frame_pipeline!r}')
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    cuda = resolver.device.type == 'cuda'
    if frame_pipeline == 'numpy' and backend == 'tensorrt':
        raise ValueError('backend tensorrt runs inside the torch frame pipeline; use '
                         'frame_pipeline auto or torch')
    pipeline = 'torch' if frame_pipeline == 'torch' or (frame_pipeline == 'auto' and cuda) \
        else 'numpy'
    if pipeline == 'numpy':
        note = '' if backend == 'torch' else f' (backend {backend}: torch, no CUDA device)'
        return FrameBackend('numpy', 'torch', f'frames: numpy pipeline, torch net{note}')
    frames = TorchFramePipeline(resolver)
    chosen, why, graphs = 'torch', '', ''
    if backend == 'tensorrt' or (backend == 'auto' and cuda and import_tensorrt()[0]):
        eager = frames.net_forward
        trt_forward, why = tensorrt_forward(resolver.model, resolver.device, resolver.precision,
                                            eager, cache_dir=engine_cache)
        if trt_forward is not eager:
            frames.net_forward, chosen = trt_forward, 'tensorrt'
    elif backend == 'auto':
        why = 'backend auto: torch (TensorRT needs CUDA and the tensorrt package)'
    if cuda_graphs and cuda and chosen == 'torch':
        # Two graphs at most: each keeps a whole frame's activations in its own pool.
        frames.frame_graphs = CudaGraphRunner(None, resolver.device, max_graphs=2,
                                              clone_output=False)
        graphs = ', each frame one CUDA graph'
    line = (f'frames: torch pipeline on {resolver.device}, {chosen} net '
            f'({resolver.precision}){graphs}') + (f'; {why}' if why else '')
    return FrameBackend('torch', chosen, line, frames)
