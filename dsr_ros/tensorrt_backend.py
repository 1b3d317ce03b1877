"""Optional TensorRT backend: the net's forward as an engine built for the camera's shape.

Why: the ROS 2 learned-depth nodes users compare with ship a TensorRT path, and on a Jetson it
is what users ask for first. The engine replaces only the net: every other step of a frame
stays in :mod:`dsr_ros.frame_pipeline_torch`, on the same device, so TensorRT sees the same
normalised, hole-filled input tensors the torch net sees.

* **Build**: per input shape ``(N, C, h, w)`` (a camera's frame gives one; with per-tile
  scaling ``N`` is the number of tiles), the net is exported to ONNX
  (:func:`dsr_ros.export_onnx.export_onnx`, fixed shape) and built by TensorRT's ONNX parser in
  the resolver's precision. In fp16/bf16 the bicubic ``Resize`` of the global residual and the
  layer producing the output are asked to stay fp32 (as torch's autocast keeps them), since a
  depth of metres in 16 bits moves by millimetres.
* **Cache**: engines are kept on disk (``DSR_ROS_ENGINE_CACHE``, else
  ``$XDG_CACHE_HOME/dsr_ros/tensorrt``, else ``~/.cache/dsr_ros/tensorrt``) under a name
  derived from :class:`EngineKey`: the SHA-256 of the net's weights and architecture, the
  input shape, the precision, the GPU's name and the TensorRT version. A change in any of them
  builds a new engine; a file that no longer deserialises is rebuilt.
* **Error against torch**: the first frame of each new shape is also run through the torch
  net and the difference of the two encoded outputs is logged in mm
  (:func:`report_probe`).
* **Fallback**: without an importable ``tensorrt`` (it is not a requirement: it comes with
  JetPack or NVIDIA's wheels), off CUDA, or when a build fails, the torch forward runs and
  one line says why.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from dsr_ros.atomic_io import atomic_write, atomic_write_text

__all__ = ['BACKENDS', 'EngineKey', 'TensorRTForward', 'default_cache_dir', 'engine_key',
           'import_tensorrt', 'output_error_mm', 'report_probe', 'tensorrt_forward',
           'weights_sha256']

LOGGER = logging.getLogger(__name__)

#: Values of the resolver's ``backend`` argument (and the node's ``backend`` parameter).
BACKENDS = ('torch', 'tensorrt', 'auto')
#: TensorRT's builder workspace limit.
WORKSPACE_BYTES = 1 << 30

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; equal keys may share an engine file."""

    weights_sha256: str
    shape: Tuple[int, ...]
    precision: str
    gpu: str
    tensorrt: str

    def filename(self) -> str:
        """``dsrnet-<sha 12>-<N>x<C>x<h>x<w>-<precision>-<gpu>-trt<version>-<digest 8>.engine``:
        readable, and unique through the digest of the whole key."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        gpu = re.sub(r'[^A-Za-z0-9]+', '-', self.gpu).strip('-').lower() or 'gpu'
        shape = 'x'.join(str(v) for v in self.shape)
        return (f'dsrnet-{self.weights_sha256[:12]}-{shape}-{self.precision}-{gpu}-'
                f'trt{self.tensorrt}-{digest[:8]}.engine')


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a net's architecture and weights (names, dtypes, shapes, bytes), independent
    of its device and memory format: the engine cache's idea of "the same net"."""
    digest = hashlib.sha256()
    arch = model.arch_kwargs() if hasattr(model, 'arch_kwargs') else type(model).__name__
    digest.update(json.dumps(arch, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to('cpu').contiguous()
        digest.update(f'{name}|{value.dtype}|{tuple(value.shape)}|'.encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def engine_key(model: torch.nn.Module, shape: Tuple[int, ...], precision: str, gpu: str,
               tensorrt_version: str) -> EngineKey:
    """The :class:`EngineKey` of ``model`` built for input ``shape``."""
    return EngineKey(weights_sha256(model), tuple(int(v) for v in shape), str(precision),
                     str(gpu), str(tensorrt_version))


def default_cache_dir() -> Path:
    """Where engines are kept (see the module docstring)."""
    explicit = os.environ.get('DSR_ROS_ENGINE_CACHE')
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'dsr_ros' / 'tensorrt'


def import_tensorrt() -> Tuple[Any, str]:
    """``(tensorrt module, '')``, or ``(None, why not)`` in a few words."""
    try:
        import tensorrt  # noqa: PLC0415 - optional, imported only when asked for
    except Exception as error:  # noqa: BLE001 - ImportError, or a broken CUDA install
        return None, f'tensorrt is not importable ({type(error).__name__}: {error})'
    return tensorrt, ''


def tensorrt_forward(model: torch.nn.Module, device: torch.device, precision: str,
                     fallback: Forward, cache_dir: Optional[Path] = None,
                     trt: Any = None) -> Tuple[Forward, str]:
    """``(forward, line)``: a :class:`TensorRTForward`, or ``fallback`` and the one line saying
    why TensorRT is not used (also logged as a warning)."""
    device = torch.device(device)
    why = ''
    if trt is None:
        trt, why = import_tensorrt()
    if trt is not None and device.type != 'cuda':
        why = f'TensorRT needs a CUDA device, the resolver runs on {device}'
    if why:
        line = f'backend tensorrt unavailable: {why}; using torch'
        LOGGER.warning(line)
        return fallback, line
    forward = TensorRTForward(model, device, precision, fallback, cache_dir=cache_dir, trt=trt)
    return forward, (f'backend tensorrt: TensorRT {trt.__version__} on {forward.gpu}, engines '
                     f'in {forward.cache_dir}')


class TensorRTForward:
    """A net forward through TensorRT engines, one per input shape, torch where a build fails.

    Called like the torch forward: ``(N, C, h, w)`` float32 on the device -> ``(N, 1, h s,
    w s)`` float32. ``pending_probe`` names the shape whose engine was made during the last
    call, until :func:`report_probe` has compared it with torch.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str,
                 fallback: Forward, *, cache_dir: Optional[Path] = None, trt: Any = None,
                 gpu: Optional[str] = None) -> None:
        if trt is None:
            trt, why = import_tensorrt()
            if trt is None:
                raise RuntimeError(why)
        self.trt = trt
        self.model = model
        self.device = torch.device(device)
        self.precision = precision
        self.fallback = fallback
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.gpu = gpu or torch.cuda.get_device_name(self.device)
        self._engines: Dict[Tuple[int, ...], Optional[_Engine]] = {}
        self.pending_probe: Optional[Tuple[int, ...]] = None
        #: Per shape: the probe's error against torch (mm), once measured.
        self.reports: Dict[Tuple[int, ...], Dict[str, float]] = {}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        shape = tuple(batch.shape)
        if shape not in self._engines:
            self._engines[shape] = self._engine_for(shape)
            if self._engines[shape] is not None:
                self.pending_probe = shape
        engine = self._engines[shape]
        return self.fallback(batch) if engine is None else engine(batch)

    def _engine_for(self, shape: Tuple[int, ...]) -> Optional['_Engine']:
        key = engine_key(self.model, shape, self.precision, self.gpu, self.trt.__version__)
        path = self.cache_dir / key.filename()
        if path.exists():
            try:
                engine = _Engine(self.trt, path.read_bytes(), self.device)
                LOGGER.info('TensorRT engine for %s loaded from %s', _shape_text(shape), path)
                return engine
            except Exception as error:  # noqa: BLE001 - stale or corrupt: rebuild it
                LOGGER.warning('TensorRT engine %s unusable (%s); rebuilding', path, error)
        try:
            blob = self._build(shape)
            engine = _Engine(self.trt, blob, self.device)
        except Exception as error:  # noqa: BLE001 - any build failure means: use torch
            LOGGER.warning('backend tensorrt: engine build failed for input %s %s (%s: %s); '
                           'using torch', _shape_text(shape), self.precision,
                           type(error).__name__, str(error).splitlines()[0] if str(error) else '')
            return None
        try:
            atomic_write(path, lambda name: Path(name).write_bytes(blob))
            atomic_write_text(path.with_suffix('.json'), json.dumps(asdict(key), indent=1))
        except OSError as error:
            LOGGER.warning('TensorRT engine not cached in %s (%s)', self.cache_dir, error)
        LOGGER.info('TensorRT engine for %s built and cached as %s', _shape_text(shape), path)
        return engine

    def _build(self, shape: Tuple[int, ...]) -> bytes:
        from dsr_ros.export_onnx import export_onnx
        batch, _, height, width = shape
        with tempfile.TemporaryDirectory(prefix='dsr_trt_') as folder:
            onnx_path = Path(folder) / 'dsrnet.onnx'
            # export_onnx moves the model it is given to the CPU: give it a copy.
            export_onnx(copy.deepcopy(self.model), onnx_path, height=height, width=width,
                        batch=batch)
            return build_serialized_engine(self.trt, onnx_path, self.precision)


def build_serialized_engine(trt: Any, onnx_path: Path, precision: str,
                            workspace_bytes: int = WORKSPACE_BYTES) -> bytes:
    """An ONNX file -> a serialised TensorRT engine in ``precision`` (raises with the parser's
    or builder's reason)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH', None)
    if explicit is not None and int(str(trt.__version__).split('.')[0]) < 10:
        flags = 1 << int(explicit)  # TensorRT 8.x needs it for ONNX; 10 has nothing else
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f'ONNX parser: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision in ('fp16', 'bf16'):
        flag = getattr(trt.BuilderFlag, precision.upper(), None)
        if flag is None:
            raise RuntimeError(f'TensorRT {trt.__version__} has no {precision}')
        config.set_flag(flag)
        _keep_depth_in_fp32(trt, network, config)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError('the builder returned no engine (its log says why)')
    return bytes(serialized)


def _keep_depth_in_fp32(trt: Any, network: Any, config: Any) -> None:
    """Ask for fp32 in the bicubic residual and the output layer (autocast keeps them fp32)."""
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        produces_output = any(layer.get_output(j).name in outputs
                              for j in range(layer.num_outputs))
        if layer.type == trt.LayerType.RESIZE or produces_output:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
    flag = getattr(trt.BuilderFlag, 'PREFER_PRECISION_CONSTRAINTS', None)
    if flag is not None:
        config.set_flag(flag)


class _Engine:
    """One deserialised engine and its execution context, run on torch's current stream."""

    def __init__(self, trt: Any, blob: bytes, device: torch.device) -> None:
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise RuntimeError('engine does not deserialise with this TensorRT and GPU')
        self.context = self.engine.create_execution_context()
        self.device = device
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names
                  if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f'expected one input and one output, got {inputs} / {outputs}')
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.output_shape = tuple(self.engine.get_tensor_shape(self.output_name))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(torch.float32).contiguous()
        out = torch.empty(self.output_shape, dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.input_name, batch.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError('TensorRT execution failed')
        return out


def output_error_mm(reference: np.ndarray, other: np.ndarray) -> Dict[str, float]:
    """``max``, ``p99`` and ``mean`` of ``|other - reference|`` in mm over the pixels valid in
    both encoded outputs (16UC1 mm or 32FC1 m), and ``validity_differs`` (pixel count)."""
    reference, other = np.asarray(reference), np.asarray(other)
    to_mm = 1.0 if reference.dtype == np.uint16 else 1000.0
    valid_a = reference > 0 if reference.dtype == np.uint16 else np.isfinite(reference)
    valid_b = other > 0 if other.dtype == np.uint16 else np.isfinite(other)
    both = valid_a & valid_b
    diff = np.abs(other.astype(np.float64) - reference.astype(np.float64))[both] * to_mm
    if diff.size == 0:
        diff = np.zeros(1)
    return {'max': float(diff.max()), 'p99': float(np.percentile(diff, 99)),
            'mean': float(diff.mean()), 'validity_differs': int((valid_a != valid_b).sum())}


def report_probe(pipeline: Any, output: np.ndarray, depth: np.ndarray,
                 max_depth: Optional[float], geometry: Any,
                 **run_kwargs: Any) -> Optional[Dict[str, float]]:
    """After a frame that made a new engine: run it again with the torch net (and the
    frame's ``run_kwargs``: options, dtype) and log the error of the TensorRT output against
    it in mm. Returns the numbers (None if no probe)."""
    forward = pipeline.net_forward
    shape = getattr(forward, 'pending_probe', None)
    if shape is None:
        return None
    forward.pending_probe = None
    pipeline.net_forward = forward.fallback
    try:
        reference = pipeline.run(depth, max_depth, geometry, **run_kwargs)
    finally:
        pipeline.net_forward = forward
    error = output_error_mm(reference, output)
    forward.reports[shape] = error
    LOGGER.info('TensorRT engine for %s %s against torch on this frame: max %.2f mm, p99 '
                '%.2f mm, mean %.3f mm, validity differs at %d pixels', _shape_text(shape),
                forward.precision, error['max'], error['p99'], error['mean'],
                error['validity_differs'])
    return error


def _shape_text(shape: Tuple[int, ...]) -> str:
    return 'x'.join(str(v) for v in shape)
