"""Which arithmetic precision inference uses on a device, and which requests to refuse.

* ``fp32`` runs everywhere.
* ``bf16`` (autocast) is fast only where the hardware has it: CUDA GPUs that support it, and
  CPUs with native bf16 instructions (x86 ``amx_bf16`` or ``avx512_bf16``, Arm ``bf16``). On
  other CPUs PyTorch falls back to a reference kernel: measured on a Zen 3 (no AVX-512, no AMX)
  37 s per 640x480 frame, 75x slower than fp32, with up to 138 mm error. An explicit ``bf16``
  there is refused at start-up instead of silently running that slowly.
* ``fp16`` (autocast) needs CUDA.
* ``auto`` (the node's default) times a few forward passes of the loaded model in fp32 and in
  the device's 16-bit precision (fp16 on CUDA; bf16 on a CPU with native bf16) and takes the
  16-bit one only when it is at least :data:`MIN_SPEEDUP` times faster; fp32 otherwise. Small
  or unusual nets may not gain, and on a GPU 16 bits can even be slower: on an H100 the paper
  net (64 x 5) ran 0.3x as fast in fp16 as in fp32 for a 160x120 frame, the lite net 1.47x.

Reduced precision is applied with autocast, never by converting the model: the net's global
bicubic residual and its output stay fp32 (a depth of several metres rounded to fp16 or bf16
would move by millimetres to centimetres), only the convolutions run in 16 bits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Tuple

import torch
from torch import nn

__all__ = ['MIN_SPEEDUP', 'NATIVE_BF16_FLAGS', 'PRECISIONS', 'PrecisionChoice',
           'PrecisionError', 'autocast_dtype', 'check_precision', 'choose_precision',
           'cpu_flags', 'measure_speedup', 'native_bf16_flags']

#: Values of the node's ``precision`` parameter.
PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')
#: /proc/cpuinfo flags (x86 ``flags``, Arm ``Features``) that mean native bf16 arithmetic.
NATIVE_BF16_FLAGS = ('amx_bf16', 'avx512_bf16', 'bf16')
#: ``auto`` takes a 16-bit precision only when it measured at least this much faster than fp32.
MIN_SPEEDUP = 1.2
#: LR input (height, width) of the start-up measurement: big enough that the convolutions
#: dominate, small enough to cost well under a second with the shipped model.
PROBE_SHAPE = (32, 48)


class PrecisionError(ValueError):
    """A precision this device cannot run (usefully); the message says what to use instead."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision inference runs in and, in words, why (logged by the node)."""

    precision: str
    reason: str


def cpu_flags(cpuinfo: Path = Path('/proc/cpuinfo')) -> FrozenSet[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = cpuinfo.read_text(errors='replace')
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip().lower() in ('flags', 'features'):
            return frozenset(value.split())
    return frozenset()


def native_bf16_flags() -> Tuple[str, ...]:
    """The native-bf16 flags of this CPU, e.g. ``('amx_bf16', 'avx512_bf16')``; () if none.

    The one place the hardware is asked (tests replace this function to play another CPU).
    """
    flags = cpu_flags()
    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in flags)


def autocast_dtype(precision: str) -> torch.dtype:
    """The autocast dtype of a reduced precision (``bf16`` or ``fp16``)."""
    return {'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`PrecisionError` (one line, with the alternative) if ``device`` cannot run
    ``precision`` at a useful speed; ``auto`` is always accepted."""
    if precision not in PRECISIONS:
        raise PrecisionError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise PrecisionError(f'precision fp16 needs a CUDA device, not {device}; use '
                             'precision auto, fp32 or (on CPUs with native bf16) bf16')
    if precision != 'bf16':
        return
    if device.type == 'cuda':
        if not torch.cuda.is_bf16_supported():
            raise PrecisionError(f'precision bf16 is not supported by {device}; use precision '
                                 'auto or fp16')
    elif device.type == 'cpu' and not native_bf16_flags():
        raise PrecisionError(
            'precision bf16 refused: this CPU has no native bf16 (none of '
            f'{", ".join(NATIVE_BF16_FLAGS)} in /proc/cpuinfo), where PyTorch emulates it about '
            '75x slower than fp32; use precision auto or fp32')


def choose_precision(requested: str, device: torch.device, model: nn.Module, *,
                     channels_last: bool = True) -> PrecisionChoice:
    """Resolve ``requested`` (see the module docstring) for ``model``, already on ``device``.

    Raises :class:`PrecisionError` for a precision the device cannot run usefully.
    """
    check_precision(requested, device)
    if requested != 'auto':
        return PrecisionChoice(requested, 'as requested')
    if device.type == 'cuda':
        reduced, where = 'fp16', 'CUDA device'
    elif device.type == 'cpu':
        flags = native_bf16_flags()
        if not flags:
            return PrecisionChoice('fp32', 'auto: this CPU has no native bf16')
        reduced, where = 'bf16', f'CPU with {"/".join(flags)}'
    else:
        return PrecisionChoice('fp32', f'auto: {device.type} device')
    speedup = measure_speedup(model, device, autocast_dtype(reduced),
                              channels_last=channels_last)
    verdict = (reduced, 'at least') if speedup >= MIN_SPEEDUP else ('fp32', 'below')
    return PrecisionChoice(
        verdict[0], f'auto: {where}, {reduced} measured {speedup:.2f}x the speed of fp32 '
                    f'({verdict[1]} {MIN_SPEEDUP}x)')


@torch.inference_mode()
def measure_speedup(model: nn.Module, device: torch.device,
                    dtype: torch.dtype = torch.bfloat16, *,
                    shape: Tuple[int, int] = PROBE_SHAPE, repeats: int = 3,
                    warmup: int = 1, channels_last: bool = True) -> float:
    """fp32 time / ``dtype`` (autocast) time of ``model`` on one ``shape`` input.

    The fastest of ``repeats`` passes each, after ``warmup`` passes each (a process's first
    passes create the oneDNN kernels and fault in memory), interleaved so that other processes
    on the cores slow both alike; the minimum is what the hardware can do when not disturbed.
    """
    channels = int(getattr(model, 'in_channels', 1))
    generator = torch.Generator().manual_seed(0)
    sample = torch.rand(1, channels, *shape, generator=generator).to(device)
    if channels_last:
        sample = sample.contiguous(memory_format=torch.channels_last)

    def seconds(dtype: torch.dtype) -> float:
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            model(sample)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    times = {torch.float32: [], dtype: []}
    for round_index in range(warmup + repeats):
        for dtype, samples in times.items():
            elapsed = seconds(dtype)
            if round_index >= warmup:
                samples.append(elapsed)
    return min(times[torch.float32]) / min(times[dtype])
