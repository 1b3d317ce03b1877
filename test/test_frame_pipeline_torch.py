"""The torch frame pipeline against the numpy one (DepthSuperResolver.run), on the CPU.

The torch path is what runs on a GPU; CI has none, so the same code runs here on the CPU and
must give what the numpy path gives: identical validity and every pixel within one unit of the
output encoding (1 mm for 16UC1). For float metres the bound is 1e-5 m, about one float32 ulp
at the largest depth 16UC1 can hold (65 m) and a hundredth of the 16UC1 unit: the two paths
run the same float32 operations in the same order on a CPU, so anything larger is a bug, not
rounding (measured: identical bits on a 2-core Xeon).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.frame_ops_torch import fit_rows_t, nearest_valid_index
from dsr_ros.frame_pipeline_torch import TorchFramePipeline
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.placement_torch import average_over_flips_t, move_output_t
from dsr_ros.sampling_geometry import SamplingGeometry
from dsr_ros.sampling_phase import move_output
from dsr_ros.self_ensemble import average_over_flips
from dsr_ros.weights import weights_dir

FLOAT_TOLERANCE_M = 1e-5
LITE_X4 = 'dsrnet_sensor_lite_x4.pt'  # fit_tile 32, 2 input channels: the shipped default


def _frame(height: int = 44, width: int = 70, seed: int = 0) -> np.ndarray:
    """Metres: a slanted wall with a box in front, noise, scattered holes, a hole blob and an
    invalid band as wide as a scaling tile's interior (so some tiles have no depth at all)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    metres = (1.2 + 0.02 * cols + 0.01 * rows
              + 0.005 * rng.standard_normal((height, width))).astype(np.float32)
    metres[height // 3:height // 2, width // 4:width // 2] += 1.5
    metres[5:12, 30:40] = np.nan
    metres[rng.random((height, width)) < 0.05] = 0.0
    metres[:, -6:] = np.nan
    return metres


def _encode(metres: np.ndarray, dtype) -> np.ndarray:
    if dtype == np.uint16:
        return (np.nan_to_num(metres) * 1000).astype(np.uint16)
    return metres.astype(dtype)


def _assert_same(numpy_out: np.ndarray, torch_out: np.ndarray,
                 float_tolerance: float = FLOAT_TOLERANCE_M) -> None:
    assert torch_out.dtype == numpy_out.dtype and torch_out.shape == numpy_out.shape
    if numpy_out.dtype == np.uint16:
        valid_n, valid_t, tolerance = numpy_out > 0, torch_out > 0, 1.0
    else:
        valid_n, valid_t = np.isfinite(numpy_out), np.isfinite(torch_out)
        tolerance = float_tolerance
    np.testing.assert_array_equal(valid_t, valid_n)
    assert valid_n.any() and (~valid_n).any()
    diff = np.abs(numpy_out.astype(np.float64) - torch_out.astype(np.float64))[valid_n]
    assert diff.max() <= tolerance, f'max difference {diff.max()}'


@pytest.fixture(scope='module')
def lite_path():
    return weights_dir() / LITE_X4


CASES = {
    'per-tile': ({}, None),
    'whole-frame': ({'scaling_tile': 0}, None),
    'ensemble-2-told-phase': ({'ensemble_passes': 2, 'sampling_phase': (0, 0)}, None),
    'decimated-phase-3-1': ({}, SamplingGeometry('decimated', (3, 1))),
    'native-subpixel-move': ({'native_alignment': (1.0, 1.25)}, SamplingGeometry('native')),
    'memory-tiles': ({'scaling_tile': 0, 'tile_size': 24}, None),
}


@pytest.mark.parametrize('dtype', [np.uint16, np.float32])
@pytest.mark.parametrize('case', sorted(CASES))
def test_torch_path_matches_numpy_path(lite_path, case, dtype):
    kwargs, geometry = CASES[case]
    resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu', **kwargs)
    assert resolver.fit_tile() == (0 if kwargs.get('scaling_tile') == 0 else 32)
    depth = _encode(_frame(), dtype)
    expected = resolver.run(depth, geometry=geometry)
    got = TorchFramePipeline(resolver).run(depth, geometry=geometry)
    _assert_same(expected, got)


def test_one_batch_of_all_tiles_and_max_depth_match(lite_path):
    """The GPU batching (all tiles at once, blended by one index_add_) and max_depth."""
    resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu')
    pipeline = TorchFramePipeline(resolver, batch_all_tiles=True)
    for dtype, max_depth in ((np.uint16, 2100), (np.float64, 2.1)):
        depth = _encode(_frame(seed=1), dtype)
        _assert_same(resolver.run(depth, max_depth=max_depth),
                     pipeline.run(depth, max_depth=max_depth))


class _ReplayingCapture:
    """CUDA graph capture as the CPU can play it: the "graph" reruns the function captured
    then on whatever the static input holds, so a frame graph that kept anything of the
    frame it was captured on (instead of reading its input) gives the wrong output here."""

    def __init__(self):
        self.count = 0

    def __call__(self, forward, example):
        static_input = example.clone()
        static_output = forward(static_input)
        self.count += 1

        def replay():  # a frame graph's output: the encoded frame and its LR validity
            for static, fresh in zip(static_output, forward(static_input)):
                static.copy_(fresh)
        return replay, static_input, static_output


def test_whole_frame_graph_replays_new_frames_and_recaptures_on_new_settings(lite_path):
    """The frame-graph path (CUDA's default) with the capture played on the CPU: later frames
    of the same shape replay and still match numpy; other settings get their own graph."""
    from dsr_ros.cuda_graphs import CudaGraphRunner
    resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu')
    pipeline = TorchFramePipeline(resolver, batch_all_tiles=True)
    capture = _ReplayingCapture()
    pipeline.frame_graphs = CudaGraphRunner(None, resolver.device, settle=1, capture=capture,
                                            enabled=True, clone_output=False)
    for seed, max_depth in ((0, None), (1, None), (2, None), (3, 2500), (4, 2500)):
        depth = _encode(_frame(seed=seed), np.uint16)
        _assert_same(resolver.run(depth, max_depth=max_depth),
                     pipeline.run(depth, max_depth=max_depth))
    assert capture.count == 2
    assert pipeline.frame_graphs.stats == {'eager': 2, 'replays': 3, 'captures': 2,
                                           'failures': 0}


def test_all_invalid_and_bad_frames(lite_path):
    resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu')
    pipeline = TorchFramePipeline(resolver)
    assert not pipeline.run(np.zeros((5, 6), np.uint16)).any()
    assert np.isnan(pipeline.run(np.full((5, 6), np.nan, np.float32))).all()
    with pytest.raises(ValueError, match='2-D depth'):
        pipeline.run(np.zeros((3,), np.uint16))
    with pytest.raises(ValueError, match='uint16'):
        pipeline.run(np.zeros((4, 4), np.int32))


def test_nearest_valid_index_is_scipys_ties_included():
    """Random masks, sparse lattices (every hole has several equidistant valid pixels) and
    hole blocks: the index is scipy's, to the pixel."""
    rng = np.random.default_rng(0)
    for trial in range(400):
        height, width = (int(v) for v in rng.integers(1, 28, 2))
        kind = trial % 3
        if kind == 0:
            valid = rng.random((height, width)) < rng.uniform(0.02, 0.9)
        elif kind == 1:
            step = int(rng.integers(2, 6))
            valid = np.zeros((height, width), bool)
            valid[int(rng.integers(0, step))::step, int(rng.integers(0, step))::step] = True
        else:
            valid = np.ones((height, width), bool)
            for _ in range(3):
                top, left = rng.integers(0, height), rng.integers(0, width)
                valid[top:top + rng.integers(1, 9), left:left + rng.integers(1, 9)] = False
        valid[int(rng.integers(0, height)), int(rng.integers(0, width))] = True
        _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
        got = nearest_valid_index(torch.from_numpy(valid)).numpy()
        np.testing.assert_array_equal(got, rows * width + cols, err_msg=f'trial {trial}')


def test_batched_nearest_valid_index():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 9, 11)) < 0.3
    masks[:, 0, 0] = True
    got = nearest_valid_index(torch.from_numpy(masks)).numpy()
    for mask, index in zip(masks, got):
        _, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
        np.testing.assert_array_equal(index, rows * 11 + cols)


