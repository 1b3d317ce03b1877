"""Bare-net and wrapper measurements of one case, variants interleaved with the matmul.

``model``: the bare DSRNet forward (warmed up, ``torch.inference_mode``, CUDA synchronised).
``wrapper``: :meth:`dsr_ros.inference.DepthSuperResolver.run` on a ``uint16`` frame with holes
(conversion, masks, hole filling, scaling, padding, encoding): the node's work minus ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from benchmarks.matmul import matmul_callable, matmul_flops, with_matmul_ratios
from benchmarks.timing import Timed, in_worker_thread, summarize, time_round_robin
from benchmarks.variants import Variant, model_callable
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet

__all__ = ['Case', 'Settings', 'measure_models', 'measure_wrappers', 'record']

MATMUL_NAME = 'matmul'


@dataclass
class Case:
    """One network at one scale and LR size on one device."""

    label: str
    device: torch.device
    scale: int
    width: int
    height: int
    model: DSRNet
    weights_path: str
    macs: int = 0

    @property
    def key(self) -> str:
        return f'{self.label} {self.device.type} x{self.scale} {self.width}x{self.height}'

    @property
    def out_size(self) -> Tuple[int, int]:
        return self.width * self.scale, self.height * self.scale


@dataclass(frozen=True)
class Settings:
    """How long to measure: warm-up calls, most frames, seconds per item, matmul size."""

    warmup: int = 1
    frames: int = 30
    budget_s: float = 3.0
    matmul_size: int = 2048


def _raiser(error: Exception) -> Callable[[], Any]:
    def fail() -> Any:
        raise error
    return fail


def record(case: Case, stage: str, variant: Variant, stats: Dict[str, float],
           memory: Any = None) -> Dict[str, Any]:
    """The JSON record of one measurement (the README's tables are made from these)."""
    flops = 2 * case.macs
    result: Dict[str, Any] = {
        'case': case.key, 'model': case.label, 'device': case.device.type,
        'scale': case.scale, 'lr_size': [case.width, case.height],
        'hr_size': list(case.out_size), 'stage': stage, 'variant': variant.label(),
        'precision': variant.precision, 'channels_last': variant.channels_last,
        'threads': variant.threads or torch.get_num_threads(), 'compile': variant.compile,
        'runtime': variant.runtime, 'cuda_graph': variant.cuda_graph,
        'cudnn_benchmark': variant.cudnn_benchmark, 'host_io': variant.host_io,
        'tile_size': variant.tile_size, 'process': variant.process,
        'gflop_per_frame': flops / 1e9,
    }
    result.update(stats)
    fps = stats.get('fps')
    result['achieved_gflop_s'] = flops / 1e9 * fps if fps else None
    if memory is not None:
        result.update({'peak_mem_mb': memory.peak_mb, 'peak_mem_delta_mb': memory.delta_mb,
                       'mem_kind': memory.kind})
    return result


def _timed_record(case: Case, stage: str, variant: Variant, item: Timed) -> Dict[str, Any]:
    if item.error is not None or not item.seconds:
        return {'case': case.key, 'model': case.label, 'stage': stage,
                'variant': variant.label(), 'error': item.error or 'no frames timed'}
    result = record(case, stage, variant, summarize(item.seconds), item.memory)
    result['sys_ms_per_frame'] = item.sys_s * 1e3 / len(item.seconds)
    result['minor_faults_per_frame'] = item.minor_faults / len(item.seconds)
    return result


def _matmul_record(item: Timed, size: int) -> Dict[str, Any]:
    if item.error is not None or not item.seconds:
        return {'stage': MATMUL_NAME, 'error': item.error or 'no calls timed'}
    stats = summarize(item.seconds)
    stats.pop('fps')
    stats.update({'stage': MATMUL_NAME, 'size': size, 'dtype': 'float32',
                  'gflop': matmul_flops(size) / 1e9,
                  'gflop_s': matmul_flops(size) / 1e9 / (stats['median_ms'] / 1e3)})
    return stats


def measure_models(case: Case, variants: List[Variant], settings: Settings
                   ) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """Time the bare forward of several variants and the matmul in turns.

    Returns one record per variant (with its ratios to the matmul) and the matmul record.
    """
    items, infos = [], []
    for variant in variants:
        info: Dict[str, Any] = {}
        try:
            fn, info = model_callable(case.model, case.device, variant, case.height,
                                      case.width)
        except Exception as error:  # noqa: BLE001 - e.g. a runtime that is not installed
            fn = _raiser(error)
        items.append(Timed(variant.label(), fn, variant.threads))
        infos.append(info)
    reference = Timed(MATMUL_NAME, matmul_callable(settings.matmul_size, str(case.device)))
    in_worker_thread(partial(time_round_robin, items + [reference], case.device,
                             warmup=settings.warmup, max_frames=settings.frames,
                             budget_s=settings.budget_s))
    matmul = _matmul_record(reference, settings.matmul_size)
    matmul['case'] = case.key
    records = []
    for variant, item, info in zip(variants, items, infos):
        result = _timed_record(case, 'model', variant, item)
        result.update(info)
        records.append(with_matmul_ratios(result, matmul))
    return records, matmul


def measure_wrappers(case: Case, variants: List[Variant], frame: np.ndarray,
                     settings: Settings, matmul: Optional[Dict[str, Any]] = None
                     ) -> Tuple[List[Dict[str, Any]], Dict[str, np.ndarray]]:
    """Time :meth:`DepthSuperResolver.run` on a uint16 frame per variant, in turns.

    Returns the records and each variant's output (for the precision comparison).
    """
    items, outputs = [], {}
    for variant in variants:
        # From the checkpoint, as the node builds it (its depth scaling included).
        resolver = DepthSuperResolver.from_checkpoint(
            case.weights_path, device=str(case.device), precision=variant.precision,
            channels_last=variant.channels_last, tile_size=variant.tile_size,
            tile_overlap=min(8, max(variant.tile_size // 4, 0)))

        def run(resolver: DepthSuperResolver = resolver, label: str = variant.label()) -> None:
            outputs[label] = resolver.run(frame)
        items.append(Timed(variant.label(), run, variant.threads))
    in_worker_thread(partial(time_round_robin, items, case.device, warmup=settings.warmup,
                             max_frames=settings.frames, budget_s=settings.budget_s))
    records = [with_matmul_ratios(_timed_record(case, 'wrapper', variant, item), matmul or {})
               for variant, item in zip(variants, items)]
    return records, outputs
