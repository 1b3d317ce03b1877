"""CudaGraphRunner's fallback logic on a CPU: the capture is injected, the rules are real.

A fake capture records a "graph" that replays the same forward into a static output, so every
path (settle, capture, replay, fallback on a shape change, re-capture, a failed capture, the
CPU pass-through) runs here; only ``capture_cuda_graph`` itself needs a GPU.
"""

from __future__ import annotations

import logging

import pytest
import torch

from dsr_ros.cuda_graphs import CudaGraphRunner


class FakeCapture:
    """Stands in for CUDA graph capture: replay runs the forward on the static input."""

    def __init__(self, fail_for=()):
        self.captured = []
        self.fail_for = set(fail_for)

    def __call__(self, forward, example):
        if tuple(example.shape) in self.fail_for:
            raise RuntimeError('operation not permitted when stream is capturing\nmore text')
        static_input = example.clone()
        static_output = forward(static_input)
        self.captured.append(tuple(example.shape))

        def replay():
            static_output.copy_(forward(static_input))
        return replay, static_input, static_output


def _forward(batch):
    return batch * 2.0 + 1.0


def _runner(**kwargs):
    capture = kwargs.pop('capture', FakeCapture())
    return CudaGraphRunner(_forward, torch.device('cpu'), capture=capture, enabled=True,
                           **kwargs), capture


def test_settles_then_replays_with_the_right_values():
    runner, capture = _runner(settle=2)
    for step in range(5):
        batch = torch.full((1, 2, 4, 4), float(step))
        torch.testing.assert_close(runner(batch), _forward(batch))
    assert capture.captured == [(1, 2, 4, 4)]
    assert runner.stats == {'eager': 2, 'replays': 3, 'captures': 1, 'failures': 0}


def test_a_shape_change_runs_eagerly_until_it_settles_then_recaptures():
    runner, capture = _runner(settle=2)
    small, large = torch.ones(1, 2, 4, 4), torch.ones(1, 2, 6, 8)
    for _ in range(3):
        runner(small)
    assert runner.stats['replays'] == 1
    runner(large)
    runner(large)
    assert runner.stats == {'eager': 4, 'replays': 1, 'captures': 1, 'failures': 0}
    torch.testing.assert_close(runner(large), _forward(large))  # settled: captured, replayed
    assert capture.captured == [(1, 2, 4, 4), (1, 2, 6, 8)]
    runner(small)  # the first shape's graph is still there
    assert runner.stats['replays'] == 3 and runner.stats['captures'] == 2


def test_oldest_graph_is_dropped_beyond_max_graphs():
    runner, capture = _runner(settle=0, max_graphs=2)
    shapes = [(1, 1, 2, 2), (1, 1, 3, 3), (1, 1, 4, 4)]
    for shape in shapes:
        runner(torch.ones(shape))
    assert runner.shapes == tuple(shapes[1:])
    runner(torch.ones(shapes[0]))  # settled long ago: captured again
    assert capture.captured == shapes + [shapes[0]]


def test_failed_capture_logs_one_line_and_stays_eager(caplog):
    runner, capture = _runner(settle=1, capture=FakeCapture(fail_for={(1, 2, 4, 4)}))
    batch = torch.ones(1, 2, 4, 4)
    with caplog.at_level(logging.WARNING, logger='dsr_ros.cuda_graphs'):
        for _ in range(5):
            torch.testing.assert_close(runner(batch), _forward(batch))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and '\n' not in lines[0]
    assert 'CUDA graph capture failed for input 1x2x4x4' in lines[0]
    assert 'RuntimeError' in lines[0]
    assert runner.stats == {'eager': 5, 'replays': 0, 'captures': 0, 'failures': 1}


def test_cpu_is_a_pass_through():
    capture = FakeCapture()
    runner = CudaGraphRunner(_forward, torch.device('cpu'), capture=capture, settle=0)
    assert not runner.enabled
    for _ in range(3):
        runner(torch.ones(1, 1, 2, 2))
    assert capture.captured == [] and runner.stats['eager'] == 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='settle'):
        CudaGraphRunner(_forward, torch.device('cpu'), settle=-1)
