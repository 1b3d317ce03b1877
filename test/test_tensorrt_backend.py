"""The optional TensorRT backend on a machine without TensorRT or a GPU (CI): the fallback to
torch and its one line, a build failure's fallback, and the engine cache key."""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest
import torch

from dsr_ros.networks import DSRNet
from dsr_ros.tensorrt_backend import (EngineKey, TensorRTForward, engine_key, import_tensorrt,
                                      output_error_mm, tensorrt_forward, weights_sha256)


def _net(seed: int = 0) -> DSRNet:
    torch.manual_seed(seed)
    return DSRNet(scale=4, num_channels=4, num_blocks=1, in_channels=2).eval()


def _torch_forward(batch):
    return batch[:, :1].repeat_interleave(4, -2).repeat_interleave(4, -1)


def test_missing_tensorrt_falls_back_to_torch_with_one_line(caplog):
    if import_tensorrt()[0] is not None:
        pytest.skip('tensorrt is installed here')
    with caplog.at_level(logging.WARNING, logger='dsr_ros.tensorrt_backend'):
        forward, line = tensorrt_forward(_net(), torch.device('cpu'), 'fp32', _torch_forward)
    assert forward is _torch_forward
    assert line.startswith('backend tensorrt unavailable: tensorrt is not importable')
    assert line.endswith('; using torch') and '\n' not in line
    assert [record.getMessage() for record in caplog.records] == [line]


def test_tensorrt_without_cuda_falls_back(caplog):
    fake = types.SimpleNamespace(__version__='10.0.0')
    forward, line = tensorrt_forward(_net(), torch.device('cpu'), 'fp32', _torch_forward,
                                     trt=fake)
    assert forward is _torch_forward
    assert line == ('backend tensorrt unavailable: TensorRT needs a CUDA device, the resolver '
                    'runs on cpu; using torch')


def test_a_failed_build_falls_back_to_torch_with_one_line(tmp_path, caplog):
    """A TensorRT whose builder fails (here: a stand-in that raises) -> torch, one line."""
    class Logger:
        WARNING = 2

        def __init__(self, severity):
            pass

    def builder(logger):
        raise RuntimeError('out of builder memory\nsecond line')

    fake = types.SimpleNamespace(__version__='10.0.0', Logger=Logger, Builder=builder)
    forward = TensorRTForward(_net(), torch.device('cpu'), 'fp16', _torch_forward,
                              cache_dir=tmp_path, trt=fake, gpu='Test GPU')
    batch = torch.rand(3, 2, 8, 8)
    with caplog.at_level(logging.WARNING, logger='dsr_ros.tensorrt_backend'):
        first, second = forward(batch), forward(batch)
    torch.testing.assert_close(first, _torch_forward(batch))
    torch.testing.assert_close(second, _torch_forward(batch))
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ['backend tensorrt: engine build failed for input 3x2x8x8 fp16 '
                     '(RuntimeError: out of builder memory); using torch']
    assert forward.pending_probe is None and not list(tmp_path.iterdir())


def test_engine_key_names_every_dependency():
    net = _net()
    key = engine_key(net, (35, 2, 32, 32), 'fp16', 'NVIDIA H100 80GB HBM3', '10.3.0')
    assert key == EngineKey(weights_sha256(net), (35, 2, 32, 32), 'fp16',
                            'NVIDIA H100 80GB HBM3', '10.3.0')
    name = key.filename()
    assert name.startswith(f'dsrnet-{key.weights_sha256[:12]}-35x2x32x32-fp16-'
                           'nvidia-h100-80gb-hbm3-trt10.3.0-')
    assert name.endswith('.engine') and name == key.filename()
    changed = [engine_key(_net(seed=1), (35, 2, 32, 32), 'fp16', key.gpu, '10.3.0'),
               engine_key(net, (1, 2, 120, 160), 'fp16', key.gpu, '10.3.0'),
               engine_key(net, (35, 2, 32, 32), 'fp32', key.gpu, '10.3.0'),
               engine_key(net, (35, 2, 32, 32), 'fp16', 'Orin', '10.3.0'),
               engine_key(net, (35, 2, 32, 32), 'fp16', key.gpu, '8.6.1')]
    assert len({name} | {other.filename() for other in changed}) == 6


def test_weights_hash_ignores_device_layout_and_sees_every_weight():
    net = _net()
    digest = weights_sha256(net)
    assert len(digest) == 64
    assert weights_sha256(net.to(memory_format=torch.channels_last)) == digest
    with torch.no_grad():
        net.reconstruction[-1].bias.add_(1e-6)
    assert weights_sha256(net) != digest


def test_output_error_in_mm_for_both_encodings():
    reference = np.array([[1000, 0], [2000, 3000]], np.uint16)
    other = np.array([[1001, 5], [2000, 3000]], np.uint16)
    error = output_error_mm(reference, other)
    assert error['max'] == 1.0 and error['validity_differs'] == 1
    as_metres = [np.where(mm > 0, mm / 1000.0, np.nan).astype(np.float32)
                 for mm in (reference, other)]
    metres = output_error_mm(*as_metres)
    assert metres['max'] == pytest.approx(1.0, abs=1e-3) and metres['validity_differs'] == 1
