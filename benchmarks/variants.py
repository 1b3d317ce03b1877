"""Ways of running the bare net: the node's knobs plus runtime options, as one callable each.

A :class:`Variant` names one combination; :func:`model_callable` builds a no-argument function
that runs the net once that way on a fixed random input, so :mod:`benchmarks.timing` can time
variants interleaved. Options that need hardware this machine lacks (fp16, CUDA graphs, pinned
host memory on CUDA; bf16 without native CPU support) are only built when it is there.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import torch
from torch import nn

from dsr_ros.networks import DSRNet

__all__ = ['Variant', 'compile_frozen', 'cpu_has_native_bf16', 'model_callable']

#: CPU flags of native bf16 arithmetic; without them bf16 is emulated and slower than fp32.
BF16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')


@dataclass(frozen=True)
class Variant:
    """One way of running the net."""

    precision: str = 'fp32'
    channels_last: bool = True
    threads: int = 0
    #: torch.compile (inductor) with freezing, for the fixed input size of the case.
    compile: bool = False
    #: 'torch' or 'onnxruntime' (CPU execution provider, the export of dsr_ros.export_onnx).
    runtime: str = 'torch'
    cuda_graph: bool = False
    cudnn_benchmark: bool = False
    #: CUDA only: '' (input already on the GPU), 'pageable' or 'pinned' host buffers, copied
    #: in and out every frame as the node does.
    host_io: str = ''
    #: wrapper/node only: LR tile edge (0 = whole frame).
    tile_size: int = 0
    #: node only, a fresh process each: '' (the node's defaults: malloc tuned, OpenMP
    #: passive), 'no-malloc' (DSR_ROS_MALLOC_TUNING=0) or 'omp-spin' (DSR_ROS_OMP_PASSIVE=0:
    #: libgomp's default wait policy); see dsr_ros.cpu_tuning and dsr_ros.openmp_passive. A
    #: thread keeps its malloc arena and libgomp reads its environment once, so only a fresh
    #: process compares them fairly.
    process: str = ''

    def label(self) -> str:
        """Short unique name, e.g. ``fp32 NHWC compiled``."""
        parts = [self.precision, 'NHWC' if self.channels_last else 'NCHW']
        flags = {f'{self.threads}thr': self.threads, 'compiled': self.compile,
                 self.runtime: self.runtime != 'torch', 'cudagraph': self.cuda_graph,
                 'cudnn-autotune': self.cudnn_benchmark, f'{self.host_io}-io': self.host_io,
                 f'tile{self.tile_size}': self.tile_size, self.process: self.process}
        return ' '.join(parts + [name for name, on in flags.items() if on])


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX or AVX512-BF16) and oneDNN uses it."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            flags = next((line.split(':', 1)[1].split() for line in handle
                          if line.startswith('flags')), [])
    except OSError:
        flags = []
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    return onednn and (not flags or any(flag in flags for flag in BF16_CPU_FLAGS))


def compile_frozen(net: nn.Module, example: torch.Tensor
                   ) -> Tuple[Callable[[torch.Tensor], torch.Tensor], float]:
    """``torch.compile`` with inductor freezing (weights folded as constants), compiled for the
    example's shape by running it once; returns the compiled net and the compile seconds.

    ``dynamic=False``: one specialised graph per input shape (dynamo caches each and
    recompiles on a new shape), which is what a camera with a fixed resolution needs. Inductor
    also caches compiled graphs on disk (``TORCHINDUCTOR_CACHE_DIR``), so a process that
    starts again compiles much faster: the benchmark points that cache at a fresh folder
    (unless the variable is set), so ``compile_s`` is the cost of a robot's first start.
    """
    import torch._inductor.config as inductor_config
    if 'TORCHINDUCTOR_CACHE_DIR' not in os.environ:
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='dsr_bench_inductor_')
    compiled = torch.compile(net, dynamic=False)
    started = time.perf_counter()
    with inductor_config.patch(freezing=True), torch.inference_mode():
        compiled(example)
    return compiled, time.perf_counter() - started


def model_callable(model: DSRNet, device: torch.device, variant: Variant, height: int,
                   width: int) -> Tuple[Callable[[], Any], Dict[str, Any]]:
    """A no-argument function running the bare net once, and facts about building it."""
    if variant.runtime == 'onnxruntime':
        return _onnxruntime_callable(model, variant, height, width)
    if variant.runtime != 'torch':
        raise ValueError(f'unknown runtime {variant.runtime!r}')
    net = copy.deepcopy(model).eval().to(device)
    dtype = torch.float16 if variant.precision == 'fp16' else torch.float32
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    net = net.to(dtype=dtype, memory_format=memory_format)
    generator = torch.Generator().manual_seed(0)
    host = torch.rand(1, model.in_channels, height, width, generator=generator, dtype=dtype)
    source = host.to(device).contiguous(memory_format=memory_format)
    autocast = variant.precision == 'bf16'
    info: Dict[str, Any] = {}

    def forward(net_: Callable[[torch.Tensor], torch.Tensor], tensor: torch.Tensor,
                cache: bool = True) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast,
                            cache_enabled=cache):
            return net_(tensor)

    if variant.compile:
        net, info['compile_s'] = compile_frozen(net, source)
    if variant.cuda_graph:
        return _cuda_graph_callable(net, forward, source, device), info
    if variant.host_io:
        return _host_io_callable(net, forward, host, device, variant), info

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return forward(net, source)

    if variant.cudnn_benchmark:
        def run_tuned() -> torch.Tensor:
            # cuDNN picks its fastest algorithm per input shape on first use (fixed sizes).
            previous = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
            try:
                return run()
            finally:
                torch.backends.cudnn.benchmark = previous
        return run_tuned, info
    return run, info


def _cuda_graph_callable(net: Callable, forward: Callable, source: torch.Tensor,
                         device: torch.device) -> Callable[[], Any]:
    """Replay of captured kernels on static buffers (fixed shapes only)."""
    static_in = source.clone()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode():
        with torch.cuda.stream(stream):
            for _ in range(3):
                forward(net, static_in, cache=False)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = forward(net, static_in, cache=False)

    def run_graph() -> torch.Tensor:
        static_in.copy_(source, non_blocking=True)
        graph.replay()
        return static_out
    return run_graph


def _host_io_callable(net: Callable, forward: Callable, host: torch.Tensor,
                      device: torch.device, variant: Variant) -> Callable[[], Any]:
    """Host -> GPU -> host every call, from pageable or pinned buffers (the node's frames
    arrive and leave in host memory)."""
    pinned = variant.host_io == 'pinned'
    source = host.pin_memory() if pinned else host.clone()
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format

    def run() -> torch.Tensor:
        with torch.inference_mode():
            tensor = source.to(device, non_blocking=pinned).contiguous(
                memory_format=memory_format)
            out = forward(net, tensor)
            return out.to('cpu', non_blocking=False)
    return run


def _onnxruntime_callable(model: DSRNet, variant: Variant, height: int, width: int
                          ) -> Tuple[Callable[[], Any], Dict[str, Any]]:
    """ONNX Runtime (CPU) on the fixed-shape export of :mod:`dsr_ros.export_onnx`."""
    import numpy as np
    import onnxruntime

    from dsr_ros.export_onnx import export_onnx
    if variant.precision != 'fp32':
        raise ValueError('the ONNX Runtime variant runs the fp32 export only')
    with tempfile.TemporaryDirectory(prefix='dsr_bench_onnx_') as folder:
        path = export_onnx(copy.deepcopy(model), Path(folder) / 'dsrnet.onnx', height=height,
                           width=width)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = variant.threads or torch.get_num_threads()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        started = time.perf_counter()
        session = onnxruntime.InferenceSession(os.fspath(path), options,
                                               providers=['CPUExecutionProvider'])
        build_s = time.perf_counter() - started
    name = session.get_inputs()[0].name
    source = np.random.default_rng(0).random((1, model.in_channels, height, width),
                                             dtype=np.float32)

    def run() -> Any:
        return session.run(None, {name: source})
    return run, {'session_build_s': build_s, 'onnxruntime': onnxruntime.__version__}
