"""training.evaluation sensor: baselines, families, validity accounting, the CLI's outputs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dsr_ros.baselines import upsample_bicubic_masked, upsample_nearest
from dsr_ros.checkpoint import save_checkpoint
from dsr_ros.depth_scaling import SENSOR_SCALING
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.networks import DSRNet
from dsr_ros.weights import default_weights_path
from test_data_fakes import require_shared
from training.evaluation.families import (FAMILIES, PHASE_KNOWN_FAMILIES, decimate_real,
                                          degrade_frame)
from training.evaluation.frames import Frame, load_frames
from training.evaluation.sensor import SuiteConfig, evaluate_suite

REPO = __import__('pathlib').Path(__file__).resolve().parents[1]


def _room(height=64, width=80):
    from dsr_ros.scene import random_room
    return random_room(np.random.default_rng(4), width, height)


def test_baselines_keep_holes_as_blocks():
    lr = np.full((4, 5), 2.0, np.float32)
    lr[1, 2] = np.nan
    near, bic = upsample_nearest(lr, 4), upsample_bicubic_masked(lr, 4)
    expected = np.isnan(np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1))
    np.testing.assert_array_equal(np.isnan(near), expected)
    np.testing.assert_array_equal(np.isnan(bic), expected)
    np.testing.assert_allclose(bic[~expected], 2.0, atol=1e-5)


def test_real_decimation_keeps_every_sth_pixel_with_its_holes():
    frame = np.arange(48, dtype=np.float32).reshape(6, 8)
    frame[0, 4] = np.nan
    lr = decimate_real(frame, 2)
    assert lr.shape == (3, 4) and np.isnan(lr[0, 2]) and lr[1, 1] == frame[2, 2]


@pytest.mark.parametrize('family', FAMILIES)
def test_every_family_degrades_to_the_lr_size_and_keeps_gt_holes(family):
    gt = _room()
    gt[:8, :8] = np.nan
    lr = degrade_frame(gt, family, 4, np.random.default_rng(0))
    assert lr.shape == (16, 20)
    assert np.isnan(lr[0, 0]) and np.isfinite(lr).mean() > 0.5


def _random_mask_checkpoint(path):
    torch.manual_seed(0)
    model = DSRNet(scale=4, num_channels=4, num_blocks=1, in_channels=2)
    return save_checkpoint(path, model, normalization=SENSOR_SCALING.to_dict())


def test_suite_on_procedural_frames_accounts_for_every_pixel(tmp_path):
    resolver = DepthSuperResolver.from_checkpoint(_random_mask_checkpoint(tmp_path / 'm.pt'),
                                                  device='cpu')
    frames = [Frame('rooms', 'room', _room())]
    result = evaluate_suite(resolver, frames, SuiteConfig(scale=4, quick=True), progress=False)
    # No measured point alignment: the phase-known family is not run (and says nothing).
    assert [row['family'] for row in result['rows']] == [
        f for f in FAMILIES if f not in PHASE_KNOWN_FAMILIES]
    for row in result['rows']:
        assert row['validity']['became_valid'] == 0 and row['validity']['became_invalid'] == 0
        for method in ('sr', 'bicubic', 'nearest'):
            assert row[method]['pixels'] > 0 and np.isfinite(row[method]['mad'])
            assert row[method]['edge']['pixels'] + row[method]['flat']['pixels'] == \
                row[method]['pixels']
    holes = next(r for r in result['rows'] if r['family'] == 'point_holes')['near_holes']
    assert holes['pixels'] > 0 and holes['ratio'] > 0
    assert set(result['stability']['demo_scene']) == {'sr', 'bicubic', 'nearest'}
    summary = result['summary']['area']
    assert summary['sr_over_bicubic_mad'] > 0 and 'rooms' in summary['datasets']


def test_suite_seed_draws_the_families_afresh_and_repeats_itself(tmp_path):
    resolver = DepthSuperResolver.from_checkpoint(_random_mask_checkpoint(tmp_path / 'm.pt'),
                                                  device='cpu')
    frames = [Frame('rooms', 'room', _room())]

    def point_errors(seed):
        config = SuiteConfig(scale=4, quick=True, families=('point', 'point_sl'), seed=seed)
        rows = evaluate_suite(resolver, frames, config, progress=False)['rows']
        return [row['nearest']['mad'] for row in rows] + [row['sr']['mad'] for row in rows]

    assert point_errors(0) == point_errors(0)
    # Another seed draws another phase and other noise: the baselines' errors change too.
    assert point_errors(0) != point_errors(5)


def test_cli_quick_suite_on_the_shared_data(tmp_path):
    root = require_shared('open3d_rgbd_testdata').parent
    weights = _random_mask_checkpoint(tmp_path / 'm.pt')
    out = tmp_path / 'suite'
    done = subprocess.run([sys.executable, '-m', 'training.evaluation', 'sensor',
                           '--quick', '--weights', str(weights), '--data-root', str(root),
                           '--out', str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / 'sensor.json').read_text())['results']['m']
    assert {row['dataset'] for row in report['rows']} >= {'middlebury', 'nyuv2', 'lu', 'real'}
    assert 'primesense' in report['stability']
    assert (out / 'sensor.md').read_text().count('| point |') == 1
    assert (out / 'sensor_maps.png').stat().st_size > 10000


def test_validation_split_holds_no_test_frame_and_runs_from_the_cli(tmp_path):
    root = require_shared('open3d_rgbd_testdata').parent
    require_shared('middlebury_lu30')
    val, missing = load_frames(root, split='val')
    assert not missing
    test, _ = load_frames(root, split='test')
    assert {f.dataset for f in val} == {'lu_val', 'rooms_val', 'real'}
    assert not {f.name for f in val} & {f.name for f in test}
    nyu = next(f for f in val if f.name == 'nyu_raw')
    assert 0.5 < np.nanmin(nyu.depth) < np.nanmax(nyu.depth) < 10.0
    assert 0.01 < np.isnan(nyu.depth).mean() < 0.2  # the Kinect's 2047 = no reading
    with pytest.raises(ValueError, match='unknown sensor-suite split'):
        load_frames(root, split='train')
    out = tmp_path / 'val'
    done = subprocess.run([sys.executable, '-m', 'training.evaluation', 'sensor',
                           '--quick', '--split', 'val', '--scaling-tile', '0',
                           '--ensemble-passes', '2', '--no-maps', '--seed', '3', '--weights',
                           str(_random_mask_checkpoint(tmp_path / 'm.pt')), '--data-root',
                           str(root), '--out', str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / 'sensor.json').read_text())
    assert report['split'] == 'val' and report['results']['m']['fit_tile'] == 0
    assert report['seed'] == 3
    assert report['results']['m']['ensemble_passes'] == 2
    assert '### m (x4, quick, 2-pass self-ensemble, seed 3)' in (out / 'sensor.md').read_text()
    assert not (out / 'sensor_maps.png').exists()  # --no-maps
    datasets = {r['dataset'] for r in report['results']['m']['rows']}
    assert datasets == {'lu_val', 'rooms_val', 'real'}


@pytest.mark.skipif(default_weights_path() is None, reason='no shipped sensor model yet')
def test_shipped_model_holes_do_not_spoil_their_neighbours():
    """Issue 8: error next to holes within 10 % of the error on the same pixels without."""
    root = require_shared('middlebury2005_sun').parent
    resolver = DepthSuperResolver.from_checkpoint(default_weights_path(), device='cpu')
    frames, _ = load_frames(root, ('nyuv2', 'lu'), quick=True)
    result = evaluate_suite(resolver, frames, SuiteConfig(scale=resolver.scale, quick=True,
                                                          quick_size=160,
                                                          families=('point_holes',)),
                            progress=False)
    ratios = [row['near_holes']['ratio'] for row in result['rows']]
    assert ratios and np.mean(ratios) <= 1.10, ratios
