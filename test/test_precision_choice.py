"""Which precision runs where (dsr_ros.precision) and that reduced precision keeps depth fp32.

The CPU's bf16 support is read from /proc/cpuinfo by ``precision.native_bf16_flags``; tests that
play a CPU without it (a Zen 3, a Jetson) replace that one function. Node-level refusals run a
real node process that does the same before ``main()``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CONFIG, REPO

from dsr_ros import precision
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
from dsr_ros.ros.ros_args import node_command

CPU = torch.device('cpu')
NO_BF16_CPU = 'import dsr_ros.precision as p; p.native_bf16_flags = lambda: ()'


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(precision, 'native_bf16_flags', lambda: ())


def _model(channels: int = 8) -> DSRNet:
    torch.manual_seed(0)
    return DSRNet(4, num_channels=channels, num_blocks=1).eval()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    x86 = tmp_path / 'x86'
    x86.write_text('processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\nprocessor\t: 1\n')
    arm = tmp_path / 'arm'
    arm.write_text('processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n')
    assert {'avx512_bf16', 'amx_bf16'} <= precision.cpu_flags(x86)
    assert 'bf16' in precision.cpu_flags(arm)
    assert precision.cpu_flags(tmp_path / 'missing') == frozenset()


def test_native_bf16_flags_reflect_this_machine():
    flags = precision.cpu_flags()
    expected = tuple(flag for flag in precision.NATIVE_BF16_FLAGS if flag in flags)
    assert precision.native_bf16_flags() == expected
    print(f'this CPU: native bf16 flags {expected or "none"}')


def test_explicit_bf16_is_refused_on_a_cpu_without_native_bf16(cpu_without_bf16):
    with pytest.raises(precision.PrecisionError, match='no native bf16.*use precision auto or '
                                                       'fp32'):
        precision.check_precision('bf16', CPU)
    with pytest.raises(precision.PrecisionError):
        DepthSuperResolver(_model(), device='cpu', precision='bf16')


def test_auto_picks_fp32_on_a_cpu_without_native_bf16(cpu_without_bf16, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError('nothing to measure without native bf16')

    monkeypatch.setattr(precision, 'measure_speedup', never)
    resolver = DepthSuperResolver(_model(), device='cpu', precision='auto')
    assert resolver.precision == 'fp32'
    assert 'no native bf16' in resolver.precision_reason


@pytest.mark.parametrize('speedup, expected', [(2.0, 'bf16'), (1.05, 'fp32')])
def test_auto_on_a_native_bf16_cpu_follows_the_measured_speedup(monkeypatch, speedup, expected):
    monkeypatch.setattr(precision, 'native_bf16_flags', lambda: ('amx_bf16',))
    monkeypatch.setattr(precision, 'measure_speedup', lambda *a, **k: speedup)
    choice = precision.choose_precision('auto', CPU, _model())
    assert choice.precision == expected
    assert f'{speedup:.2f}x' in choice.reason and 'amx_bf16' in choice.reason


@pytest.mark.parametrize('speedup, expected', [(1.47, 'fp16'), (0.32, 'fp32')])
def test_auto_on_cuda_follows_the_measured_fp16_speedup(monkeypatch, speedup, expected):
    # Measured on an H100: fp16 1.47x for the lite net, 0.32x for the paper net (one frame).
    measured = []

    def fake(model, device, dtype, **kwargs):
        measured.append((device.type, dtype))
        return speedup

    monkeypatch.setattr(precision, 'measure_speedup', fake)
    choice = precision.choose_precision('auto', torch.device('cuda'), _model())
    assert measured == [('cuda', torch.float16)]
    assert choice.precision == expected
    assert f'fp16 measured {speedup:.2f}x' in choice.reason and 'CUDA' in choice.reason


def test_auto_on_this_cpu_measures_for_real():
    model = _model(16)
    speedup = precision.measure_speedup(model, CPU)
    assert 0.01 < speedup < 100
    choice = precision.choose_precision('auto', CPU, model)
    if not precision.native_bf16_flags():
        assert choice.precision == 'fp32'
    else:
        assert choice.precision in ('fp32', 'bf16') and 'measured' in choice.reason
    print(f'auto on this CPU: {choice.precision} ({choice.reason})')


def test_fp16_needs_cuda():
    with pytest.raises(precision.PrecisionError, match='fp16 needs a CUDA device'):
        precision.check_precision('fp16', CPU)


@pytest.mark.parametrize('name', ['bf16', 'fp16'])
def test_reduced_precision_keeps_the_residual_and_the_output_fp32(name):
    """A net whose correction is exactly zero must return the fp32 bicubic of its input, bit for
    bit: rounding the residual or the sum to 16 bits would move metres by millimetres."""
    device = 'cuda' if name == 'fp16' else 'cpu'
    if name == 'fp16' and not torch.cuda.is_available():
        pytest.skip('fp16 runs on CUDA only; this machine has no CUDA device')
    model = _model()
    final = model.reconstruction[-1]
    torch.nn.init.zeros_(final.weight)
    torch.nn.init.zeros_(final.bias)
    depth_lr = torch.linspace(0.5, 7.5, 16 * 24).reshape(1, 1, 16, 24).to(device)
    expected = F.interpolate(depth_lr, scale_factor=4, mode='bicubic', align_corners=False)
    with torch.inference_mode(), torch.autocast(device, dtype=precision.autocast_dtype(name)):
        out = model.to(device)(depth_lr)
    assert out.dtype == torch.float32
    assert torch.equal(out, expected)


def _node(parameters: dict, preamble: str = '') -> subprocess.CompletedProcess:
    script = f'{preamble}; import sys; from dsr_ros.ros.node import main; sys.exit(main())'
    argv = node_command([sys.executable, '-c', script], params_file=CONFIG,
                        parameters=parameters)
    return subprocess.run(argv, cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)


def test_node_refuses_bf16_on_a_cpu_without_it_with_one_line(tiny_checkpoint):
    pytest.importorskip('rclpy')  # the node itself runs (a lent GPU machine has no rclpy)
    result = _node({'weights_path': str(tiny_checkpoint), 'device': 'cpu',
                    'precision': 'bf16'}, NO_BF16_CPU)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and '[ERROR]' in lines[0], result.stderr
    assert 'precision bf16 refused: this CPU has no native bf16' in lines[0]
    assert 'Traceback' not in result.stdout + result.stderr


def test_explicit_bf16_matches_this_cpu(tiny_checkpoint):
    """Without faking: accepted exactly when /proc/cpuinfo has native bf16."""
    if precision.native_bf16_flags():
        resolver = DepthSuperResolver.from_checkpoint(tiny_checkpoint, device='cpu',
                                                      precision='bf16')
        out = resolver.run(np.full((8, 8), 1500, np.uint16))
        assert resolver.precision == 'bf16' and out.shape == (32, 32)
    else:
        with pytest.raises(precision.PrecisionError):
            precision.check_precision('bf16', CPU)
