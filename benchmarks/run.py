"""One case of ``python -m benchmarks``: which variants to time, in which stages, and the
ratios between them (all measured in the same run, interleaved where they share a process).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from benchmarks.flops import count_conv_macs
from benchmarks.frames import sensor_frame
from benchmarks.matmul import with_matmul_ratios
from benchmarks.model_timing import Case, Settings, measure_models, measure_wrappers
from benchmarks.node_timing import NodeBench
from benchmarks.variants import Variant, cpu_has_native_bf16
from dsr_ros.depth_io import valid_mask

__all__ = ['Options', 'precisions_for', 'run_case']

#: Process settings compared in fresh node processes, against the node's defaults.
PROCESS_OPTIONS = {'no-malloc': 'glibc malloc thresholds off (DSR_ROS_MALLOC_TUNING=0)',
                   'omp-spin': 'OpenMP threads spin (DSR_ROS_OMP_PASSIVE=0)'}


@dataclass(frozen=True)
class Options:
    """What a case measures besides the main rows."""

    threads: int = 0
    ablate: bool = False
    compile: bool = True
    onnxruntime: bool = True
    cuda_graphs: bool = True
    process_options: bool = True
    tile_size: int = 0
    huge_pixels: float = 4e6


def precisions_for(device: torch.device, wanted: Sequence[str], notes: List[str]) -> List[str]:
    """The requested precisions that can be fast on ``device`` (fp32 always stays)."""
    chosen = []
    for precision in wanted:
        if precision == 'fp16' and device.type != 'cuda':
            continue  # fp16 convolutions on CPU are slow reference kernels: never a speed-up
        if precision == 'bf16' and device.type == 'cpu' and not cpu_has_native_bf16():
            notes.append('bf16 on this CPU: no AMX/AVX512-BF16, skipped (would be emulated)')
            continue
        if precision == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
            continue
        chosen.append(precision)
    return chosen or ['fp32']


def _preferred(device: torch.device, precisions: List[str]) -> str:
    """The precision expected to be fastest, chosen before measuring so that the option
    ablations can run interleaved with the main rows."""
    order = ('fp16', 'bf16', 'fp32') if device.type == 'cuda' else ('bf16', 'fp32')
    return next((p for p in order if p in precisions), precisions[0])


def _ablation_pairs(case: Case, opts: Options, preferred: str
                    ) -> List[Tuple[str, Variant, Variant]]:
    """(name, baseline, option) pairs of the bare-net option ablations."""
    threads = opts.threads
    fp32, best = Variant('fp32', True, threads), Variant(preferred, True, threads)
    pairs = [('channels_last', Variant('fp32', False, threads), fp32)]
    if case.device.type == 'cpu':
        if torch.get_num_threads() > 1:
            pairs.append((f'threads {torch.get_num_threads()} vs 1',
                          Variant('fp32', True, 1), fp32))
        if opts.compile:
            pairs.append(('torch.compile (freezing)', fp32, replace(fp32, compile=True)))
        if opts.onnxruntime:
            pairs.append(('ONNX Runtime (CPU EP)', fp32,
                          Variant('fp32', False, threads, runtime='onnxruntime')))
        return pairs
    if opts.compile:
        pairs.append(('torch.compile (freezing)', best, replace(best, compile=True)))
    pairs.append(('cudnn.benchmark', best, replace(best, cudnn_benchmark=True)))
    if opts.cuda_graphs:
        pairs.append(('CUDA graph', best, replace(best, cuda_graph=True)))
    pairs.append(('pinned host memory (in+out copies)', replace(best, host_io='pageable'),
                  replace(best, host_io='pinned')))
    return pairs


def _find(records: List[Dict[str, Any]], stage: str, variant: Variant
          ) -> Optional[Dict[str, Any]]:
    return next((r for r in records if r['stage'] == stage and r['variant'] == variant.label()
                 and 'median_ms' in r), None)


def ratio_row(records: List[Dict[str, Any]], name: str, case: Case, slow: Variant,
              fast: Variant, stage: str = 'model') -> Optional[Dict[str, Any]]:
    """Speed-up of ``fast`` over ``slow`` in one stage (frames/s ratio), None if one failed."""
    base, other = _find(records, stage, slow), _find(records, stage, fast)
    if base is None or other is None or not base.get('fps') or not other.get('fps'):
        return None
    row = {'case': case.key, 'option': name, 'stage': stage, 'baseline': slow.label(),
           'option_variant': fast.label(), 'baseline_ms': 1e3 / base['fps'],
           'option_ms': 1e3 / other['fps'], 'speedup': other['fps'] / base['fps']}
    if base.get('peak_mem_delta_mb') is not None and other.get('peak_mem_delta_mb') is not None:
        row['baseline_mem_mb'] = base['peak_mem_delta_mb']
        row['option_mem_mb'] = other['peak_mem_delta_mb']
    for extra in ('compile_s', 'session_build_s'):
        if extra in other:
            row[extra] = other[extra]
    return row


def _accuracy(case: Case, outputs: Dict[str, np.ndarray], frame: np.ndarray
              ) -> List[Dict[str, Any]]:
    """How far each reduced-precision output is from fp32, in millimetres on valid pixels."""
    reference = outputs.get('fp32')
    if reference is None:
        return []
    valid = valid_mask(reference)
    rows = []
    for precision, output in outputs.items():
        if precision == 'fp32':
            continue
        diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))[valid]
        rows.append({'case': case.key, 'precision': precision, 'reference': 'fp32',
                     'mad_mm': float(diff.mean()), 'p99_mm': float(np.percentile(diff, 99)),
                     'max_mm': float(diff.max()),
                     'depth_range_mm': [int(frame[valid_mask(frame)].min()), int(frame.max())]})
    return rows


def _stage_ratios(records: List[Dict[str, Any]]) -> None:
    """wrapper/model and node/model throughput ratios for the same variant (1.0 = no cost)."""
    models = {r['variant']: r for r in records if r['stage'] == 'model' and r.get('fps')}
    for item in records:
        if item['stage'] == 'model' or not item.get('fps'):
            continue
        label = item.get('variant', '')
        for extra in (f' {item.get("process")}', f' tile{item.get("tile_size")}'):
            label = label.replace(extra, '') if extra.strip() else label
        model = models.get(label)
        if model is not None:
            item['fps_ratio_to_model'] = item['fps'] / model['fps']


def run_case(case: Case, settings: Settings, opts: Options, precisions: List[str],
             node: Optional[NodeBench], out_dir: Path, log: Callable[[str], None]
             ) -> Dict[str, Any]:
    """All measurements of one case; returns records, ratios, accuracy, matmul and notes."""
    frame = sensor_frame(case.width, case.height, seed=1)
    case.macs = count_conv_macs(case.model, case.height, case.width)
    notes: List[str] = []
    threads, ablate = opts.threads, opts.ablate
    preferred = _preferred(case.device, precisions)
    if opts.huge_pixels and case.width * case.height * case.scale ** 2 > opts.huge_pixels:
        precisions, ablate = [preferred], False
        notes.append(f'{case.key}: output above {opts.huge_pixels:g} pixels, so only '
                     f'{preferred} and no option ablations')
    main_variants = [Variant(precision, True, threads) for precision in precisions]
    fp32 = Variant('fp32', True, threads)
    pairs = [(precision, fp32, variant) for precision, variant in zip(precisions, main_variants)
             if precision != 'fp32' and 'fp32' in precisions]
    if ablate:
        pairs += _ablation_pairs(case, opts, preferred)
    model_variants = list(main_variants)
    for _, slow, fast in pairs:
        model_variants += [v for v in (slow, fast) if v not in model_variants]
    log(f'{case.key}: model {", ".join(v.label() for v in model_variants)} + matmul')
    records, matmul = measure_models(case, model_variants, settings)
    timed = [v for v in main_variants if _find(records, 'model', v)]
    fastest = max(timed, key=lambda v: _find(records, 'model', v)['fps']) if timed else fp32
    wrapper_variants = list(main_variants)
    if opts.tile_size and max(case.width, case.height) > opts.tile_size:
        tiled = replace(fastest, tile_size=opts.tile_size)
        wrapper_variants.append(tiled)
        pairs.append((f'tiling {opts.tile_size}', fastest, tiled))
    log(f'{case.key}: wrapper {", ".join(v.label() for v in wrapper_variants)}')
    wrapper_records, outputs = measure_wrappers(case, wrapper_variants, frame, settings, matmul)
    records += wrapper_records
    if node is not None:
        records += _node_records(case, node, main_variants, fastest, frame, records, opts,
                                 ablate, out_dir, log, matmul)
    _stage_ratios(records)
    ratios = [row for name, slow, fast in pairs
              if (row := ratio_row(records, name, case, slow, fast,
                                   'wrapper' if fast.tile_size else 'model'))]
    if ablate and node is not None and opts.process_options and case.device.type == 'cpu':
        for process, name in PROCESS_OPTIONS.items():
            row = ratio_row(records, name, case, fp32, replace(fp32, process=process),
                            'node_flood')
            if row:
                ratios.append(row)
    by_precision = {v.precision: outputs[v.label()] for v in main_variants
                    if v.label() in outputs}
    return {'records': records, 'ratios': ratios, 'notes': notes, 'matmul': matmul,
            'accuracy': _accuracy(case, by_precision, frame)}


def _node_records(case: Case, node: NodeBench, main_variants: List[Variant], fastest: Variant,
                  frame: np.ndarray, records: List[Dict[str, Any]], opts: Options,
                  ablate: bool, out_dir: Path, log: Callable[[str], None],
                  matmul: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Node runs: fp32 (the default) and the fastest precision, plus on ablation cases each
    process setting of dsr_ros.cpu_tuning (a fresh process is the only clean comparison)."""
    fp32 = Variant('fp32', True, opts.threads)
    runs = [v for v in main_variants if v in (fp32, fastest)]
    if ablate and opts.process_options and case.device.type == 'cpu':
        runs += [replace(fp32, process=process) for process in PROCESS_OPTIONS]
    results: List[Dict[str, Any]] = []
    for variant in runs:
        log(f'{case.key}: node {variant.label()}')
        model = _find(records, 'model', replace(variant, process=''))
        expected_s = 1.0 / model['fps'] if model else 1.0
        try:
            results += [with_matmul_ratios(r, matmul)
                        for r in node.run_case(case, variant, frame, expected_s, out_dir)]
        except Exception as error:  # noqa: BLE001 - report and carry on with other cases
            results.append({'case': case.key, 'model': case.label, 'stage': 'node_lockstep',
                            'variant': variant.label(),
                            'error': f'{type(error).__name__}: {error}'[:500]})
            log(f'{case.key}: node failed: {error}')
    return results
