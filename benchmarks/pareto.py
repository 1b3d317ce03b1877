"""The model ladder's speed/quality table and plot: ``python -m benchmarks.pareto --out DIR``.

For each rung shipped in ``dsr_ros/weights`` (tiny, lite, paper; or the ``--weights`` given) at
x4 from 160x120 to 640x480 in fp32 on the CPU, one run measures the bare net and the node
through DDS (frames/s, p95 latency), the convolution FLOPs per frame, the achieved GFLOP/s as a
fraction of a 2048^3 fp32 matmul timed interleaved with the net, and per-frame time / matmul
time; the quality comes from the real-sensor suite (SR/bicubic and SR/nearest MAD and RMSE per
family) and Middlebury 2005 x4 MAD, run here by ``training.evaluation`` or read from given files.
Writes ``pareto.md`` (the README table), ``pareto.json`` and ``pareto.png`` (quality vs
frames/s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from benchmarks.frames import parse_size
from benchmarks.model_timing import Case, Settings
from benchmarks.models import Model, build_models
from benchmarks.node_timing import NodeBench, isolate_dds
from benchmarks.pareto_plot import plot_pareto
from benchmarks.quality import (BICUBIC_LABEL, RATIOS, middlebury_mad, run_middlebury,
                                run_sensor_suite, sensor_ratios)
from benchmarks.report import fmt, machine_meta
from benchmarks.run import Options, run_case
from dsr_ros.cpu_tuning import tune_malloc

__all__ = ['main', 'pareto_rows', 'render_table']

SCALE = 4


def build_parser() -> argparse.ArgumentParser:
    """The command line (``python -m benchmarks.pareto --help``)."""
    parser = argparse.ArgumentParser(prog='python -m benchmarks.pareto',
                                     description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', type=Path, required=True)
    parser.add_argument('--weights', nargs='+', default=None,
                        help='x4 checkpoints (default: the shipped sensor models of the ladder)')
    parser.add_argument('--labels', nargs='+', default=None, help='one per --weights')
    parser.add_argument('--size', type=parse_size, default=(160, 120), help='LR input size')
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--budget', type=float, default=4.0,
                        help='seconds of timed frames per measurement')
    parser.add_argument('--matmul-size', type=int, default=2048)
    parser.add_argument('--node', action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument('--sensor-json', type=Path, nargs='+', default=None,
                        help='sensor.json of earlier `training.evaluation sensor` runs '
                        '(one per model is fine: each model is looked up in all of them; '
                        'default: run it here)')
    parser.add_argument('--middlebury-json', type=Path, default=None,
                        help='results.json of an earlier `training.evaluation paper --dataset '
                        'middlebury2005 --scales 4` run (default: run it here)')
    parser.add_argument('--quality', action=argparse.BooleanOptionalAction, default=True,
                        help='run the evaluations that were not given as files')
    parser.add_argument('--suite-quick', action='store_true',
                        help='sensor suite on one small crop per data set (minutes, not hours)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 32x24 input, 2 frames, 256^3 matmul, no evaluations')
    return parser


def _speed(models: List[Model], opts: argparse.Namespace) -> Dict[str, Any]:
    """Bare net and node of every model, fp32 on the CPU, with the matmul of the same run."""
    settings = Settings(1, opts.frames, opts.budget, opts.matmul_size)
    node = None
    if opts.node:
        isolate_dds()
        node = NodeBench(settings, startup_timeout_s=120.0)
    width, height = opts.size
    per_model: Dict[str, Any] = {}
    try:
        for model in models:
            case = Case(model.label, torch.device('cpu'), SCALE, width, height, model.net,
                        model.weights_path)
            per_model[model.label] = run_case(case, settings, Options(process_options=False),
                                              ['fp32'], node, opts.out, _log)
    finally:
        if node is not None:
            node.close()
    return per_model


def _log(message: str) -> None:
    print(f'[pareto] {message}', file=sys.stderr, flush=True)


def _stage(result: Dict[str, Any], stage: str) -> Dict[str, Any]:
    return next((r for r in result['records'] if r['stage'] == stage
                 and r.get('variant') == 'fp32 NHWC' and 'error' not in r), {})


def _quality(models: List[Model], opts: argparse.Namespace, notes: List[str]
             ) -> Dict[str, Any]:
    """sensor.json paths (a list) and the results.json path: given, run here, or None."""
    trained = [m for m in models if not m.random]
    weights, labels = [m.weights_path for m in trained], [m.label for m in trained]
    paths: Dict[str, Any] = {'sensor': opts.sensor_json, 'middlebury': opts.middlebury_json}
    runners = {'sensor': lambda: [run_sensor_suite(weights, labels, opts.out / 'sensor',
                                                   opts.suite_quick)],
               'middlebury': lambda: run_middlebury(weights, labels, opts.out / 'middlebury')}
    for name, runner in runners.items():
        if paths[name] is not None or not opts.quality or not trained:
            continue
        _log(f'running the {name} evaluation of {", ".join(labels)}')
        try:
            paths[name] = runner()
        except RuntimeError as error:
            notes.append(f'{name} quality: not available ({error})')
    return paths


def pareto_rows(models: List[Model], speed: Dict[str, Any],
                quality: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per model: speed, efficiency and quality numbers (None where not measured)."""
    rows = []
    for model in models:
        result = speed[model.label]
        bare, lock = _stage(result, 'model'), _stage(result, 'node_lockstep')
        flood = _stage(result, 'node_flood')
        sensor = None
        for path in [] if model.random else quality['sensor'] or []:
            sensor = sensor_ratios(path, model.label, model.weights_path)
            if sensor is not None:
                break
        mad = None
        if quality['middlebury'] is not None and not model.random:
            mad = middlebury_mad(quality['middlebury'], model.label, SCALE)
        rows.append({
            'model': model.label, 'weights': model.weights_path, 'random_weights': model.random,
            'arch': model.net.arch_kwargs(),
            'parameters': sum(p.numel() for p in model.net.parameters()),
            'gflop_per_frame': bare.get('gflop_per_frame'),
            'bare_fps': bare.get('fps'), 'bare_p95_ms': bare.get('p95_ms'),
            'node_fps': flood.get('fps'), 'node_p95_ms': lock.get('p95_ms'),
            'node_lockstep_fps': lock.get('fps'),
            'achieved_gflop_s': bare.get('achieved_gflop_s'),
            'fraction_of_matmul_rate': bare.get('fraction_of_matmul_rate'),
            'bare_frame_over_matmul': bare.get('per_frame_over_matmul'),
            'node_frame_over_matmul': flood.get('per_frame_over_matmul'),
            'matmul_ms': result['matmul'].get('median_ms'),
            'matmul_gflop_s': result['matmul'].get('gflop_s'),
            'sensor': sensor, 'middlebury_x4_mad': mad})
    return rows


