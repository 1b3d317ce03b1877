"""Reduced precision must not change the depth a user gets in any way that matters.

bf16 autocast on CPU (AVX512-BF16/AMX) and fp16 on CUDA are speed options of the node; they are
only worth offering if their output stays close to fp32. The stated tolerances:

* a procedural room (:func:`dsr_ros.scene.random_room`, with sensor holes) at x4 through the
  full wrapper (uint16 millimetres): mean absolute difference <= 1 mm and 99th percentile
  <= 8 mm (1 mm is the output quantum);
* Middlebury 2005 (two scenes, x4, centre crops, paper protocol on the 0-255 scale): mean
  absolute difference <= 0.05, a third of the paper's x4 error (0.163), so precision never
  decides a benchmark row. Skipped when ``../shared/data/middlebury2005_sun`` is absent.

The shipped model is used when present (``dsr_ros.weights``), else random weights of the lite
architecture (``training/configs/sensor_lite_x4.yaml``): the bicubic residual path and every
layer are exercised either way.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
from dsr_ros.scene import random_room
from training.config import load_config

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / 'shared' / 'data' / 'middlebury2005_sun'
LITE_CONFIG = REPO / 'training' / 'configs' / 'sensor_lite_x4.yaml'
SYNTHETIC_MAD_MM = 1.0
# 99 % of pixels within 8 mm (5 mm measured). The last 0.1 % sit on depth discontinuities,
# where bf16 rounding can move an output pixel to the other side of the edge (p99.9 27 mm,
# max 16 cm with the shipped model): the price of bf16, stated in README; fp32 stays the
# node's default.
SYNTHETIC_P99_MM = 8.0
MIDDLEBURY_MAD = 0.05
SCENES = {'1': 'Art', '4': 'Laundry'}


def _model() -> DSRNet:
    try:
        from dsr_ros.weights import default_weights_path
        path = default_weights_path()
    except ImportError:
        path = None
    if path is not None:
        model, metadata = load_checkpoint(path)
        if model.scale == 4:
            print(f'precision check with the shipped model {path}')
            return model
    torch.manual_seed(4)
    print('precision check with random weights of the lite architecture')
    return DSRNet(4, **load_config(LITE_CONFIG)['dsrnet']).eval()


def room_frame(height: int, width: int, seed: int) -> np.ndarray:
    """A random room in uint16 millimetres with 3 % of the pixels invalid, like sensor holes."""
    rng = np.random.default_rng(seed)
    millimetres = np.clip(np.rint(random_room(rng, width, height) * 1000.0), 1, 65535)
    frame = millimetres.astype(np.uint16)
    frame[rng.random(frame.shape) < 0.03] = 0
    return frame


@pytest.fixture(scope='module')
def model() -> DSRNet:
    return _model()


def _resolver(model: DSRNet, precision: str, device: str = 'cpu') -> DepthSuperResolver:
    return DepthSuperResolver(copy.deepcopy(model), None, device=device, precision=precision,
                              channels_last=True)


def _compare_synthetic(model: DSRNet, precision: str, device: str) -> None:
    frame = room_frame(72, 96, seed=3)
    reference = _resolver(model, 'fp32', device).run(frame)
    reduced = _resolver(model, precision, device).run(frame)
    assert reduced.dtype == np.uint16 and reduced.shape == reference.shape
    assert np.array_equal(reduced == 0, reference == 0), 'invalid pixels must not move'
    valid = reference > 0
    diff = np.abs(reduced.astype(np.int32) - reference.astype(np.int32))[valid]
    mad, p99 = float(diff.mean()), float(np.percentile(diff, 99))
    print(f'{precision} vs fp32 on a procedural room: MAD {mad:.3f} mm, p99 {p99:.1f} mm, '
          f'p99.9 {np.percentile(diff, 99.9):.1f} mm, max {diff.max()} mm')
    assert mad <= SYNTHETIC_MAD_MM, f'MAD {mad:.3f} mm'
    assert p99 <= SYNTHETIC_P99_MM, f'p99 {p99:.1f} mm'


def test_bf16_matches_fp32_on_a_procedural_room(model):
    _compare_synthetic(model, 'bf16', 'cpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='fp16 needs a CUDA device')
def test_fp16_matches_fp32_on_cuda(model):
    _compare_synthetic(model, 'fp16', 'cuda')


def test_fp16_is_refused_on_cpu(model):
    with pytest.raises(ValueError, match='fp16'):
        _resolver(model, 'fp16', 'cpu')


@pytest.mark.skipif(not DATA.is_dir(), reason=f'Middlebury data absent ({DATA})')
def test_bf16_matches_fp32_on_middlebury_x4(model):
    cv2 = pytest.importorskip('cv2')
    fp32, bf16 = _resolver(model, 'fp32'), _resolver(model, 'bf16')
    for index, name in SCENES.items():
        lr = cv2.imread(str(DATA / 'testx4' / f'{index}.png'), cv2.IMREAD_UNCHANGED)
        gt = cv2.imread(str(DATA / 'test_gt' / f'{index}.png'), cv2.IMREAD_UNCHANGED)
        assert lr is not None and gt is not None, f'cannot read scene {index}'
        # Centre crop of 128x160 LR pixels keeps the test quick on a 2-core CPU.
        top, left = (lr.shape[0] - 128) // 2, (lr.shape[1] - 160) // 2
        lr = lr[top:top + 128, left:left + 160].astype(np.float32) / 255.0
        gt = gt[4 * top:4 * (top + 128), 4 * left:4 * (left + 160)].astype(np.float32)
        reference = fp32.run_normalized(lr) * 255.0
        reduced = bf16.run_normalized(lr) * 255.0
        diff = np.abs(reduced - reference)
        mad = float(diff.mean())
        to_gt = np.abs(reference - gt).mean(), np.abs(reduced - gt).mean()
        print(f'{name} x4 crop: MAD bf16-fp32 {mad:.4f}, max {diff.max():.3f} (0-255); '
              f'MAD to GT fp32 {to_gt[0]:.3f}, bf16 {to_gt[1]:.3f}')
        assert mad <= MIDDLEBURY_MAD, f'{name}: MAD bf16 vs fp32 {mad:.4f}'
