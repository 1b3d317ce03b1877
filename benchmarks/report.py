"""The report of ``python -m benchmarks``: Markdown tables and the JSON they are made from."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from benchmarks.variants import cpu_has_native_bf16

__all__ = ['JSON_NAME', 'MARKDOWN_NAME', 'fmt', 'machine_meta', 'render_markdown',
           'write_report']

JSON_NAME = 'benchmark.json'
MARKDOWN_NAME = 'benchmark.md'


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ''


def machine_meta(command: Sequence[str]) -> Dict[str, Any]:
    """What the numbers depend on: CPU, threads, torch, load average, revision, command."""
    try:
        revision = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                  text=True, timeout=5,
                                  cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        revision = ''
    meta = {'date': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'command': ' '.join(command),
            'python': platform.python_version(), 'torch': torch.__version__,
            'cpu': _cpu_model(), 'cpu_count': os.cpu_count(),
            'torch_threads': torch.get_num_threads(),
            'cpu_capability': torch.backends.cpu.get_cpu_capability(),
            'cpu_native_bf16': cpu_has_native_bf16(), 'git_revision': revision,
            'load_average_start': list(os.getloadavg())}
    if torch.cuda.is_available():
        meta['cuda_devices'] = [torch.cuda.get_device_name(i)
                                for i in range(torch.cuda.device_count())]
    return meta


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: ``-`` for missing or non-finite values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def _ms_cell(item: Dict[str, Any]) -> str:
    if 'median_ms' not in item:
        return 'failed' if 'error' in item else '-'
    return f'{fmt(item["median_ms"])} / {fmt(item["p95_ms"])}'


def _is_main_row(item: Dict[str, Any], threads: int) -> bool:
    return (item['stage'] == 'model' and 'median_ms' in item and item.get('channels_last')
            and not item.get('compile') and item.get('runtime') == 'torch'
            and not item.get('cuda_graph') and not item.get('cudnn_benchmark')
            and not item.get('host_io') and item.get('threads') == threads)


def _stage_table(report: Dict[str, Any]) -> List[str]:
    lines = ['### Stages (ms: median / p95; frame/matmul = time per frame / matmul time, '
             'same run)', '',
             '| case | output | variant | GFLOP/frame | model ms | model fps | GFLOP/s '
             '| of matmul rate | model frame/matmul | wrapper ms | node lockstep ms '
             '| node fps (flood) | node frame/matmul | node mem MiB |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    records = report['records']
    for key in report['cases']:
        rows = [r for r in records if r.get('case') == key]
        for model in (r for r in rows if _is_main_row(r, report['threads'])):
            same = {r['stage']: r for r in rows if r.get('variant') == model['variant']}
            wrapper, lock = same.get('wrapper', {}), same.get('node_lockstep', {})
            flood = same.get('node_flood', {})
            hr = 'x'.join(str(v) for v in model['hr_size'])
            share = model.get('fraction_of_matmul_rate')
            lines.append(
                f'| {key} | {hr} | {model["variant"]} | {fmt(model["gflop_per_frame"], 2)} '
                f'| {_ms_cell(model)} | {fmt(model["fps"], 2)} '
                f'| {fmt(model["achieved_gflop_s"])} '
                f'| {fmt(None if share is None else 100 * share, 0)} % '
                f'| {fmt(model.get("per_frame_over_matmul"), 2)} | {_ms_cell(wrapper)} '
                f'| {_ms_cell(lock)} | {fmt(flood.get("fps"), 2)} '
                f'| {fmt(flood.get("per_frame_over_matmul"), 2)} '
                f'| {fmt(lock.get("peak_mem_mb"), 0)} |')
    return lines


def render_markdown(report: Dict[str, Any]) -> str:
    """The human-readable tables of a report (also written as ``benchmark.md``)."""
    meta = report['meta']
    load = ', '.join(f'{v:.1f}' for v in meta['load_average_start'])
    end = ', '.join(f'{v:.1f}' for v in meta.get('load_average_end', []))
    lines = ['## dsr_ros benchmark', '',
             f'{meta["cpu"]}, {meta["cpu_count"]} CPUs, torch {meta["torch"]} '
             f'({meta["torch_threads"]} threads, {meta["cpu_capability"]}); load average '
             f'{load} at the start, {end or "-"} at the end.', '']
    lines += [f'- {note}' for note in report['notes']]
    lines += ['', '### Matmul reference (fp32, interleaved with each case\'s bare-net timing)',
              '', '| case | size | median ms | GFLOP/s |', '|---|---|---|---|']
    for matmul in report['matmul']:
        lines.append(f'| {matmul.get("case")} | {matmul.get("size")}^3 '
                     f'| {fmt(matmul.get("median_ms"))} | {fmt(matmul.get("gflop_s"))} |')
    lines += [''] + _stage_table(report)
    lines += ['', '### Speed options (same run; speedup = option frames/s / baseline '
              'frames/s)', '', '| case | option | stage | baseline | with option '
              '| baseline ms | option ms | speedup | mem MiB (base -> option) |',
              '|---|---|---|---|---|---|---|---|---|']
    for row in report['ratios']:
        mem = '-'
        if 'baseline_mem_mb' in row:
            mem = f'{row["baseline_mem_mb"]:.0f} -> {row["option_mem_mb"]:.0f}'
        extra = ''
        if 'compile_s' in row:
            extra = f' (compile {row["compile_s"]:.0f} s)'
        elif 'session_build_s' in row:
            extra = f' (session {row["session_build_s"]:.1f} s)'
        lines.append(f'| {row["case"]} | {row["option"]}{extra} | {row["stage"]} '
                     f'| {row["baseline"]} | {row["option_variant"]} '
                     f'| {fmt(row["baseline_ms"])} | {fmt(row["option_ms"])} '
                     f'| {fmt(row["speedup"], 2)} | {mem} |')
    if report['accuracy']:
        lines += ['', '### Reduced precision vs fp32 (wrapper output on the benchmark frame)',
                  '', '| case | precision | MAD mm | p99 mm | max mm | depth range mm |',
                  '|---|---|---|---|---|---|']
        for row in report['accuracy']:
            lines.append(f'| {row["case"]} | {row["precision"]} | {fmt(row["mad_mm"], 3)} '
                         f'| {fmt(row["p99_mm"], 2)} | {fmt(row["max_mm"], 1)} '
                         f'| {row["depth_range_mm"][0]}-{row["depth_range_mm"][1]} |')
    errors = [r for r in report['records'] if 'error' in r]
    if errors:
        lines += ['', '### Failed measurements', '']
        lines += [f'- {r["case"]} {r["stage"]} {r["variant"]}: {r["error"]}' for r in errors]
    lines += ['', 'Memory: node = peak RSS of the node process. FLOPs = 2 x conv/deconv MACs. '
              'Node frame/matmul uses the sustained (flood) rate.', '']
    return '\n'.join(lines)


def write_report(report: Dict[str, Any], out_dir: Path, text: Optional[str] = None) -> None:
    """Write JSON (after every case, so an interrupted run keeps its numbers) and Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / JSON_NAME, 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1, default=str)
    if text is not None:
        (out_dir / MARKDOWN_NAME).write_text(text, encoding='utf-8')
