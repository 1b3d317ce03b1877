"""Speed benchmark of the depth super-resolution stack: bare net, numpy wrapper, ROS node.

One run measures, for every requested device, scale and LR input size,

* ``model``: the bare DSRNet forward (warmed up, ``torch.inference_mode``, CUDA synchronised),
* ``wrapper``: :meth:`DepthSuperResolver.run` on a ``uint16`` frame with holes (conversion,
  masks, hole filling, padding, encoding),
* ``node``: the full path through DDS, a publisher in this process -> a ``dsr_ros.node``
  process -> a subscriber in this process. ``lockstep`` publishes the next frame only after the
  previous result came back (pure per-frame latency); ``flood`` publishes twice as fast as the
  node can go, so its keep-the-newest-frame policy is exercised and the sustained output rate
  is measured, with latency from the input header stamp to receipt,

plus speed options as ratios measured in the same run (channels_last, bf16, threads, tiling,
optionally torch.compile, CUDA fp16 and CUDA graphs; and, in fresh node processes, the process
settings of :mod:`dsr_ros.cpu_tuning`), the convolution FLOPs per frame and the achieved
FLOP/s, and the bf16-vs-fp32 output difference. It prints Markdown tables and writes
``benchmark.json`` and ``benchmark.md`` into ``--out``.

Why several stages: the ratios wrapper/model and node/model show where time goes besides the
net, which is what a user tuning a robot's pipeline needs to know.

Without ``--weights`` it uses ``dsr_ros.weights.default_weights_path()`` when that exists,
otherwise random weights of the lite architecture (speed does not depend on weight values,
the printed notes say which was used).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from dsr_ros.checkpoint import load_checkpoint, save_checkpoint
from dsr_ros.cpu_tuning import malloc_env, omp_env
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.memory_budget import resident_mb, trim_malloc
from dsr_ros.precision import native_bf16_flags
from dsr_ros.networks import DSRNet

__all__ = ['LITE_ARCH', 'count_conv_macs', 'main', 'parse_size', 'peak_rss_reset',
           'read_peak_rss_mb', 'synthetic_depth', 'summarize']

#: The CPU-friendly architecture used when no weights are given (width 32, 3 blocks).
LITE_ARCH = {'num_channels': 32, 'num_blocks': 3, 'global_residual': True}
JSON_NAME = 'benchmark.json'
MARKDOWN_NAME = 'benchmark.md'
NODE_OUTPUT_TOPIC = 'depth_sr/image_raw'
NODE_INPUT_TOPIC = 'depth/image_raw'
NODE_INFO_TOPIC = 'depth/camera_info'
#: Process settings compared in fresh node processes (see dsr_ros.cpu_tuning).
PROCESS_OPTIONS = ('malloc', 'omp-passive')
PROCESS_LABELS = {'malloc': 'glibc malloc thresholds', 'omp-passive': 'OMP_WAIT_POLICY=PASSIVE'}


# ---------------------------------------------------------------------------- scene
def synthetic_depth(height: int, width: int, *, seed: int = 0, holes: bool = True,
                    near_mm: float = 800.0, far_mm: float = 4000.0) -> np.ndarray:
    """A real-looking ``uint16`` depth frame in millimetres (0 = invalid).

    A tilted floor-to-wall plane, a few spheres and boxes (smooth surfaces plus depth edges, as
    a room seen by a depth camera) and, with ``holes``, a few invalid blobs like sensor
    shadows. Deterministic for a given seed, so benchmark runs and tests see the same frame.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = rows / max(height - 1, 1), cols / max(width - 1, 1)
    depth = far_mm - (far_mm - near_mm) * 0.6 * v + 300.0 * np.sin(2.0 * u + 0.5)
    for _ in range(3):
        cu, cv, radius = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
        dist2 = ((u - cu) ** 2 + ((v - cv) * height / max(width, 1)) ** 2) / radius ** 2
        centre = rng.uniform(near_mm + 300.0, far_mm - 1500.0)
        sphere = centre - radius * 2000.0 * np.sqrt(np.clip(1.0 - dist2, 0.0, None))
        depth = np.where(dist2 < 1.0, np.minimum(depth, sphere), depth)
    for _ in range(2):
        top, left = rng.uniform(0.1, 0.6, size=2)
        box = (v > top) & (v < top + 0.25) & (u > left) & (u < left + 0.3)
        depth = np.where(box, np.minimum(depth, rng.uniform(near_mm, near_mm + 800.0)), depth)
    depth = np.clip(depth, near_mm, far_mm)
    if holes:
        for _ in range(4):
            cu, cv, radius = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), 0.03
            blob = (u - cu) ** 2 + ((v - cv) * height / max(width, 1)) ** 2 < radius ** 2
            depth[blob] = 0.0
    return np.rint(depth).astype(np.uint16)


def parse_size(text: str) -> Tuple[int, int]:
    """``'160x120'`` -> ``(160, 120)``: LR width x height, the way cameras name resolutions."""
    try:
        width, height = (int(part) for part in text.lower().split('x'))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'size {text!r} is not WIDTHxHEIGHT') from error
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'size {text!r} must be positive')
    return width, height


