"""dsr_ros.inference.DepthSuperResolver: numpy in, numpy out, holes kept, tiling, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dsr_ros.checkpoint import save_checkpoint
from dsr_ros.depth_io import valid_mask
from dsr_ros.device import resolve_device
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.net_input import fill_invalid
from dsr_ros.networks import DSRNet

SCALE = 4


def _net(identity: bool = False, **kwargs) -> DSRNet:
    """A tiny random DSRNet; ``identity`` zeroes the last conv so it outputs pure bicubic."""
    torch.manual_seed(0)
    model = DSRNet(**{'scale': SCALE, 'num_channels': 4, 'num_blocks': 1, **kwargs})
    if identity:
        with torch.no_grad():
            model.reconstruction[-1].weight.zero_()
            model.reconstruction[-1].bias.zero_()
    return model.eval()


def _ramp(height: int = 13, width: int = 17, seed: int = 0) -> np.ndarray:
    """A noisy ramp rising from 1 m, not a random room: the max_depth and fixed-scaling tests
    need its known range (pixels on both sides of 1.5 m, all below max_value 4 m)."""
    rows, cols = np.mgrid[0:height, 0:width]
    noise = 0.01 * np.random.default_rng(seed).standard_normal((height, width))
    return (1.0 + 0.03 * cols + 0.02 * rows + noise).astype(np.float32)


def _block(mask: np.ndarray) -> np.ndarray:
    return np.kron(mask, np.ones((SCALE, SCALE), bool))


@pytest.mark.parametrize('dtype', [np.uint16, np.float32])
def test_shape_dtype_and_holes(dtype):
    metres = _ramp()
    metres[3:5, 4:7] = np.nan
    metres[0, 0] = 0.0
    depth = (np.nan_to_num(metres) * 1000).astype(np.uint16) if dtype == np.uint16 else metres
    out = DepthSuperResolver(_net(), device='cpu').run(depth)
    assert out.shape == (13 * SCALE, 17 * SCALE) and out.dtype == dtype
    np.testing.assert_array_equal(~valid_mask(out), _block(~valid_mask(depth)))
    if dtype == np.float32:
        assert np.isnan(out[~valid_mask(out)]).all()


def test_holes_do_not_bleed_into_valid_depth():
    depth = np.full((12, 16), 1500, np.uint16)
    depth[4:8, 5:9] = 0
    out = DepthSuperResolver(_net(identity=True), device='cpu').run(depth)
    assert (out[_block(depth == 0)] == 0).all()
    assert (out[_block(depth > 0)] == 1500).all()  # not dragged towards 0 next to the hole


def test_identity_net_gives_torch_bicubic_of_the_input():
    depth = _ramp(16, 24)
    out = DepthSuperResolver(_net(identity=True), device='cpu').run(depth)
    expected = F.interpolate(torch.from_numpy(depth)[None, None], scale_factor=SCALE,
                             mode='bicubic', align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_all_invalid_frame_gives_an_all_invalid_output():
    out = DepthSuperResolver(_net(), device='cpu').run(np.zeros((5, 6), np.uint16))
    assert out.shape == (20, 24) and not out.any()
    out = DepthSuperResolver(_net(), device='cpu').run(np.full((5, 6), np.nan, np.float32))
    assert np.isnan(out).all()


def test_max_depth_marks_farther_pixels_invalid():
    depth = _ramp()
    far = depth > 1.5
    assert far.any() and (~far).any()
    out = DepthSuperResolver(_net(), device='cpu').run(depth, max_depth=1.5)
    np.testing.assert_array_equal(np.isnan(out), _block(far))


def test_minmax_normalization_is_unit_free():
    resolver = DepthSuperResolver(_net(), device='cpu', input_normalization='minmax')
    depth = _ramp()
    np.testing.assert_allclose(resolver.run(depth * 1000), resolver.run(depth) * 1000,
                               rtol=1e-5)


def test_fixed_normalization_divides_by_max_value():
    resolver = DepthSuperResolver(_net(), device='cpu', input_normalization='fixed',
                                  max_value=4.0)
    depth = _ramp(16, 24)
    np.testing.assert_allclose(resolver.run(depth), resolver.run_normalized(depth / 4.0) * 4.0,
                               rtol=1e-5)


def test_tiles_match_the_whole_frame():
    depth = _ramp(40, 56)
    whole = DepthSuperResolver(_net(), device='cpu').run(depth)
    tiled = DepthSuperResolver(_net(), device='cpu', tile_size=24, tile_overlap=8).run(depth)
    assert np.abs(tiled - whole).max() < 0.01
    assert np.abs(tiled - whole).mean() < 1e-3


def test_channels_last_and_bf16_agree_with_the_plain_path():
    depth = _ramp()
    plain = DepthSuperResolver(_net(), device='cpu', channels_last=False).run(depth)
    nhwc = DepthSuperResolver(_net(), device='cpu', channels_last=True).run(depth)
    np.testing.assert_allclose(nhwc, plain, rtol=1e-4, atol=1e-4)
    bf16 = DepthSuperResolver(_net(), device='cpu', precision='bf16').run(depth)
    np.testing.assert_allclose(bf16, plain, atol=0.05)


def test_from_checkpoint_keeps_metadata_and_checkpoint_normalization(tmp_path):
    path = save_checkpoint(tmp_path / 'm.pt', _net(),
                           normalization={'mode': 'fixed', 'max_value': 10.0, 'unit': 'm'})
    resolver = DepthSuperResolver.from_checkpoint(path, device='cpu',
                                                  input_normalization='checkpoint')
    assert resolver.scale == SCALE and resolver.metadata['path'] == str(path)
    depth = _ramp(16, 24)
    np.testing.assert_allclose(resolver.run(depth),
                               resolver.run_normalized(depth / 10.0) * 10.0, rtol=1e-5)


@pytest.mark.parametrize('kwargs,fragment', [
    ({'precision': 'fp8'}, 'precision'),
    ({'input_normalization': 'log'}, 'input_normalization'),
    ({'tile_size': 16, 'tile_overlap': 8}, 'tile_size'),
    ({'max_value': 0.0}, 'max_value'),
    ({'precision': 'fp16'}, 'fp16 needs a CUDA device'),
])
def test_constructor_refuses_bad_options(kwargs, fragment):
    if kwargs.get('precision') == 'fp16' and torch.cuda.is_available():
        pytest.skip('fp16 is valid on this CUDA machine')
    with pytest.raises(ValueError, match=fragment):
        DepthSuperResolver(_net(), device='cpu', **kwargs)


def test_default_options_read_as_attributes_and_cannot_be_set():
    """Options are per call: the old ``resolver.ensemble_passes = 4`` pokes now fail loudly
    instead of silently changing every later frame."""
    resolver = DepthSuperResolver(_net(), device='cpu', ensemble_passes=2)
    assert resolver.ensemble_passes == resolver.options.ensemble_passes == 2
    with pytest.raises(AttributeError):
        resolver.ensemble_passes = 4
    with pytest.raises(AttributeError):
        resolver.sampling_phase = None
    assert resolver.options.ensemble_passes == 2


@pytest.mark.parametrize('depth', [np.zeros((2, 3, 4), np.float32), np.zeros((0, 5), np.uint16),
                                   np.zeros((4, 5), np.int32)])
def test_run_refuses_bad_arrays(depth):
    with pytest.raises(ValueError):
        DepthSuperResolver(_net(), device='cpu').run(depth)


def test_resolve_device():
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('AUTO').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            resolve_device('cuda:0')


def test_valid_mask_and_fill_invalid():
    depth = np.array([[np.nan, 2.0, -1.0], [np.inf, 5.0, 0.0]], np.float32)
    np.testing.assert_array_equal(valid_mask(depth), [[False, True, False], [False, True, False]])
    filled = fill_invalid(depth, valid_mask(depth))
    np.testing.assert_array_equal(filled, [[2.0, 2.0, 2.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(valid_mask(np.array([0, 7], np.uint16)), [False, True])