def _worst(sensor: Optional[Dict[str, Any]], ratio: str) -> Optional[float]:
    return max(f[ratio] for f in sensor.values()) if sensor else None


def _mean(sensor: Optional[Dict[str, Any]], ratio: str) -> Optional[float]:
    return sum(f[ratio] for f in sensor.values()) / len(sensor) if sensor else None


def render_table(rows: List[Dict[str, Any]], meta: Dict[str, Any],
                 bicubic_mad: Optional[float], opts: argparse.Namespace) -> str:
    """The README's Pareto table plus the per-family sensor table."""
    load = ', '.join(f'{v:.1f}' for v in meta['load_average_start'])
    lines = ['| model | params | GFLOP/frame | bare fps | bare p95 ms | node fps | node p95 ms '
             '| GFLOP/s (of matmul) | frame/matmul bare / node | sensor SR/bicubic MAD '
             '(mean / worst family) | SR/nearest MAD | SR/bicubic RMSE | SR/nearest RMSE '
             '| Middlebury x4 MAD |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        share = row['fraction_of_matmul_rate']
        sensor = row['sensor']
        cells = [f'{fmt(_mean(sensor, r), 3)} / {fmt(_worst(sensor, r), 3)}' for r in RATIOS]
        name = row['model'] + (' (random weights)' if row['random_weights'] else '')
        lines.append(
            f'| {name} | {row["parameters"] / 1e3:.0f} k | {fmt(row["gflop_per_frame"], 2)} '
            f'| {fmt(row["bare_fps"], 2)} | {fmt(row["bare_p95_ms"], 0)} '
            f'| {fmt(row["node_fps"], 2)} | {fmt(row["node_p95_ms"], 0)} '
            f'| {fmt(row["achieved_gflop_s"])} ({fmt(None if share is None else 100 * share, 0)}'
            f' %) | {fmt(row["bare_frame_over_matmul"], 2)} / '
            f'{fmt(row["node_frame_over_matmul"], 2)} | ' + ' | '.join(cells) +
            f' | {fmt(row["middlebury_x4_mad"], 3)} |')
    matmul = ', '.join(f'{fmt(r["matmul_ms"])} ms' for r in rows)
    width, height = opts.size
    lines += ['', f'x{SCALE}, {width}x{height} -> {width * SCALE}x{height * SCALE}, fp32, '
              f'{meta["cpu"]} ({meta["torch_threads"]} threads), load average {load} at the '
              f'start; {opts.matmul_size}^3 fp32 matmul interleaved with each model: {matmul}. '
              'frame/matmul: time per frame / matmul time (issue 9 target for tiny: <= 0.8). '
              'Node fps: sustained output rate with the camera '
              'publishing twice as fast; node p95: lockstep latency (publish -> SR received). '
              f'Sensor ratios < 1: SR beats bicubic / nearest. Middlebury bicubic: '
              f'{fmt(bicubic_mad, 3)}.']
    families = sorted({f for row in rows if row['sensor'] for f in row['sensor']})
    if families:
        lines += ['', '| model | family | SR/bicubic MAD | SR/nearest MAD | SR/bicubic RMSE '
                  '| SR/nearest RMSE |', '|---|---|---|---|---|---|']
        for row in rows:
            for family in families if row['sensor'] else []:
                values = row['sensor'].get(family, {})
                lines.append(f'| {row["model"]} | {family} | '
                             + ' | '.join(fmt(values.get(r), 3) for r in RATIOS) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Measure, evaluate, write ``pareto.md``, ``pareto.json`` and ``pareto.png``."""
    opts = build_parser().parse_args(argv)
    tune_malloc()  # as the node does at start-up, so bare-net times are what it would see
    if opts.quick:
        opts.size, opts.frames, opts.budget, opts.matmul_size = (32, 24), 2, 0.01, 256
        opts.quality = opts.quality and bool(opts.sensor_json or opts.middlebury_json)
    opts.out.mkdir(parents=True, exist_ok=True)
    meta = machine_meta(['python -m benchmarks.pareto',
                         *(sys.argv[1:] if argv is None else argv)])
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix='dsr_pareto_') as tmp:
        models, model_notes = build_models([SCALE], opts.weights, opts.labels, Path(tmp))
        notes += model_notes
        models_x4 = models[SCALE]
        quality = _quality(models_x4, opts, notes)
        speed = _speed(models_x4, opts)
    meta['load_average_end'] = list(os.getloadavg())
    rows = pareto_rows(models_x4, speed, quality)
    bicubic = (middlebury_mad(quality['middlebury'], BICUBIC_LABEL, SCALE)
               if quality['middlebury'] else None)
    text = render_table(rows, meta, bicubic, opts)
    report = {'meta': meta, 'notes': notes, 'rows': rows, 'bicubic_middlebury_x4_mad': bicubic,
              'quality_files': {
                  'sensor': [os.fspath(v) for v in quality['sensor'] or []],
                  'middlebury': (os.fspath(quality['middlebury'])
                                 if quality['middlebury'] else None)},
              'speed': speed}
    (opts.out / 'pareto.json').write_text(json.dumps(report, indent=1, default=str))
    (opts.out / 'pareto.md').write_text(text + ''.join(f'\n- {n}' for n in notes) + '\n')
    plot_pareto(rows, bicubic, opts.out / 'pareto.png')
    print(text)
    for note in notes:
        print(f'- {note}')
    return report


if __name__ == '__main__':
    main()
