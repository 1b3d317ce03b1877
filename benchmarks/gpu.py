"""``python -m benchmarks.gpu``: the frame path and training throughput on whatever device exists.

Why: issue 30's targets are ratios (wrapper time over net time, torch pipeline over numpy,
TensorRT over torch, device patches/s over CPU-worker patches/s) and ratios only mean something
when every number comes from one run on one machine. Per model and LR size this times, in
turns (:func:`benchmarks.timing.time_round_robin`, in a worker thread as the node runs):

* ``net``: the net's forward alone on exactly the batches one frame feeds it (the tiles of a
  per-tile scaling, padded), eagerly; on CUDA also replayed from CUDA graphs;
* ``numpy``: ``DepthSuperResolver.run`` with the numpy frame pipeline (the CPU path);
* ``torch``: the torch frame pipeline (every step on the device), CUDA graphs off;
* ``torch+graphs``: the same with each frame replayed as one CUDA graph (the CUDA default;
  CUDA only);
* ``tensorrt``: the torch pipeline with the TensorRT backend (only where it imports on CUDA);

and checks the torch pipeline's output against numpy's (max difference in mm). On CUDA a
precision study times the net alone in fp32 and fp16 autocast, channels_last or not, with
``cudnn.benchmark`` off and on (issue 30: fp16 ran 3x slower than fp32 for the paper net on an
H100; the study says which of layout and algorithm choice is to blame). Training:
``PatchDataset`` sensor patches built one by one in this process (one CPU data-loader worker's
rate) against :class:`training.data.patches_torch.DevicePatchSampler` batches on the device.
Writes ``gpu_benchmark.json`` and ``gpu_benchmark.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from benchmarks.frames import parse_size, sensor_frame
from benchmarks.report import fmt, machine_meta
from benchmarks.timing import Timed, in_worker_thread, summarize, sync_for, time_round_robin
from dsr_ros.cuda_graphs import CudaGraphRunner
from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.device import resolve_device
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.tensorrt_backend import import_tensorrt, output_error_mm
from dsr_ros.weights import shipped_weights

__all__ = ['build_parser', 'main']

JSON_NAME = 'gpu_benchmark.json'
MARKDOWN_NAME = 'gpu_benchmark.md'
#: The sensor models' scaling (robust per-patch range), what the training patches use.
TRAINING_SCALING = DepthScaling('range', low_percentile=1.0, high_percentile=99.0,
                                min_relative_span=0.1, fit_tile=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m benchmarks.gpu',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--models', default='tiny,lite,paper',
                        help='shipped sensor model sizes, comma-separated')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(160, 120), (320, 240)],
                        help='LR frame sizes WIDTHxHEIGHT')
    parser.add_argument('--precision', default='auto', help='auto, fp32, fp16 or bf16')
    parser.add_argument('--frames', type=int, default=50, help='timed frames per option, at most')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--budget', type=float, default=10.0,
                        help='seconds per option before stopping (once 3 frames are in)')
    parser.add_argument('--no-tensorrt', action='store_true', help='skip the TensorRT backend')
    parser.add_argument('--train-batch', type=int, default=256, help='device patches per batch')
    parser.add_argument('--train-patches', type=int, default=512,
                        help='CPU patches to time (one worker)')
    parser.add_argument('--patch', type=int, default=96, help='HR training patch edge')
    parser.add_argument('--out', type=Path, default=Path('results/benchmark_gpu_pipeline'))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    opts = build_parser().parse_args(argv)
    device = resolve_device(opts.device)
    notes: List[str] = []
    report: Dict[str, Any] = {'meta': machine_meta([sys.executable, '-m', 'benchmarks.gpu']
                                                   + list(argv if argv is not None
                                                          else sys.argv[1:])),
                              'frames': [], 'notes': notes}
    report['device'] = _device_name(device, report['meta'])
    tensorrt = not opts.no_tensorrt and device.type == 'cuda' and import_tensorrt()[0] is not None
    if device.type != 'cuda':
        notes.append('no CUDA device: CUDA graphs and TensorRT not measured; the torch '
                     'pipeline runs on the CPU (what CI tests), not what it is built for')
    elif not tensorrt:
        notes.append('TensorRT not measured (' + ('--no-tensorrt' if opts.no_tensorrt
                                                  else import_tensorrt()[1]) + ')')
    for size in opts.models.split(','):
        weights = shipped_weights(size.strip(), opts.scale)
        for width, height in opts.sizes:
            _log(f'{size} x{opts.scale} {width}x{height} on {report["device"]}')
            report['frames'].append(in_worker_thread(
                _frame_rows, weights, size.strip(), (width, height), device, opts, tensorrt))
    _log('training patches')
    report['training'] = _training(device, opts)
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / JSON_NAME).write_text(json.dumps(report, indent=1, default=str) + '\n')
    (opts.out / MARKDOWN_NAME).write_text(render_markdown(report))
    _log(f'wrote {opts.out / JSON_NAME} and {opts.out / MARKDOWN_NAME}')
    return report


def _frame_rows(weights: Path, size: str, shape: tuple, device: torch.device,
                opts: argparse.Namespace, tensorrt: bool) -> Dict[str, Any]:
    width, height = shape
    frame = sensor_frame(width, height)

    def resolver(**kwargs: Any) -> DepthSuperResolver:
        return DepthSuperResolver.from_checkpoint(weights, device=str(device),
                                                  precision=opts.precision, **kwargs)

    numpy_path = resolver(frame_pipeline='numpy')
    torch_path = resolver(frame_pipeline='torch', cuda_graphs=False)
    shapes = _net_batches(torch_path, frame)
    net_inputs = [torch.rand(s, device=device) for s in shapes]
    eager = torch_path.frames.torch_frames.eager_forward
    items = [Timed('net', _net_call(eager, net_inputs)),
             Timed('numpy', lambda: numpy_path.run(frame)),
             Timed('torch', lambda: torch_path.run(frame))]
    agreement = {'torch': output_error_mm(numpy_path.run(frame), torch_path.run(frame))}
    if device.type == 'cuda':
        graphed = CudaGraphRunner(eager, device)
        items.append(Timed('net+graphs', _net_call(graphed, net_inputs)))
        with_graphs = resolver(frame_pipeline='torch', cuda_graphs=True)
        items.append(Timed('torch+graphs', lambda: with_graphs.run(frame)))
    if tensorrt:
        trt_path = resolver(frame_pipeline='torch', backend='tensorrt')
        trt_path.run(frame)  # builds (or loads) the engine outside the timing
        if trt_path.frames.backend == 'tensorrt':
            items.append(Timed('tensorrt', lambda: trt_path.run(frame)))
            agreement['tensorrt'] = output_error_mm(torch_path.run(frame), trt_path.run(frame))
    with torch.inference_mode():
        time_round_robin(items, device, warmup=opts.warmup, max_frames=opts.frames,
                         budget_s=opts.budget)
    timings = {item.name: (summarize(item.seconds) if item.seconds else {'error': item.error})
               for item in items}
    graph_stats = None
    if device.type == 'cuda':  # after the timing the frame graph is captured and replays
        agreement['torch+graphs'] = output_error_mm(numpy_path.run(frame), with_graphs.run(frame))
        graph_stats = dict(with_graphs.frames.torch_frames.frame_graphs.stats)
    study = _precision_study(numpy_path.model, shapes, device, opts) \
        if device.type == 'cuda' else {}
    net_ms = timings['net'].get('median_ms')
    row = {'model': size, 'scale': torch_path.scale, 'lr': f'{width}x{height}',
           'hr': f'{width * torch_path.scale}x{height * torch_path.scale}',
           'precision': torch_path.precision, 'precision_reason': torch_path.precision_reason,
           'net_batches': [list(s) for s in shapes], 'timings': timings,
           'agreement_mm': agreement, 'frame_graph_stats': graph_stats,
           'frames_line': torch_path.frames.line,
           'precision_study_ms': study}
    row['wrapper_over_net'] = {name: timing['median_ms'] / net_ms
                               for name, timing in timings.items()
                               if net_ms and 'median_ms' in timing and name != 'net'}
    return row


def _precision_study(model: torch.nn.Module, shapes: List[tuple], device: torch.device,
                     opts: argparse.Namespace) -> Dict[str, float]:
    """Median ms of the net alone on one frame's batches, per ``precision/layout/algorithm``
    (e.g. ``fp16/channels_last/benchmark``)."""
    items = []
    previous = torch.backends.cudnn.benchmark
    try:
        for layout in ('channels_last', 'contiguous'):
            memory_format = getattr(torch, f'{layout}_format' if layout == 'contiguous'
                                    else layout)
            net = copy.deepcopy(model).to(device=device, memory_format=memory_format).eval()
            inputs = [torch.rand(s, device=device).contiguous(memory_format=memory_format)
                      for s in shapes]
            for choice in ('heuristic', 'benchmark'):
                for precision in ('fp32', 'fp16'):
                    items.append(Timed(f'{precision}/{layout}/{choice}',
                                       _study_call(net, inputs, precision, choice)))
        with torch.inference_mode():
            time_round_robin(items, device, warmup=opts.warmup, max_frames=opts.frames,
                             budget_s=opts.budget / 4)
    finally:
        torch.backends.cudnn.benchmark = previous
    return {item.name: summarize(item.seconds)['median_ms'] for item in items if item.seconds}


def _study_call(net: torch.nn.Module, inputs: List[torch.Tensor], precision: str,
                choice: str) -> Callable[[], None]:
    def call() -> None:
        torch.backends.cudnn.benchmark = choice == 'benchmark'
        with torch.autocast('cuda', dtype=torch.float16, enabled=precision == 'fp16'):
            for batch in inputs:
                net(batch)
    return call


def _net_batches(resolver: DepthSuperResolver, frame: np.ndarray) -> List[tuple]:
    """The input shapes the net sees for one frame through the torch pipeline."""
    pipeline = resolver.frames.torch_frames
    forward, shapes = pipeline.net_forward, []

    def recording(batch: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(batch.shape))
        return forward(batch)
    pipeline.net_forward = recording
    try:
        resolver.run(frame)
    finally:
        pipeline.net_forward = forward
    return shapes


def _net_call(forward: Callable[[torch.Tensor], torch.Tensor], inputs: List[torch.Tensor]
              ) -> Callable[[], None]:
    def call() -> None:
        for batch in inputs:
            forward(batch)
    return call


def _training(device: torch.device, opts: argparse.Namespace) -> Dict[str, Any]:
    """Patches/s: PatchDataset (one CPU worker) against DevicePatchSampler on ``device``."""
    from training.data.patches import PatchDataset
    from training.data.patches_torch import DevicePatchSampler
    from training.data.synthetic import room_samples
    samples = room_samples(16, 240, 320)
    scaling = TRAINING_SCALING
    dataset = PatchDataset(samples, opts.scale, opts.patch, opts.train_patches,
                           degradation='sensor', scaling=scaling, in_channels=2)
    started = time.perf_counter()
    for index in range(opts.train_patches):
        dataset[index]
    cpu_rate = opts.train_patches / (time.perf_counter() - started)
    sampler = DevicePatchSampler(samples, opts.scale, opts.patch, device, scaling=scaling,
                                 in_channels=2)
    generator = torch.Generator(device=device).manual_seed(0)
    sync = sync_for(device)
    sampler.batch(opts.train_batch, generator)  # warm-up
    sync()
    batches = max(1, opts.train_patches // opts.train_batch)
    started = time.perf_counter()
    for _ in range(batches):
        sampler.batch(opts.train_batch, generator)
    sync()
    device_rate = batches * opts.train_batch / (time.perf_counter() - started)
    result = {'patch': opts.patch, 'scale': opts.scale, 'cpu_worker_patches_per_s': cpu_rate,
              'device_patches_per_s': device_rate, 'device_batch': opts.train_batch,
              'device_over_one_cpu_worker': device_rate / cpu_rate}
    if device.type == 'cuda':
        try:
            result['gpu_utilization_percent_after'] = torch.cuda.utilization(device)
        except Exception as error:  # noqa: BLE001 - needs pynvml; report why not
            result['gpu_utilization_percent_after'] = f'unavailable ({type(error).__name__})'
    return result


def render_markdown(report: Dict[str, Any]) -> str:
    meta = report['meta']
    lines = [f'# GPU frame path benchmark on {report["device"]}', '',
             f'{meta["date"]}, torch {meta["torch"]}, CPU {meta["cpu"]} '
             f'({meta["cpu_count"]} cores), revision {meta["git_revision"] or "-"}.', '',
             f'Command: `{meta["command"]}`', '',
             'Median ms per frame (net: its forward alone on the batches one frame feeds it; '
             'ratios: option / net).', '',
             '| model | LR -> HR | precision | net | net+graphs | numpy | torch | '
             'torch+graphs | tensorrt | numpy/net | torch/net | torch+graphs/net | '
             'tensorrt/net | max mm: torch, graphs vs numpy; tensorrt vs torch |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for row in report['frames']:
        timings, ratios = row['timings'], row['wrapper_over_net']

        def ms(name: str) -> str:
            return fmt(timings.get(name, {}).get('median_ms'), 2)
        lines.append(
            f'| {row["model"]} x{row["scale"]} | {row["lr"]} -> {row["hr"]} | '
            f'{row["precision"]} | {ms("net")} | {ms("net+graphs")} | {ms("numpy")} | '
            f'{ms("torch")} | {ms("torch+graphs")} | {ms("tensorrt")} | '
            f'{fmt(ratios.get("numpy"), 2)} | {fmt(ratios.get("torch"), 2)} | '
            f'{fmt(ratios.get("torch+graphs"), 2)} | {fmt(ratios.get("tensorrt"), 2)} | '
            + ', '.join(fmt(row['agreement_mm'].get(name, {}).get('max'), 2)
                        for name in ('torch', 'torch+graphs', 'tensorrt')) + ' |')
    studies = [row for row in report['frames'] if row.get('precision_study_ms')]
    if studies:
        names = list(studies[0]['precision_study_ms'])
        lines += ['', 'Net alone, median ms per frame, by precision / layout / cuDNN '
                      'algorithm choice:', '',
                  '| model | LR | ' + ' | '.join(names) + ' |',
                  '|---|---|' + '---|' * len(names)]
        for row in studies:
            cells = ' | '.join(fmt(row['precision_study_ms'].get(name), 2) for name in names)
            lines.append(f'| {row["model"]} x{row["scale"]} | {row["lr"]} | {cells} |')
    training = report.get('training', {})
    if training:
        lines += ['', f'Training patches ({training["patch"]} px HR, x{training["scale"]}, '
                      'sensor degradation): one CPU worker '
                      f'{training["cpu_worker_patches_per_s"]:.0f} patches/s, device sampler '
                      f'{training["device_patches_per_s"]:.0f} patches/s (batch '
                      f'{training["device_batch"]}), '
                      f'{training["device_over_one_cpu_worker"]:.2f}x.']
    lines += [''] + [f'Note: {note}' for note in report['notes']]
    return '\n'.join(lines).rstrip() + '\n'


def _device_name(device: torch.device, meta: Dict[str, Any]) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU ({meta["cpu"]}, {torch.get_num_threads()} torch threads)'


def _log(message: str) -> None:
    print(f'[benchmarks.gpu] {message}', flush=True)


if __name__ == '__main__':
    main()
