"""``python -m benchmarks`` (``make bench``): bare net, wrapper and node, in one run.

For every device, scale, LR size and network it measures the bare DSRNet forward, the numpy
wrapper (:meth:`dsr_ros.inference.DepthSuperResolver.run`) and the full node path through DDS,
with a 2048^3 fp32 matmul timed interleaved with the bare net as the yardstick (per-frame time /
matmul time and the fraction of the matmul's GFLOP/s), plus speed options as ratios measured in
the same run: precision (bf16 where the CPU has it natively, fp16 on CUDA), channels_last,
threads, torch.compile with freezing, ONNX Runtime, CUDA graphs, pinned host memory, and in
fresh node processes the process settings of :mod:`dsr_ros.cpu_tuning`. It prints Markdown
and writes ``benchmark.json`` and ``benchmark.md`` into ``--out``. ``--quick`` is a seconds-
long smoke run on tiny frames (what the tests run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from benchmarks.frames import parse_size
from benchmarks.model_timing import Case, Settings
from benchmarks.models import build_models
from benchmarks.node_timing import NodeBench, isolate_dds
from benchmarks.report import machine_meta, render_markdown, write_report
from benchmarks.run import Options, precisions_for, run_case
from dsr_ros.cpu_tuning import tune_malloc

__all__ = ['build_parser', 'main']

#: ``--quick``: defaults of a seconds-long smoke run (explicit arguments still win).
QUICK = {'sizes': [(16, 12)], 'frames': 2, 'budget': 0.01, 'matmul_size': 256,
         'compile': False, 'onnxruntime': False, 'process_options': False, 'quiet': True,
         'node_startup_timeout': 60.0}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``python -m benchmarks --help``)."""
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--weights', nargs='+', default=None,
                        help='DSRNet checkpoints; default: the shipped ladder (tiny, lite, '
                        'paper), random weights of the ladder configs where none is shipped')
    parser.add_argument('--labels', nargs='+', default=None, help='one per --weights')
    parser.add_argument('--scales', type=int, nargs='+', default=[4])
    parser.add_argument('--sizes', type=parse_size, nargs='+', default=[(160, 120)],
                        help='LR input sizes WIDTHxHEIGHT')
    parser.add_argument('--devices', nargs='+', default=['cpu', 'cuda'])
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16', 'fp16'],
                        choices=['fp32', 'bf16', 'fp16'],
                        help='fp16 runs on CUDA only, bf16 only where it is native')
    parser.add_argument('--frames', type=int, default=30, help='most timed frames per '
                        'measurement (fewer when --budget runs out, at least 2-3)')
    parser.add_argument('--budget', type=float, default=3.0,
                        help='seconds of timed frames per measurement')
    parser.add_argument('--warmup', type=int, default=1, help='untimed calls first')
    parser.add_argument('--matmul-size', type=int, default=2048,
                        help='n of the n^3 fp32 matmul reference')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads for the main rows (0 = torch default)')
    parser.add_argument('--node', action=argparse.BooleanOptionalAction, default=True,
                        help='also measure the ROS node through DDS')
    parser.add_argument('--node-rate', type=float, default=30.0,
                        help='most frames/s published in the flood phase')
    parser.add_argument('--node-startup-timeout', type=float, default=90.0)
    parser.add_argument('--ablate', nargs='*', default=None,
                        help='model labels whose option ablations run (default: the first '
                        'model of each scale, on the smallest size)')
    parser.add_argument('--tile-size', type=int, default=0,
                        help='also time the wrapper with this LR tile (0 = not measured)')
    parser.add_argument('--huge-pixels', type=float, default=4e6,
                        help='outputs with more pixels run only the preferred precision, '
                        'without option ablations (0 = no limit)')
    parser.add_argument('--compile', action=argparse.BooleanOptionalAction, default=True,
                        help='measure torch.compile with freezing (tens of seconds per shape)')
    parser.add_argument('--onnxruntime', action=argparse.BooleanOptionalAction, default=True,
                        help='measure ONNX Runtime on the CPU')
    parser.add_argument('--cuda-graphs', action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument('--process-options', action=argparse.BooleanOptionalAction,
                        default=sys.platform.startswith('linux'),
                        help='compare the node process settings of dsr_ros.cpu_tuning in '
                        'fresh node processes (needs --node)')
    parser.add_argument('--malloc-tuning', action=argparse.BooleanOptionalAction, default=True,
                        help='apply the glibc malloc settings the node applies at start-up '
                        '(dsr_ros.cpu_tuning) to this process too, so bare-net and wrapper '
                        'times are what the node would see')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID for the node runs (default: random 101-200)')
    parser.add_argument('--quick', action='store_true',
                        help=f'smoke run: defaults {QUICK}')
    parser.add_argument('--out', default='out/benchmark', help='folder for the reports')
    parser.add_argument('--quiet', action='store_true', help='no progress lines on stderr')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse, with the ``--quick`` defaults when it is given."""
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if '--quick' in args:
        parser.set_defaults(**QUICK)
    return parser.parse_args(args)


def _devices(names: Sequence[str], notes: List[str]) -> List[torch.device]:
    devices = []
    for name in names:
        if name.startswith('cuda') and not torch.cuda.is_available():
            notes.append(f'device {name}: not available here, skipped')
            continue
        devices.append(torch.device(name))
    return devices


def _start_node(opts: argparse.Namespace, settings: Settings, notes: List[str]
                ) -> Optional[NodeBench]:
    if not opts.node:
        return None
    try:
        import rclpy  # noqa: F401 - only to know whether the node can run here
    except ImportError as error:
        notes.append(f'node: skipped ({error})')
        return None
    domain = isolate_dds(opts.domain_id)
    notes.append(f'node: dsr_ros.ros.node over Fast DDS on loopback, ROS_DOMAIN_ID {domain}; '
                 'lockstep = next frame after the previous result, flood = 2x that rate '
                 f'(max {opts.node_rate:g}/s), the node keeps the newest frame')
    return NodeBench(settings, rate_hz=opts.node_rate,
                     startup_timeout_s=opts.node_startup_timeout)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run the benchmark, print Markdown, write JSON + Markdown; return the report dict."""
    opts = parse_args(argv)
    if opts.malloc_tuning:
        tune_malloc()  # before the worker threads allocate, as dsr_ros.ros.node.main does
    out_dir = Path(opts.out)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    notes: List[str] = []
    devices = _devices(opts.devices, notes)
    if not devices:
        raise SystemExit('no requested device is available')
    settings = Settings(opts.warmup, opts.frames, opts.budget, opts.matmul_size)
    notes.append('this process: glibc malloc thresholds ' +
                 ('applied, as in the node' if opts.malloc_tuning else 'left at their defaults'))
    command = ['python -m benchmarks', *(sys.argv[1:] if argv is None else argv)]
    report: Dict[str, Any] = {'meta': machine_meta(command), 'notes': notes, 'cases': [],
                              'records': [], 'ratios': [], 'accuracy': [], 'matmul': [],
                              'threads': torch.get_num_threads()}
    smallest = min(opts.sizes, key=lambda s: s[0] * s[1])

    def log(message: str) -> None:
        if not opts.quiet:
            print(f'[bench {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr,
                  flush=True)

    with tempfile.TemporaryDirectory(prefix='dsr_bench_') as tmp:
        models, model_notes = build_models(opts.scales, opts.weights, opts.labels, Path(tmp))
        notes.extend(model_notes)
        node = _start_node(opts, settings, notes)
        try:
            for device in devices:
                precisions = precisions_for(device, opts.precisions, notes)
                for scale, nets in models.items():
                    ablated = opts.ablate if opts.ablate is not None else [nets[0].label]
                    for width, height in opts.sizes:
                        for model in nets:
                            case = Case(model.label, device, scale, width, height, model.net,
                                        model.weights_path)
                            options = Options(
                                opts.threads,
                                model.label in ablated and (width, height) == smallest,
                                opts.compile, opts.onnxruntime, opts.cuda_graphs,
                                opts.process_options, opts.tile_size, opts.huge_pixels)
                            result = run_case(case, settings, options, precisions, node,
                                              out_dir, log)
                            report['cases'].append(case.key)
                            report['matmul'].append(result['matmul'])
                            for name in ('records', 'ratios', 'accuracy', 'notes'):
                                report[name].extend(result[name])
                            write_report(report, out_dir)
        finally:
            if node is not None:
                node.close()
    report['meta']['load_average_end'] = list(os.getloadavg())
    text = render_markdown(report)
    print(text)
    write_report(report, out_dir, text)
    return report