def test_fit_rows_matches_numpy_bit_for_bit():
    rng = np.random.default_rng(2)
    values = rng.uniform(0.3, 6.0, (40, 57))
    values[rng.random(values.shape) < 0.4] = np.nan
    values[3] = np.nan  # an empty row
    values[5, :] = 2.0  # a flat row (degenerate span)
    for scaling in (DepthScaling('range', low_percentile=1.0, high_percentile=99.0,
                                 min_relative_span=0.1),
                    DepthScaling('range'), DepthScaling('fixed', max_value=10.0, unit='m')):
        expected = scaling.fit_rows(values, 'm')
        got = fit_rows_t(scaling, torch.from_numpy(values))
        for want, have in zip(expected, got):
            np.testing.assert_array_equal(have.numpy(), want)


@pytest.mark.parametrize('move', [(0.0, 0.0), (2.0, -1.0), (0.5, 0.0), (-1.5, 0.25),
                                  (1.0, 1.5)])
def test_move_output_twin(move):
    hr = np.random.default_rng(3).uniform(0.5, 4.0, (2, 12, 16)).astype(np.float32)
    np.testing.assert_array_equal(move_output_t(torch.from_numpy(hr), *move).numpy(),
                                  move_output(hr, *move))


@pytest.mark.parametrize('passes', [2, 8])
def test_self_ensemble_twin(passes):
    """The flips, their undoing and the placement moves, with a net that is not symmetric."""
    torch.manual_seed(0)
    weight = torch.randn(1, 2, 3, 3)

    def forward(batch):
        tensor = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
        out = torch.nn.functional.conv2d(tensor, weight, padding=1)[:, 0]
        out = out.repeat_interleave(4, -2).repeat_interleave(4, -1)
        return out if isinstance(batch, torch.Tensor) else out.numpy()

    batch = np.random.default_rng(4).random((2, 2, 5, 7)).astype(np.float32)
    expected = average_over_flips(forward, batch, passes, 4, (1, 2))
    got = average_over_flips_t(forward, torch.from_numpy(batch), passes, 4, (1, 2))
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)


