"""training.evaluation paper: paper protocol, outputs, checkpoint rows, unreadable scenes."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from dsr_ros.baselines import upsample_bicubic
from dsr_ros.depth_metrics import mad, rmse
from test_data_fakes import make_middlebury2005, make_nyuv2, make_thirdsize, require_shared
from training.data.degradation import degrade
from training.data.readers import load_samples
from training.evaluation import paper
from training.evaluation.cli import main
from training.evaluation.methods import bicubic_method

SCENES = ['art', 'books', 'dolls', 'laundry', 'moebius', 'reindeer']


def test_cli_bicubic_writes_table_json_csv_and_maps(tmp_path, capsys):
    root = make_middlebury2005(tmp_path / 'mb')
    out = tmp_path / 'out'
    assert main(['paper', '--dataset', 'middlebury2005', '--data-root', str(root),
                 '--scales', '2', '4', '--method', 'bicubic', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert '| Method | Art x2 | Art x4 | Books x2' in printed and 'Mean x4 |' in printed
    assert 'forward time per image' in printed
    results = json.loads((out / 'results.json').read_text())
    assert set(results['Bicubic']) == set(SCENES) and results['errors'] == {}
    # The harness uses the shipped LR input and scores on the 0-255 scale, no crop.
    sample = load_samples({'type': 'middlebury2005', 'root': str(root), 'names': ['dolls']})[0]
    pred = upsample_bicubic(sample.lr_inputs[4], 4)
    assert results['Bicubic']['dolls']['4']['mad'] == pytest.approx(mad(pred, sample.depth))
    assert results['Bicubic']['dolls']['4']['rmse'] == pytest.approx(rmse(pred, sample.depth))
    rows = list(csv.DictReader((out / 'results.csv').open()))
    assert len(rows) == 12 and rows[0]['unit'] == '0-255 disparity'
    assert (out / 'maps' / 'Bicubic' / 'art_x2.png').is_file()
    assert cv2.imread(str(out / 'overview.png')) is not None
    mean_x4 = np.mean([results['Bicubic'][s]['4']['mad'] for s in SCENES])
    assert f'{mean_x4:.3f} |' in (out / 'table.md').read_text()


def test_unreadable_scene_is_reported_not_averaged(tmp_path, capsys):
    root = make_middlebury2005(tmp_path / 'mb')
    (root / 'testx4' / '2.png').write_bytes(b'\x89PNG broken')
    out = tmp_path / 'out'
    status = main(['paper', '--data-root', str(root), '--scales', '4', '--out', str(out),
                   '--no-maps'])
    assert status == 1
    results = json.loads((out / 'results.json').read_text())
    assert 'books' in results['errors'] and 'testx4/2.png' in results['errors']['books']
    assert 'books' not in results['Bicubic'] and len(results['Bicubic']) == 5
    table_row = [line for line in capsys.readouterr().out.splitlines()
                 if line.startswith('| Bicubic')][0]
    assert table_row.rstrip().endswith('|  |')  # empty mean, not a 5-scene mean
    assert not (out / 'maps').exists()


def test_checkpoint_row_fills_its_own_scale(tmp_path, tiny_checkpoint, capsys):
    root = make_middlebury2005(tmp_path / 'mb')
    out = tmp_path / 'out'
    assert main(['paper', '--data-root', str(root), '--scales', '2', '4', '--method',
                 'bicubic', '--weights', str(tiny_checkpoint), '--labels', 'tiny',
                 '--names', 'art', 'laundry', '--out', str(out), '--no-maps']) == 0
    results = json.loads((out / 'results.json').read_text())
    assert set(results) == {'Bicubic', 'tiny', 'errors', '_meta'}
    assert set(results['tiny']['art']) == {'4'} and set(results['Bicubic']['art']) == {'2', '4'}
    assert results['tiny']['laundry']['4']['forward_s'] > 0
    assert results['_meta']['methods']['tiny']['scale'] == 4


def test_evaluate_checkpoint_and_model_for_the_training_loop(tmp_path, tiny_checkpoint):
    from dsr_ros.checkpoint import load_checkpoint
    root = make_middlebury2005(tmp_path / 'mb')
    summary = paper.evaluate_checkpoint(tiny_checkpoint, data_root=root)
    assert summary['scale'] == 4 and summary['unit'] == '0-255 disparity'
    assert set(summary['mad']) == set(SCENES) and summary['errors'] == {}
    assert summary['mean_mad'] == pytest.approx(np.mean(list(summary['mad'].values())))
    model, meta = load_checkpoint(tiny_checkpoint)
    model.train()
    same = paper.evaluate_model(model, meta['normalization'], data_root=root,
                                names=['art', 'books'])
    assert same['mad'] == pytest.approx({k: summary['mad'][k] for k in ('art', 'books')})
    assert model.training  # handed back in the mode it came in


def test_degraded_sets_crop_holes_and_centimetres(tmp_path):
    third = make_thirdsize(tmp_path / 'third')
    results = paper.evaluate_methods([bicubic_method()], 'middlebury_thirdsize',
                                     third, [4], ['art'], progress=False)
    sample = load_samples({'type': 'middlebury_thirdsize', 'root': str(third),
                           'names': ['art']})[0]
    gt, valid = sample.depth[:36, :44], sample.valid[:36, :44]  # cropped to a multiple of 4
    from dsr_ros.net_input import fill_invalid
    lr = degrade(fill_invalid(gt, valid), 4, round_to_uint8=True)
    expected = mad(upsample_bicubic(lr, 4), gt, valid)
    assert results['Bicubic']['art'][4]['mad'] == pytest.approx(expected)
    nyu = make_nyuv2(tmp_path / 'nyu')
    results = paper.evaluate_methods([bicubic_method()], 'nyuv2', nyu, [4],
                                     progress=False)
    sample = load_samples({'type': 'nyuv2', 'root': str(nyu), 'names': ['1000']})[0]
    pred = upsample_bicubic(degrade(sample.depth[:28], 4), 4)
    assert results['_meta']['unit'].startswith('cm')
    assert results['Bicubic']['1000'][4]['rmse'] == pytest.approx(
        rmse(pred * 100, sample.depth[:28] * 100, crop=6))


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match='unknown dataset'):
        paper.evaluate_methods([bicubic_method()], 'kitti')


def test_shared_middlebury_bicubic_x4_art():
    root = require_shared('middlebury2005_sun')
    results = paper.evaluate_methods([bicubic_method()], 'middlebury2005', root,
                                     [4], ['art', 'laundry'], progress=False)
    assert results['Bicubic']['art'][4]['mad'] == pytest.approx(1.170, abs=5e-4)
    assert results['Bicubic']['laundry'][4]['mad'] == pytest.approx(0.655, abs=5e-4)