# ---------------------------------------------------------------------------- FLOPs
def count_conv_macs(model: nn.Module, height: int, width: int, in_channels: int = 1) -> int:
    """Multiply-accumulates of all (transposed) convolutions for one ``height x width`` input.

    Counted analytically from module shapes by forward hooks, on the ``meta`` device when
    possible (no arithmetic is done, so even 2560x1920 outputs cost nothing). A convolution
    does ``out_elements * in_channels / groups * kh * kw`` MACs; a transposed convolution
    scatters every input element into ``out_channels / groups * kh * kw`` outputs. PReLU, adds
    and the bicubic residual are left out (a few per cent, memory-bound). FLOPs = 2 * MACs.
    """
    counted: List[int] = []

    def hook(module: nn.Module, inputs: Tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        kernel = math.prod(module.kernel_size)
        if isinstance(module, nn.ConvTranspose2d):
            macs = inputs[0].numel() * module.out_channels // module.groups * kernel
        else:
            macs = output.numel() * module.in_channels // module.groups * kernel
        counted.append(int(macs))

    try:
        probe = copy.deepcopy(model).to('meta')
        device = torch.device('meta')
    except (NotImplementedError, RuntimeError):  # pragma: no cover - old torch without meta
        probe = copy.deepcopy(model).cpu().float()
        device = torch.device('cpu')
    handles = [module.register_forward_hook(hook) for module in probe.modules()
               if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.inference_mode():
            probe(torch.zeros(1, in_channels, height, width, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return sum(counted)


# ---------------------------------------------------------------------------- memory
def peak_rss_reset() -> bool:
    """Reset this process's peak-RSS mark (Linux ``clear_refs`` 5); False where unsupported.

    ``resource.getrusage`` only knows the lifetime peak, which would make every case after the
    largest one report the largest one's memory.
    """
    trim_malloc()  # freed heap back to the OS so the reading starts clean
    try:
        with open('/proc/self/clear_refs', 'w', encoding='ascii') as handle:
            handle.write('5')
        return True
    except OSError:
        return False


def read_peak_rss_mb(pid: Optional[int] = None) -> Optional[float]:
    """Peak resident memory (MiB) of a process: ``VmHWM``, else ``ru_maxrss`` for ourselves."""
    path = f'/proc/{pid or "self"}/status'
    try:
        with open(path, encoding='ascii') as handle:
            for line in handle:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if pid is None:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return None


class _PeakMemory:
    """Peak memory of one measurement: CUDA allocator peak on GPU, peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb: Optional[float] = None
        self.delta_mb: Optional[float] = None
        self.kind = 'cuda_max_allocated' if device.type == 'cuda' else 'rss_peak'

    def __enter__(self) -> '_PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2 ** 20
        else:
            if not peak_rss_reset():
                self.kind = 'rss_lifetime_peak'
            self._base = resident_mb() or None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self.peak_mb = read_peak_rss_mb()
        if self.peak_mb is not None and self._base is not None:
            self.delta_mb = max(self.peak_mb - self._base, 0.0)


# ---------------------------------------------------------------------------- timing
def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """Median, p95, mean (ms) and frames/s (from the median) of per-frame durations."""
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    median = float(np.median(values))
    return {'frames': int(values.size), 'median_ms': median,
            'p95_ms': float(np.percentile(values, 95)), 'mean_ms': float(values.mean()),
            'min_ms': float(values.min()), 'fps': 1e3 / median if median > 0 else float('inf')}


@dataclass
class _Timed:
    """One thing to time: a no-argument callable and what its calls cost."""

    name: str
    fn: Callable[[], Any]
    threads: int
    seconds: List[float] = field(default_factory=list)
    sys_s: float = 0.0
    minor_faults: int = 0
    memory: Optional['_PeakMemory'] = None
    error: Optional[str] = None


def _time_round_robin(items: List[_Timed], device: torch.device, *, warmup: int,
                      max_frames: int, budget_s: float, min_frames: int = 3) -> None:
    """Warm each item up (measuring its peak memory there), then time them in turns.

    Interleaving A, B, A, B... instead of A, A, ..., B, B... makes the ratios between options
    robust to load that comes and goes (a shared machine, thermal limits): a slow spell hits
    every option alike. Stops at ``max_frames`` each, or after ``budget_s`` per item once every
    item has ``min_frames`` (2 when one warm-up call alone took half the budget, so that
    2560x1920 outputs on a small CPU keep the run within minutes). Kernel time and minor page
    faults per call are recorded too: they expose allocator costs (see dsr_ros.cpu_tuning).
    """
    import resource

    sync = _sync_for(device)
    default_threads = torch.get_num_threads()
    slowest_warmup = 0.0
    for item in items:
        torch.set_num_threads(item.threads or default_threads)
        try:
            with _PeakMemory(device) as memory:
                started = time.perf_counter()
                for _ in range(max(warmup, 1)):
                    item.fn()
                    sync()
            slowest_warmup = max(slowest_warmup, (time.perf_counter() - started) /
                                 max(warmup, 1))
            item.memory = memory
        except Exception as error:  # noqa: BLE001 - an option that fails is a result
            item.error = f'{type(error).__name__}: {error}'[:500]
        finally:
            torch.set_num_threads(default_threads)
    live = [item for item in items if item.error is None]
    if slowest_warmup > budget_s / 2:
        min_frames = min(min_frames, 2)
    min_frames = max(1, min(min_frames, max_frames))
    start = time.perf_counter()
    while live:
        for item in live:
            torch.set_num_threads(item.threads or default_threads)
            before = resource.getrusage(resource.RUSAGE_SELF)
            begin = time.perf_counter()
            item.fn()
            sync()
            item.seconds.append(time.perf_counter() - begin)
            after = resource.getrusage(resource.RUSAGE_SELF)
            item.sys_s += after.ru_stime - before.ru_stime
            item.minor_faults += after.ru_minflt - before.ru_minflt
        torch.set_num_threads(default_threads)
        done = min(len(item.seconds) for item in live)
        if done >= max_frames or (done >= min_frames and
                                  time.perf_counter() - start > budget_s * len(live)):
            break


# ---------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """One way of running the net: the knobs the node exposes, plus benchmark-only ones."""

    precision: str = 'fp32'
    channels_last: bool = True
    threads: int = 0
    compile: bool = False
    cuda_graph: bool = False
    cudnn_benchmark: bool = False
    tile_size: int = 0
    #: process settings of dsr_ros.cpu_tuning: '', 'malloc' or 'omp-passive'. Node runs only:
    #: they need a fresh process (a thread keeps its malloc arena, libgomp reads its
    #: environment once), so this process cannot compare them fairly.
    process: str = ''

    def label(self) -> str:
        parts = [self.precision, 'NHWC' if self.channels_last else 'NCHW']
        if self.threads:
            parts.append(f'{self.threads}thr')
        if self.compile:
            parts.append('compiled')
        if self.cuda_graph:
            parts.append('cudagraph')
        if self.cudnn_benchmark:
            parts.append('cudnn-autotune')
        if self.tile_size:
            parts.append(f'tile{self.tile_size}')
        if self.process:
            parts.append(self.process)
        return ' '.join(parts)


@dataclass
class Case:
    device: torch.device
    scale: int
    width: int
    height: int
    model: DSRNet
    weights_path: str
    macs: int = 0

    @property
    def key(self) -> str:
        return f'{self.device.type} x{self.scale} {self.width}x{self.height}'

    @property
    def out_size(self) -> Tuple[int, int]:
        return self.width * self.scale, self.height * self.scale


def _prepare_model(model: DSRNet, device: torch.device, variant: Variant) -> nn.Module:
    net = copy.deepcopy(model).eval().to(device)
    if variant.precision == 'fp16':
        net = net.half()
    if variant.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def _model_callable(model: DSRNet, device: torch.device, variant: Variant, height: int,
                    width: int) -> Tuple[Callable[[], Any], Dict[str, Any]]:
    """A no-argument function running the bare net once, and facts about building it."""
    net = _prepare_model(model, device, variant)
    dtype = torch.float16 if variant.precision == 'fp16' else torch.float32
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    source = torch.rand(1, 1, height, width, dtype=dtype, device=device)
    source = source.contiguous(memory_format=memory_format)
    autocast = variant.precision == 'bf16'
    info: Dict[str, Any] = {}

    def forward(net_: nn.Module, tensor: torch.Tensor, cache: bool = True) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast,
                            cache_enabled=cache):
            return net_(tensor)

    if variant.compile:
        net = torch.compile(net, dynamic=False)
        started = time.perf_counter()
        with torch.inference_mode():
            forward(net, source)
        info['compile_s'] = time.perf_counter() - started
    if variant.cuda_graph:
        # Fixed shapes only: the graph replays the captured kernels on the static buffers.
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
        return run_graph, info

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


def _sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _in_worker_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh thread and return its result (re-raising its error).

    The node runs inference in a worker thread, so the benchmark does too. It matters: with
    GNU OpenMP the pool of the *main* thread spins between parallel regions, and on a busy
    machine (measured here with a 2-thread training job beside us) the main thread ran the
    lite net 2.5x slower at 160x120 and 12x slower at 32x24 than a worker thread did.
    """
    result: List[Any] = []
    failure: List[BaseException] = []

    def target() -> None:
        try:
            result.append(fn(*args))
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            failure.append(error)
    thread = threading.Thread(target=target, name='dsr_bench_worker')
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def measure_models(case: Case, variants: List[Variant], opts: argparse.Namespace
                   ) -> List[Dict[str, Any]]:
    """Time the bare forward of several variants in turns; one record each."""
    items, infos = [], []
    for variant in variants:
        info: Dict[str, Any] = {}
        try:
            fn, info = _model_callable(case.model, case.device, variant, case.height,
                                       case.width)
        except Exception as error:  # noqa: BLE001 - e.g. torch.compile without a compiler
            fn = _raiser(error)
        items.append(_Timed(variant.label(), fn, variant.threads))
        infos.append(info)
    _in_worker_thread(partial(_time_round_robin, items, case.device, warmup=opts.warmup,
                              max_frames=opts.frames, budget_s=opts.budget))
    records = []
    for variant, item, info in zip(variants, items, infos):
        record = _timed_record(case, 'model', variant, item)
        record.update(info)
        records.append(record)
    return records


def measure_wrappers(case: Case, variants: List[Variant], frame: np.ndarray,
                     opts: argparse.Namespace
                     ) -> Tuple[List[Dict[str, Any]], Dict[str, np.ndarray]]:
    """Time :meth:`DepthSuperResolver.run` on a uint16 frame per variant, in turns.

    Returns the records and each variant's output (for the precision comparison).
    """
    items, outputs = [], {}
    for variant in variants:
        resolver = DepthSuperResolver(copy.deepcopy(case.model), None,
                                      device=str(case.device), precision=variant.precision,
                                      channels_last=variant.channels_last,
                                      tile_size=variant.tile_size,
                                      tile_overlap=min(8, max(variant.tile_size // 4, 0)))

        def run(resolver: DepthSuperResolver = resolver, label: str = variant.label()) -> None:
            outputs[label] = resolver.run(frame)
        items.append(_Timed(variant.label(), run, variant.threads))
    _in_worker_thread(partial(_time_round_robin, items, case.device, warmup=opts.warmup,
                              max_frames=opts.frames, budget_s=opts.budget))
    records = [_timed_record(case, 'wrapper', variant, item)
               for variant, item in zip(variants, items)]
    return records, outputs


def _raiser(error: Exception) -> Callable[[], Any]:
    def fail() -> Any:
        raise error
    return fail


def _timed_record(case: Case, stage: str, variant: Variant, item: _Timed) -> Dict[str, Any]:
    if item.error is not None or not item.seconds:
        return {'case': case.key, 'stage': stage, 'variant': variant.label(),
                'error': item.error or 'no frames timed'}
    record = _record(case, stage, variant, summarize(item.seconds), item.memory)
    record['sys_ms_per_frame'] = item.sys_s * 1e3 / len(item.seconds)
    record['minor_faults_per_frame'] = item.minor_faults / len(item.seconds)
    return record


def _record(case: Case, stage: str, variant: Variant, stats: Dict[str, float],
            memory: Optional[_PeakMemory]) -> Dict[str, Any]:
    flops = 2 * case.macs
    record: Dict[str, Any] = {
        'case': case.key, 'device': case.device.type, 'scale': case.scale,
        'lr_size': [case.width, case.height], 'hr_size': list(case.out_size),
        'stage': stage, 'variant': variant.label(), 'precision': variant.precision,
        'channels_last': variant.channels_last, 'threads': variant.threads or
        torch.get_num_threads(), 'compile': variant.compile, 'cuda_graph': variant.cuda_graph,
        'cudnn_benchmark': variant.cudnn_benchmark,
        'tile_size': variant.tile_size, 'process': variant.process,
        'gflop_per_frame': flops / 1e9,
    }
    record.update(stats)
    median_s = stats.get('median_ms', float('nan')) / 1e3
    record['achieved_gflop_s'] = flops / 1e9 / median_s if median_s > 0 else None
    if memory is not None:
        record['peak_mem_mb'] = memory.peak_mb
        record['peak_mem_delta_mb'] = memory.delta_mb
        record['mem_kind'] = memory.kind
    return record


# ---------------------------------------------------------------------------- node
class NodeBench:
    """Publisher and subscriber around a ``dsr_ros.node`` process, in this process.

    Images are published reliable (a reliable writer matches best-effort and reliable
    readers) with their CameraInfo of the same stamp; the output subscription takes the
    reliability the node actually offers, found by graph introspection. Latency is receipt
    time minus the input header stamp (both from this process's clock).
    """

    def __init__(self, opts: argparse.Namespace) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self._rclpy = rclpy
        self._qos = (QoSProfile, ReliabilityPolicy, HistoryPolicy)
        self._msgs = (Image, CameraInfo)
        self.opts = opts
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('dsr_benchmark_client', context=self.context)
        reliable = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, NODE_INPUT_TOPIC, reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, NODE_INFO_TOPIC, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinning = threading.Event()
        self._spin: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._arrivals: Dict[int, int] = {}
        self._event = threading.Event()
        self._subscription = None

    def _spin_loop(self) -> None:
        while self._spinning.is_set() and self._rclpy.ok(context=self.context):
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down mid-spin
                if not self._rclpy.ok(context=self.context):
                    return
                raise

    def _start_spinning(self) -> None:
        """Spin only while a node case runs: an idle executor thread would wake up 20 times
        a second and steal time from the model measurements on a 2-core CPU."""
        self._spinning.set()
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _stop_spinning(self) -> None:
        self._spinning.clear()
        if self._spin is not None:
            self._spin.join(timeout=2.0)
            self._spin = None

    def close(self) -> None:
        self._stop_spinning()
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)

    def _on_output(self, msg: Any) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self._arrivals[stamp] = now
        self._event.set()

    def _subscribe_output(self, timeout_s: float) -> str:
        QoSProfile, ReliabilityPolicy, HistoryPolicy = self._qos
        deadline = time.monotonic() + timeout_s
        reliability = ReliabilityPolicy.BEST_EFFORT
        while time.monotonic() < deadline:
            infos = self.node.get_publishers_info_by_topic('/' + NODE_OUTPUT_TOPIC)
            if infos:
                reliability = infos[0].qos_profile.reliability
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f'no publisher of {NODE_OUTPUT_TOPIC} within {timeout_s:.0f} s')
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
        qos = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        self._subscription = self.node.create_subscription(
            self._msgs[0], NODE_OUTPUT_TOPIC, self._on_output, qos)
        while time.monotonic() < deadline:
            if self.image_pub.get_subscription_count() > 0:
                return reliability.name.lower()
            time.sleep(0.1)
        raise TimeoutError(f'the node did not subscribe to {NODE_INPUT_TOPIC}')

    def _messages(self, frame: np.ndarray) -> Tuple[Any, Any]:
        Image, CameraInfo = self._msgs
        height, width = frame.shape
        image = Image()
        image.header.frame_id = 'benchmark_depth'
        image.height, image.width = height, width
        image.encoding = '16UC1'
        image.is_bigendian = int(sys.byteorder == 'big')
        image.step = width * 2
        image.data = frame.tobytes()  # bytes, not an ndarray: ~300x faster (docs/ros.md)
        info = CameraInfo()
        info.header.frame_id = image.header.frame_id
        info.height, info.width = height, width
        focal = 0.8 * width
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        info.k = [focal, 0.0, (width - 1) / 2.0, 0.0, focal, (height - 1) / 2.0, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [focal, 0.0, (width - 1) / 2.0, 0.0, 0.0, focal, (height - 1) / 2.0, 0.0,
                  0.0, 0.0, 1.0, 0.0]
        return image, info

    def _publish(self, image: Any, info: Any) -> int:
        stamp = time.time_ns()
        for msg in (info, image):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.info_pub.publish(info)
        self.image_pub.publish(image)
        return stamp

    def _wait_for(self, stamp: int, timeout_s: float) -> Optional[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if stamp in self._arrivals:
                    return self._arrivals[stamp]
            self._event.wait(0.05)
            self._event.clear()
        return None

    def run_case(self, case: Case, variant: Variant, frame: np.ndarray,
                 expected_s: float, log_dir: Path) -> List[Dict[str, Any]]:
        """Start a node for ``case``, measure lockstep and flood, stop it; return records."""
        command = [sys.executable, '-m', 'dsr_ros.node', '--ros-args',
                   '-r', '__node:=dsr_node']
        params_file = Path(__file__).resolve().parents[1] / 'config' / 'dsr.yaml'
        if params_file.is_file():
            command += ['--params-file', str(params_file)]
        params = {'weights_path': case.weights_path, 'device': str(case.device),
                  'precision': variant.precision, 'half': variant.precision == 'fp16',
                  'channels_last': variant.channels_last,
                  'torch_threads': variant.threads or torch.get_num_threads(),
                  'tile_size': variant.tile_size, 'input_reliability': 'reliable'}
        for name, value in params.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            command += ['-p', f'{name}:={text}']
        log_path = log_dir / (f'node_{case.device.type}_x{case.scale}_{case.width}x'
                              f'{case.height}_{variant.label().replace(" ", "_")}.log')
        image, info = self._messages(frame)
        with open(log_path, 'w', encoding='utf-8') as log:
            env = os.environ.copy()
            if 'malloc' in variant.process:
                env.update(malloc_env())
            if 'omp-passive' in variant.process:
                env.update(omp_env())
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            self._start_spinning()
            try:
                return self._measure(case, variant, process, image, info, expected_s,
                                     log_path)
            finally:
                _stop(process)
                self._stop_spinning()

    def _measure(self, case: Case, variant: Variant, process: subprocess.Popen,
                 image: Any, info: Any, expected_s: float, log_path: Path
                 ) -> List[Dict[str, Any]]:
        started = time.monotonic()
        try:
            reliability = self._subscribe_output(self.opts.node_startup_timeout)
        except TimeoutError as error:
            if process.poll() is not None:
                raise RuntimeError(f'node exited with {process.returncode}; see '
                                   f'{log_path}') from error
            raise
        startup_s = time.monotonic() - started
        per_frame_timeout = 10.0 * expected_s + 10.0
        with self._lock:
            self._arrivals.clear()
        for _ in range(max(self.opts.warmup, 1)):  # first frames build the oneDNN kernels
            if self._wait_for(self._publish(image, info), per_frame_timeout + 20.0) is None:
                raise RuntimeError(f'no output for a warm-up frame; see {log_path}')
        latencies: List[float] = []
        lost = 0
        begin = time.monotonic()
        while len(latencies) < self.opts.frames:
            stamp = self._publish(image, info)
            arrival = self._wait_for(stamp, per_frame_timeout)
            if arrival is None:
                lost += 1
                if lost > 2:
                    break
            else:
                latencies.append((arrival - stamp) / 1e9)
            if len(latencies) >= 2 and time.monotonic() - begin > self.opts.budget:
                break
        if not latencies:
            raise RuntimeError(f'the node returned no frames; see {log_path}')
        lockstep = _record(case, 'node_lockstep', variant, summarize(latencies), None)
        lockstep.update({'lost': lost, 'startup_s': startup_s, 'output_reliability':
                         reliability})
        flood = self._flood(case, variant, image, info, float(np.median(latencies)))
        node_peak = read_peak_rss_mb(process.pid)
        for record in (lockstep, flood):
            record['peak_mem_mb'] = node_peak
            record['mem_kind'] = 'node_process_rss_peak' if case.device.type == 'cpu' \
                else 'node_process_rss_peak (host)'
        return [lockstep, flood]

    def _flood(self, case: Case, variant: Variant, image: Any, info: Any,
               latency_s: float) -> Dict[str, Any]:
        """Publish at twice the lockstep rate (capped) so the node must drop stale frames."""
        rate = min(self.opts.node_rate, 2.0 / max(latency_s, 1e-3))
        duration = max(self.opts.budget, 3.0 * latency_s)
        with self._lock:
            self._arrivals.clear()
        sent: List[int] = []
        begin = time.monotonic()
        next_time = begin
        while time.monotonic() - begin < duration:
            sent.append(self._publish(image, info))
            next_time += 1.0 / rate
            time.sleep(max(0.0, next_time - time.monotonic()))
        self._wait_for(sent[-1], 3.0 * latency_s + 2.0)
        published = set(sent)
        with self._lock:
            arrivals = {stamp: t for stamp, t in self._arrivals.items() if stamp in published}
        received = sorted(arrivals.items(), key=lambda item: item[1])
        latencies = [(arrival - stamp) / 1e9 for stamp, arrival in received]
        if len(received) >= 2:
            span = (received[-1][1] - received[0][1]) / 1e9
            fps = (len(received) - 1) / span if span > 0 else float('nan')
        else:
            fps = len(received) / duration
        stats = summarize(latencies) if latencies else {'frames': 0}
        record = _record(case, 'node_flood', variant, stats, None)
        record.update({'fps': fps, 'published': len(sent), 'received': len(received),
                       'publish_rate_hz': rate, 'duration_s': duration})
        record['achieved_gflop_s'] = 2 * case.macs / 1e9 * fps
        return record


def _stop(process: subprocess.Popen) -> None:
    """Stop the node we started: SIGINT (clean rclpy shutdown), then SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        process.send_signal(sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------------------- models
def _default_weights() -> Optional[str]:
    try:
        module = importlib.import_module('dsr_ros.weights')
    except ImportError:
        return None
    finder = getattr(module, 'default_weights_path', None)
    if not callable(finder):
        return None
    try:
        path = finder()
    except Exception:  # noqa: BLE001 - a missing default must not stop a benchmark
        return None
    return os.fspath(path) if path and Path(path).is_file() else None


def build_models(scales: Sequence[int], weights: Optional[str], tmp_dir: Path
                 ) -> Tuple[Dict[int, Tuple[DSRNet, str]], List[str]]:
    """One model per scale with a checkpoint path the node can load, and notes on sources."""
    notes: List[str] = []
    arch = dict(LITE_ARCH)
    loaded: Optional[Tuple[DSRNet, Dict[str, Any], str]] = None
    path = weights or _default_weights()
    if path:
        model, metadata = load_checkpoint(path)
        arch = {key: value for key, value in metadata['arch'].items() if key != 'scale'}
        loaded = (model, metadata, os.fspath(path))
        origin = 'given' if weights else 'dsr_ros.weights.default_weights_path()'
        notes.append(f'weights: {path} ({origin}), x{model.scale}, arch {metadata["arch"]}')
    else:
        notes.append('weights: none given and no default found, so RANDOM weights of the lite '
                     f'architecture DSRNet(scale, **{LITE_ARCH}); speed does not depend on '
                     'the values, accuracy numbers below are only bf16-vs-fp32 agreement')
    models: Dict[int, Tuple[DSRNet, str]] = {}
    for scale in scales:
        if loaded is not None and loaded[0].scale == scale:
            models[scale] = (loaded[0], loaded[2])
            continue
        torch.manual_seed(scale)
        model = DSRNet(scale, **arch).eval()
        ckpt = save_checkpoint(tmp_dir / f'random_x{scale}.pt', model,
                               provenance={'source': 'dsr_ros.benchmark random weights'})
        models[scale] = (model, os.fspath(ckpt))
        if loaded is not None:
            notes.append(f'x{scale}: random weights of the same architecture (the weights '
                         f'file is x{loaded[0].scale})')
    return models, notes


# ---------------------------------------------------------------------------- the run
def _available_devices(names: Sequence[str], notes: List[str]) -> List[torch.device]:
    devices = []
    for name in names:
        if name.startswith('cuda') and not torch.cuda.is_available():
            notes.append(f'device {name}: not available here, skipped')
            continue
        devices.append(torch.device(name))
    return devices


def _precisions_for(device: torch.device, wanted: Sequence[str], notes: List[str]
                    ) -> List[str]:
    chosen = []
    for precision in wanted:
        if precision == 'fp16' and device.type != 'cuda':
            continue  # fp16 convolutions on CPU are slow reference kernels: never a speed-up
        if precision == 'bf16' and device.type == 'cpu' and not _cpu_bf16_fast():
            notes.append('bf16 on this CPU: no AVX512-BF16/AMX, skipped (would be emulated)')
            continue
        if precision == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
            continue
        chosen.append(precision)
    return chosen or ['fp32']


def _cpu_bf16_fast() -> bool:
    return bool(native_bf16_flags())


def _accuracy(case: Case, outputs: Dict[str, np.ndarray], frame: np.ndarray
              ) -> List[Dict[str, Any]]:
    """How far each reduced-precision output is from fp32, in millimetres on valid pixels."""
    reference = outputs.get('fp32')
    rows = []
    if reference is None:
        return rows
    valid = reference > 0
    for precision, output in outputs.items():
        if precision == 'fp32':
            continue
        diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))[valid]
        rows.append({'case': case.key, 'precision': precision, 'reference': 'fp32',
                     'mad_mm': float(diff.mean()), 'p99_mm': float(np.percentile(diff, 99)),
                     'max_mm': float(diff.max()),
                     'depth_range_mm': [int(frame[frame > 0].min()), int(frame.max())]})
    return rows


def _ratio(records: List[Dict[str, Any]], name: str, case: Case, slow: Variant, fast: Variant,
           stage: str = 'model') -> Optional[Dict[str, Any]]:
    def find(variant: Variant) -> Optional[Dict[str, Any]]:
        for record in records:
            if record['stage'] == stage and record['variant'] == variant.label():
                return record
        return None
    base, other = find(slow), find(fast)
    if base is None or other is None:
        return None
    if 'median_ms' not in base or 'median_ms' not in other:
        return None
    row = {'case': case.key, 'option': name, 'stage': stage, 'baseline': slow.label(),
           'option_variant': fast.label(), 'baseline_ms': base['median_ms'],
           'option_ms': other['median_ms'], 'speedup': base['median_ms'] / other['median_ms']}
    if stage == 'node_flood' and base.get('fps') and other.get('fps'):
        row['speedup'] = other['fps'] / base['fps']  # sustained output rate, not latency
    if base.get('peak_mem_delta_mb') is not None and other.get('peak_mem_delta_mb') is not None:
        row['baseline_mem_mb'] = base['peak_mem_delta_mb']
        row['option_mem_mb'] = other['peak_mem_delta_mb']
    if 'compile_s' in other:
        row['compile_s'] = other['compile_s']
    return row


def _preferred_precision(device: torch.device, precisions: List[str]) -> str:
    """The precision expected to be fastest, chosen before measuring so that the option
    ablations can run interleaved with the main rows (the measured fastest drives the node)."""
    order = ('fp16', 'bf16', 'fp32') if device.type == 'cuda' else ('bf16', 'fp32')
    for precision in order:
        if precision in precisions:
            return precision
    return precisions[0]


def run_case(case: Case, opts: argparse.Namespace, precisions: List[str], ablate: bool,
             node: Optional[NodeBench], out_dir: Path) -> Dict[str, Any]:
    """All measurements of one device/scale/size; returns records, ratios and accuracy."""
    log = _logger(opts)
    frame = synthetic_depth(case.height, case.width, seed=1)
    case.macs = count_conv_macs(case.model, case.height, case.width)
    notes: List[str] = []
    threads = opts.threads
    preferred = _preferred_precision(case.device, precisions)
    huge = opts.huge_pixels and case.width * case.height * case.scale ** 2 > opts.huge_pixels
    if huge:
        precisions = [preferred]
        ablate = False
        notes.append(f'{case.key}: output above --huge-pixels {opts.huge_pixels:g}, so only '
                     f'{preferred}, no option ablations, and as few frames as the budget '
                     'allows')
    main_variants = [Variant(precision, True, threads) for precision in precisions]
    best = Variant(preferred, True, threads)
    fp32 = Variant('fp32', True, threads)
    pairs: List[Tuple[str, Variant, Variant]] = [
        (precision, fp32, Variant(precision, True, threads))
        for precision in precisions if precision != 'fp32' and 'fp32' in precisions]
    if ablate:
        pairs.append(('channels_last', Variant('fp32', False, threads), fp32))
        if case.device.type == 'cpu' and torch.get_num_threads() > 1:
            pairs.append((f'threads {torch.get_num_threads()} vs 1',
                          Variant(preferred, True, 1), best))
        if opts.compile:
            pairs.append(('torch.compile', best, Variant(preferred, True, threads,
                                                         compile=True)))
        if case.device.type == 'cuda':
            pairs.append(('cudnn.benchmark', best, Variant(preferred, True, threads,
                                                           cudnn_benchmark=True)))
        if case.device.type == 'cuda' and opts.cuda_graphs:
            pairs.append(('CUDA graph', best, Variant(preferred, True, threads,
                                                      cuda_graph=True)))
    model_variants = list(main_variants)
    for _, slow, fast in pairs:
        model_variants += [v for v in (slow, fast) if v not in model_variants]
    log(f'{case.key}: model {", ".join(v.label() for v in model_variants)}')
    records = measure_models(case, model_variants, opts)
    timed = [v for v in main_variants if _median(records, 'model', v) < float('inf')]
    fastest = min(timed, key=lambda v: _median(records, 'model', v)) if timed else best
    wrapper_variants = list(main_variants)
    if opts.tile_size and max(case.width, case.height) > opts.tile_size and (
            case.width * case.height >= opts.tile_min_pixels):
        tiled = Variant(fastest.precision, True, threads, tile_size=opts.tile_size)
        wrapper_variants.append(tiled)
        pairs.append((f'tiling {opts.tile_size}', fastest, tiled))
    log(f'{case.key}: wrapper {", ".join(v.label() for v in wrapper_variants)}')
    wrapper_records, outputs = measure_wrappers(case, wrapper_variants, frame, opts)
    records += wrapper_records
    ratios = []
    for name, slow, fast in pairs:
        stage = 'wrapper' if fast.tile_size else 'model'
        row = _ratio(records, name, case, slow, fast, stage)
        if row:
            ratios.append(row)
    if node is not None:
        records += _node_records(case, node, fastest, frame, records, opts, out_dir, log,
                                 ablate)
    for record in records:
        record.setdefault('case', case.key)
    _add_stage_ratios(records)
    if ablate and opts.process_options and case.device.type == 'cpu':
        for process in PROCESS_OPTIONS:
            for stage in ('node_lockstep', 'node_flood'):
                row = _ratio(records, f'{PROCESS_LABELS[process]} ({stage})', case, fastest,
                             replace(fastest, process=process), stage)
                if row:
                    ratios.append(row)
    by_precision = {v.precision: outputs[v.label()] for v in main_variants
                    if v.label() in outputs}
    return {'records': records, 'ratios': ratios, 'notes': notes,
            'accuracy': _accuracy(case, by_precision, frame), 'fastest': fastest}


def _node_records(case: Case, node: NodeBench, fastest: Variant, frame: np.ndarray,
                  records: List[Dict[str, Any]], opts: argparse.Namespace, out_dir: Path,
                  log: Callable[[str], None], ablate: bool) -> List[Dict[str, Any]]:
    """The node runs of a case: the fastest variant, plus on ablation cases each process
    setting of dsr_ros.cpu_tuning (a fresh process is the only clean way to compare them)."""
    runs = [fastest]
    if ablate and opts.process_options and case.device.type == 'cpu':
        runs += [replace(fastest, process=process) for process in PROCESS_OPTIONS]
    results: List[Dict[str, Any]] = []
    for variant in runs:
        log(f'{case.key}: node {variant.label()}')
        try:
            results += node.run_case(case, variant, frame,
                                     _median(records, 'model', fastest) / 1e3, out_dir)
        except Exception as error:  # noqa: BLE001 - report and carry on with other cases
            results.append({'case': case.key, 'stage': 'node_lockstep',
                            'variant': variant.label(),
                            'error': f'{type(error).__name__}: {error}'[:500]})
            log(f'{case.key}: node failed: {error}')
    return results


def _median(records: List[Dict[str, Any]], stage: str, variant: Variant) -> float:
    for record in records:
        if record['stage'] == stage and record['variant'] == variant.label():
            return record.get('median_ms', float('inf'))
    return float('inf')


def _add_stage_ratios(records: List[Dict[str, Any]]) -> None:
    """wrapper/model and node/model for the same variant (latency ratios, 1.0 = no overhead)."""
    models = {r['variant']: r for r in records if r['stage'] == 'model' and 'median_ms' in r}
    for record in records:
        if record['stage'] == 'model':
            continue
        label = record.get('variant', '')
        if record.get('process'):
            label = label.replace(f' {record["process"]}', '')
        if record.get('tile_size'):
            label = label.replace(f' tile{record["tile_size"]}', '')
        model = models.get(label)
        if model is None:
            continue
        if 'median_ms' in record:
            record['ratio_to_model'] = record['median_ms'] / model['median_ms']
        if record['stage'] == 'node_flood' and record.get('fps'):
            record['fps_ratio_to_model'] = record['fps'] / model['fps']


def _logger(opts: argparse.Namespace) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not opts.quiet:
            print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)
    return log


def _meta(opts: argparse.Namespace, argv: Sequence[str]) -> Dict[str, Any]:
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        revision = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                  text=True, timeout=5,
                                  cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = ''
    meta = {'date': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'command': ' '.join(argv),
            'python': platform.python_version(), 'torch': torch.__version__,
            'cpu': cpu, 'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'cpu_bf16_kernels': _cpu_bf16_fast(), 'git_revision': revision,
            'load_average': os.getloadavg() if hasattr(os, 'getloadavg') else None}
    if torch.cuda.is_available():
        meta['cuda_devices'] = [torch.cuda.get_device_name(i)
                                for i in range(torch.cuda.device_count())]
    return meta


# ---------------------------------------------------------------------------- report
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def render_markdown(report: Dict[str, Any]) -> str:
    """The human-readable tables of a report (also written as ``benchmark.md``)."""
    lines = ['## dsr_ros benchmark', '']
    meta = report['meta']
    lines.append(f'{meta["cpu"]}, {meta["cpu_count"]} CPUs, torch {meta["torch"]} '
                 f'({meta["torch_threads"]} threads, {meta["cpu_capability"]}), '
                 f'load average at start {_fmt(list(meta["load_average"] or []))}'.replace(
                     "'", ''))
    for note in report['notes']:
        lines.append(f'- {note}')
    lines += ['', '### Stages (median ms / p95 ms, frames/s, peak memory MiB)', '',
              '| case | output | variant | GFLOP/frame | model ms | model fps | GFLOP/s '
              '| model kernel ms | model mem | wrapper ms | wrapper/model | node ms (lockstep) '
              '| node/model | node fps (flood) | node mem |',
              '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    records = report['records']
    for key in report['cases']:
        rows = [r for r in records if r['case'] == key]
        for model in (r for r in rows if r['stage'] == 'model' and not r.get('compile')
                      and not r.get('cuda_graph') and not r.get('cudnn_benchmark')
                      and r.get('channels_last')
                      and not r.get('process')
                      and 'median_ms' in r and r.get('threads') == report['threads']):
            same = {r['stage']: r for r in rows if r.get('variant') == model['variant']}
            wrapper = same.get('wrapper', {})
            lock = same.get('node_lockstep', {})
            flood = same.get('node_flood', {})
            hr = 'x'.join(str(v) for v in model['hr_size'])
            lines.append(
                f'| {key} | {hr} | {model["variant"]} | {_fmt(model["gflop_per_frame"])} '
                f'| {_fmt(model["median_ms"])} / {_fmt(model["p95_ms"])} '
                f'| {_fmt(model["fps"], 2)} | {_fmt(model["achieved_gflop_s"])} '
                f'| {_fmt(model.get("sys_ms_per_frame"), 0)} '
                f'| {_fmt(model.get("peak_mem_delta_mb"), 0)} '
                f'| {_fmt(wrapper.get("median_ms"))} / {_fmt(wrapper.get("p95_ms"))} '
                f'| {_fmt(wrapper.get("ratio_to_model"), 2)} '
                f'| {_node_cell(lock)} | {_fmt(lock.get("ratio_to_model"), 2)} '
                f'| {_flood_cell(flood)} | {_fmt(lock.get("peak_mem_mb"), 0)} |')
    lines += ['', '### Speed options (same run; speedup = baseline ms / option ms)', '',
              '| case | option | stage | baseline | with option | baseline ms | option ms '
              '| speedup | mem MiB (base -> option) |', '|---|---|---|---|---|---|---|---|---|']
    for row in report['ratios']:
        mem = '-'
        if 'baseline_mem_mb' in row:
            mem = f'{row["baseline_mem_mb"]:.0f} -> {row["option_mem_mb"]:.0f}'
        extra = f' (compile {row["compile_s"]:.0f} s)' if 'compile_s' in row else ''
        lines.append(f'| {row["case"]} | {row["option"]}{extra} | {row["stage"]} '
                     f'| {row["baseline"]} | {row["option_variant"]} '
                     f'| {_fmt(row["baseline_ms"])} | {_fmt(row["option_ms"])} '
                     f'| {_fmt(row["speedup"], 2)} | {mem} |')
    if report['accuracy']:
        lines += ['', '### Reduced precision vs fp32 (wrapper output on the synthetic frame)',
                  '', '| case | precision | MAD mm | p99 mm | max mm | depth range mm |',
                  '|---|---|---|---|---|---|']
        for row in report['accuracy']:
            lines.append(f'| {row["case"]} | {row["precision"]} | {_fmt(row["mad_mm"], 3)} '
                         f'| {_fmt(row["p99_mm"], 2)} | {_fmt(row["max_mm"], 1)} '
                         f'| {row["depth_range_mm"][0]}-{row["depth_range_mm"][1]} |')
    errors = [r for r in records if 'error' in r]
    if errors:
        lines += ['', '### Failed measurements', '']
        lines += [f'- {r["case"]} {r["stage"]} {r["variant"]}: {r["error"]}' for r in errors]
    lines += ['', 'Memory: model/wrapper = peak RSS increase of this process during the '
              'measurement (CPU; CUDA: max_memory_allocated), node = peak RSS of the node '
              'process. FLOPs = 2 x conv/deconv MACs. Kernel ms = system CPU time per frame '
              '(page faults of fresh activations; see dsr_ros.cpu_tuning).', '']
    return '\n'.join(lines)


def _node_cell(record: Dict[str, Any]) -> str:
    if 'median_ms' not in record:
        return 'failed' if 'error' in record else '-'
    return f'{_fmt(record["median_ms"])} / {_fmt(record["p95_ms"])}'


def _flood_cell(record: Dict[str, Any]) -> str:
    if not record:
        return '-'
    text = f'{_fmt(record.get("fps"), 2)}'
    if record.get('published'):
        text += f' ({record["received"]}/{record["published"]} frames'
        if 'median_ms' in record:
            text += f', {_fmt(record["median_ms"], 0)} / {_fmt(record["p95_ms"], 0)} ms'
        text += ')'
    return text


# ---------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python -m dsr_ros.benchmark', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--weights', help='DSRNet checkpoint; default: '
                        'dsr_ros.weights.default_weights_path() or random lite weights')
    parser.add_argument('--scales', type=int, nargs='+', default=[4, 8])
    parser.add_argument('--sizes', type=parse_size, nargs='+',
                        default=[(160, 120), (320, 240)], help='LR input sizes WIDTHxHEIGHT')
    parser.add_argument('--devices', nargs='+', default=['cpu', 'cuda'])
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16', 'fp16'],
                        choices=['fp32', 'bf16', 'fp16'],
                        help='fp16 runs on CUDA only, bf16 only where it has fast kernels')
    parser.add_argument('--frames', type=int, default=30, help='most timed frames per '
                        'measurement (fewer when --budget runs out, at least 2-3)')
    parser.add_argument('--budget', type=float, default=3.0,
                        help='seconds of timed frames per measurement')
    parser.add_argument('--warmup', type=int, default=1, help='untimed calls first')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads for the main rows (0 = torch default)')
    parser.add_argument('--node', action=argparse.BooleanOptionalAction, default=True,
                        help='also measure the ROS node through DDS')
    parser.add_argument('--node-rate', type=float, default=30.0,
                        help='most frames/s published in the flood phase')
    parser.add_argument('--node-startup-timeout', type=float, default=90.0)
    parser.add_argument('--ablation-size', type=parse_size, default=None,
                        help='LR size on which the option ablations run (default: smallest)')
    parser.add_argument('--tile-size', type=int, default=96,
                        help='LR tile for the tiling row (0 = none); measured on the ablation '
                        'size and on cases of at least --tile-min-pixels LR pixels')
    parser.add_argument('--tile-min-pixels', type=int, default=320 * 240)
    parser.add_argument('--huge-pixels', type=float, default=4e6,
                        help='outputs with more pixels run only the preferred precision, '
                        'without option ablations (0 = no limit)')
    parser.add_argument('--process-options', action=argparse.BooleanOptionalAction,
                        default=sys.platform.startswith('linux'),
                        help='measure the process settings of dsr_ros.cpu_tuning (glibc malloc '
                        'thresholds, OMP_WAIT_POLICY=PASSIVE) on the ablation size, in fresh '
                        'node processes (needs --node)')
    parser.add_argument('--compile', action='store_true',
                        help='also measure torch.compile (tens of seconds per shape on CPU)')
    parser.add_argument('--cuda-graphs', action=argparse.BooleanOptionalAction, default=True,
                        help='measure CUDA graph replay of the bare net (CUDA only)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID for the node run (default: random 101-200)')
    parser.add_argument('--out', default='out/benchmark', help='folder for the JSON report')
    parser.add_argument('--quiet', action='store_true', help='no progress lines on stderr')
    return parser


def _isolate_dds(opts: argparse.Namespace) -> None:
    """Keep DDS on loopback and in a domain of its own (docs/ros.md) before rclpy starts."""
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    domain = opts.domain_id if opts.domain_id is not None else random.randint(101, 200)
    os.environ['ROS_DOMAIN_ID'] = str(domain)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the benchmark, print Markdown, write JSON + Markdown; return the report dict."""
    opts = build_parser().parse_args(argv)
    out_dir = Path(opts.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    if opts.threads:
        torch.set_num_threads(opts.threads)
    opts.threads = opts.threads or 0
    devices = _available_devices(opts.devices, notes)
    if not devices:
        raise SystemExit('no requested device is available')
    ablation_size = opts.ablation_size or min(opts.sizes, key=lambda s: s[0] * s[1])
    node: Optional[NodeBench] = None
    report: Dict[str, Any] = {'meta': _meta(opts, sys.argv if argv is None else
                                            ['dsr_ros.benchmark', *argv]),
                              'notes': notes, 'cases': [], 'records': [], 'ratios': [],
                              'accuracy': [], 'threads': torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix='dsr_bench_') as tmp:
        models, model_notes = build_models(opts.scales, opts.weights, Path(tmp))
        notes.extend(model_notes)
        if opts.node:
            try:
                importlib.import_module('dsr_ros.node')
                _isolate_dds(opts)
                node = NodeBench(opts)
                notes.append(f'node: dsr_ros.node over Fast DDS on loopback, ROS_DOMAIN_ID '
                             f'{os.environ["ROS_DOMAIN_ID"]}; lockstep = next frame after '
                             f'the previous result, flood = 2x that rate (max '
                             f'{opts.node_rate:g}/s), node keeps the newest frame')
            except ImportError as error:
                notes.append(f'node: skipped ({error})')
        if not opts.compile:
            notes.append('torch.compile: not measured (pass --compile; inductor needs tens '
                         'of seconds per input shape on a 2-core CPU)')
        try:
            for device in devices:
                precisions = _precisions_for(device, opts.precisions, notes)
                for scale in opts.scales:
                    for width, height in opts.sizes:
                        model, path = models[scale]
                        case = Case(device, scale, width, height, model, path)
                        ablate = (width, height) == tuple(ablation_size)
                        result = run_case(case, opts, precisions, ablate, node, out_dir)
                        report['cases'].append(case.key)
                        for name in ('records', 'ratios', 'accuracy', 'notes'):
                            report[name].extend(result[name])
                        _write(report, out_dir)
        finally:
            if node is not None:
                node.close()
    text = render_markdown(report)
    print(text)
    _write(report, out_dir, text)
    return report


def _write(report: Dict[str, Any], out_dir: Path, text: Optional[str] = None) -> None:
    """Write after every case, so an interrupted long run still leaves its numbers."""
    with open(out_dir / JSON_NAME, 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1, default=str)
    if text is not None:
        (out_dir / MARKDOWN_NAME).write_text(text, encoding='utf-8')


if __name__ == '__main__':
    main()
