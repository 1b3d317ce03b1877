"""Depth scaling fitted per LR tile at inference (``DepthScaling.fit_tile``): the range a net
trained on patches expects, blended without seams, holes and validity untouched."""

import threading

import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.depth_scaling import DepthScaling
from dsr_ros.inference import DepthSuperResolver, InferenceStopped
from dsr_ros.networks import DSRNet
from dsr_ros.weights import shipped_models

REPO = __import__('pathlib').Path(__file__).resolve().parents[1]
TILED = DepthScaling('range', low_percentile=1.0, high_percentile=99.0, fit_tile=24)


def _resolver(**kwargs) -> DepthSuperResolver:
    torch.manual_seed(0)
    model = DSRNet(scale=4, num_channels=4, num_blocks=1, in_channels=2).eval()
    return DepthSuperResolver(model, TILED.to_dict(), device='cpu', **kwargs)


def _wall(height: int = 60, width: int = 90) -> np.ndarray:
    """A slanted wall with a small box on it: detail that a room-wide range squeezes."""
    rows, cols = np.mgrid[0:height, 0:width]
    wall = 2.0 + 0.004 * cols + 0.002 * rows
    wall[10:20, 10:22] -= 0.05
    return wall.astype(np.float32)


def test_fit_tile_is_stored_read_and_checked():
    assert DepthScaling.from_dict(TILED.to_dict()) == TILED
    assert DepthScaling.from_dict({'mode': 'range'}).fit_tile == 0  # older checkpoints
    with pytest.raises(ValueError, match='fit_tile'):
        DepthScaling('fixed', max_value=10.0, unit='m', fit_tile=32)
    with pytest.raises(ValueError, match='fit_tile'):
        DepthScaling('range', fit_tile=-3)
    with pytest.raises(ValueError, match='scaling_tile'):
        _resolver(scaling_tile=10)  # not more than twice tile_overlap (8)


def test_a_far_change_leaves_a_tile_alone_unlike_frame_scaling():
    """The reason for the tiles: an object metres away no longer rescales a wall's detail."""
    near = _wall()
    far = near.copy()
    far[:, 70:] = 6.0  # a doorway opening onto a far room, 50 LR px from the box
    box = (slice(0, 100), slice(0, 120))  # HR rows/cols of the first tile, away from the blend
    local, whole = _resolver(), _resolver(scaling_tile=0)
    assert local.fit_tile() == 24 and whole.fit_tile() == 0
    assert np.abs(local.run(near)[box] - local.run(far)[box]).max() < 1e-5
    assert np.abs(whole.run(near)[box] - whole.run(far)[box]).max() > 1e-4


@pytest.mark.parametrize('dtype', [np.uint16, np.float32])
def test_tiles_keep_validity_and_positive_depth(dtype):
    depth = _wall()
    depth[30:34, 40:47] = np.nan
    depth[0:24, 60:90] = np.nan  # a whole tile without a valid pixel
    if dtype == np.uint16:
        depth = np.nan_to_num(np.rint(depth * 1000.0), nan=0.0).astype(np.uint16)
    out = _resolver().run(depth)
    lr_valid = depth > 0 if dtype == np.uint16 else np.isfinite(depth)
    out_valid = out > 0 if dtype == np.uint16 else np.isfinite(out)
    assert out.dtype == dtype and out.shape == (240, 360)
    assert np.array_equal(out_valid, np.kron(lr_valid, np.ones((4, 4), bool)))
    assert (out[out_valid] > 0).all()


def test_a_frame_within_one_tile_is_scaled_as_a_whole():
    frame = _wall(20, 24)
    assert np.array_equal(_resolver().run(frame), _resolver(scaling_tile=0).run(frame))


def test_stop_event_stops_between_tile_rows():
    stop = threading.Event()
    stop.set()
    with pytest.raises(InferenceStopped):
        _resolver(stop_event=stop).run(_wall())


def test_shipped_sensor_models_fit_per_tile_and_say_so():
    """lite rungs fit per 32-px tile (quality); tiny rungs fit the whole frame (real time)."""
    sensor = [(size, path) for sizes in shipped_models().values()
              for size, path in sizes.items()]
    assert len(sensor) >= 4
    for size, path in sensor:
        _, metadata = load_checkpoint(path)
        revisions = [r for r in metadata['provenance'].get('revisions', [])
                     if r['changed'] == 'normalization.fit_tile']
        if size == 'tiny':
            assert metadata['normalization']['fit_tile'] == 0, path.name
            assert revisions[-1]['to'] == 0 and 'real-time' in revisions[-1]['why']
            continue
        assert metadata['normalization']['fit_tile'] == 32, path.name
        # Set by the training config (models trained since) or by a recorded revision.
        trained_with = metadata['config']['data']['scaling'].get('fit_tile')
        assert trained_with == 32 or revisions[-1]['to'] == 32, path.name
    research = REPO / 'dsr_ros' / 'weights' / 'dsrnet_research_lite_x4.pt'
    assert DepthSuperResolver.from_checkpoint(research, device='cpu').fit_tile() == 0


def test_vectorised_tile_fits_match_a_fit_per_tile():
    """The tiles' ranges are fitted in one pass; each is the range of its own valid depth, and
    a tile without depth takes the frame's."""
    from dsr_ros.tiling import tile_affines, tile_starts
    metres = _wall(70, 95)
    valid = np.ones(metres.shape, bool)
    valid[30:60, 30:75] = False  # covers two whole 24-px tiles
    valid[::7, ::3] = False
    frame = TILED.fit(metres[valid], 'm')
    tops, lefts = tile_starts(70, 24, 16), tile_starts(95, 24, 16)
    offsets, spans = tile_affines(metres, valid, TILED, tops, lefts, (24, 24), frame)
    empty = 0
    for row, top in enumerate(tops):
        for col, left in enumerate(lefts):
            tile_valid = valid[top:top + 24, left:left + 24]
            expected = (TILED.fit(metres[top:top + 24, left:left + 24][tile_valid], 'm')
                        if tile_valid.any() else frame)
            empty += not tile_valid.any()
            assert (offsets[row, col], spans[row, col]) == (expected.offset, expected.span)
    assert empty == 2