def test_resolver_runs_the_torch_pipeline_when_asked(lite_path, caplog):
    numpy_resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu')
    assert numpy_resolver.frames.pipeline == 'numpy'  # auto on a CPU
    assert numpy_resolver.frames.line == 'frames: numpy pipeline, torch net'
    torch_resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu',
                                                        frame_pipeline='torch')
    assert torch_resolver.frames.line == 'frames: torch pipeline on cpu, torch net (fp32)'
    depth = _encode(_frame(seed=2), np.uint16)
    _assert_same(numpy_resolver.run(depth), torch_resolver.run(depth))
    # TensorRT asked for where it cannot run: torch, and one line that says why.
    fallback = DepthSuperResolver.from_checkpoint(lite_path, device='cpu', backend='tensorrt',
                                                  frame_pipeline='torch')
    assert fallback.frames.backend == 'torch'
    assert 'backend tensorrt unavailable' in fallback.frames.line
    assert fallback.frames.line.endswith('; using torch')


def test_a_failing_torch_pipeline_falls_back_to_numpy_for_good(lite_path, caplog):
    """An untested device path that raises (a driver, a capture) costs speed, not frames:
    the frame is redone by the numpy pipeline, which stays in use, and one error line says so."""
    resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cpu', frame_pipeline='torch')
    reference = DepthSuperResolver.from_checkpoint(lite_path, device='cpu')

    def broken(*args):
        raise RuntimeError('CUDA error: an illegal memory access was encountered')
    resolver.frames.torch_frames.resolve = broken
    depth = _encode(_frame(seed=3), np.uint16)
    with caplog.at_level('ERROR'):
        out = resolver.run(depth)
    _assert_same(reference.run(depth), out)
    assert resolver.frames.pipeline == 'numpy'
    assert 'torch pipeline failed (RuntimeError: CUDA error' in caplog.text
    with pytest.raises(ValueError, match='2-D depth'):  # bad input is still refused as such
        DepthSuperResolver.from_checkpoint(lite_path, device='cpu',
                                           frame_pipeline='torch').run(np.zeros(4, np.uint16))


@pytest.mark.parametrize('kwargs, fragment', [
    ({'frame_pipeline': 'cuda'}, 'frame_pipeline must be one of'),
    ({'backend': 'onnx'}, 'backend must be one of'),
    ({'backend': 'tensorrt', 'frame_pipeline': 'numpy'}, 'inside the torch frame pipeline'),
])
def test_resolver_refuses_bad_backend_choices(lite_path, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        DepthSuperResolver.from_checkpoint(lite_path, device='cpu', **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('dtype', [np.uint16, np.float32])
def test_on_cuda_graphed_frames_match_the_numpy_path(lite_path, dtype):
    """On a GPU: the default (torch pipeline, each frame one CUDA graph after 3 eager frames)
    against the numpy pipeline on the same device; frames 4 and 5 are replays. Floats within
    1 mm here: cuDNN picks its kernels per batch size (the numpy path runs a row of tiles per
    batch, the torch path all of them) and may use TF32, so the bits are not the CPU's."""
    numpy_resolver = DepthSuperResolver.from_checkpoint(lite_path, device='cuda',
                                                        frame_pipeline='numpy')
    graphed = DepthSuperResolver.from_checkpoint(lite_path, device='cuda')
    assert graphed.frames.pipeline == 'torch' and 'CUDA graph' in graphed.frames.line
    for seed in range(5):
        depth = _encode(_frame(120, 160, seed=seed), dtype)
        _assert_same(numpy_resolver.run(depth), graphed.run(depth), float_tolerance=1e-3)
    assert graphed.frames.torch_frames.frame_graphs.stats['replays'] >= 1
