"""Every reader of training.data.readers: layouts, units, masks, filters and clear errors.

Synthetic copies of each layout always run; the same readers on ../shared/data run when it is
present (skipped cleanly otherwise).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_data_fakes import (colour, make_ferstl, make_folder, make_lu30, make_lu_rgbd6,
                             make_middlebury2005, make_msgnet_mat, make_msgnet_testsets,
                             make_nyuv2, make_thirdsize, require_shared, write_gray)
from training.data.readers import (LU30_TEST_INDICES, MIDDLEBURY2005_SCENES, DataError,
                                   list_samples, load_samples)


# ---------------------------------------------------------------------------- synthetic
def test_middlebury2005_layout(tmp_path):
    root = make_middlebury2005(tmp_path / 'mb')
    samples = load_samples({'type': 'middlebury2005', 'root': str(root)})
    assert [s.name for s in samples] == list(MIDDLEBURY2005_SCENES)
    art = samples[0]
    assert art.unit == 'disparity_8bit' and art.depth.dtype == np.float32
    assert art.depth.shape == (64, 80) and art.rgb.shape == (64, 80, 3)
    assert sorted(art.lr_inputs) == [2, 4, 8, 16]
    assert art.lr_inputs[16].shape == (4, 5)
    assert art.valid.all()
    assert art.source.endswith('test_gt/1.png')


def test_names_and_max_samples_filters(tmp_path):
    root = make_middlebury2005(tmp_path / 'mb')
    spec = {'type': 'middlebury2005', 'root': str(root)}
    picked = load_samples(dict(spec, names=['Laundry', 'art']))
    assert [s.name for s in picked] == ['laundry', 'art']
    assert [s.name for s in load_samples(dict(spec, max_samples=2))] == ['art', 'books']
    with pytest.raises(ValueError, match='no sample named'):
        load_samples(dict(spec, names=['teddy']))


def test_bad_specs_are_refused(tmp_path):
    with pytest.raises(ValueError, match='unknown data type'):
        load_samples({'type': 'kitti'})
    with pytest.raises(ValueError, match='unknown option'):
        load_samples({'type': 'lu30', 'root': str(tmp_path), 'exclude_tests': True})
    with pytest.raises(DataError, match='folder does not exist'):
        load_samples({'type': 'middlebury2005', 'root': str(tmp_path / 'none')})


def test_lu30_drops_the_six_test_scenes_by_default(tmp_path):
    root = make_lu30(tmp_path / 'lu30')
    names = list_samples({'type': 'lu30', 'root': str(root)})
    assert len(names) == 24
    assert not {f'Middlebury_{i}' for i in LU30_TEST_INDICES} & set(names)
    everything = load_samples({'type': 'lu30', 'root': str(root), 'exclude_test_scenes': False,
                               'names': ['Middlebury_02']})
    assert everything[0].rgb.shape == (20, 24, 3) and everything[0].unit == 'disparity_8bit'


def test_msgnet_mat_units_masks_and_exclude(tmp_path):
    root = make_msgnet_mat(tmp_path / 'msg')
    samples = load_samples({'type': 'msgnet_mat', 'root': str(root)})
    assert [s.name for s in samples] == ['Df_1', 'Df_2', 'Df_10', 'Df_59', 'Df_60']
    units = {s.name: s.unit for s in samples}
    assert units['Df_1'] == 'sintel_depth' and units['Df_59'] == 'disparity_8bit'
    df2 = samples[1]
    assert not df2.valid[0, 0] and df2.valid.sum() == df2.depth.size - 1  # NaN is invalid
    assert all(s.rgb is None for s in samples)
    only = load_samples({'type': 'msgnet_mat', 'root': str(root), 'subsets': ['middlebury'],
                         'exclude': ['Df_59']})
    assert [s.name for s in only] == ['Df_60']


def test_msgnet_testsets_crops_rgb_to_depth(tmp_path):
    root = make_msgnet_testsets(tmp_path / 'ts')
    samples = {s.name: s for s in load_samples({'type': 'msgnet_testsets', 'root': str(root)})}
    assert sorted(samples) == ['A/art', 'A/books', 'B/art', 'B/books', 'C/cones']
    full = colour(52, 54)
    assert np.array_equal(samples['A/art'].rgb, full[11:41, 7:47])  # centre offset (11, 7)
    assert samples['B/art'].rgb is None and samples['B/art'].depth.shape == (28, 36)
    assert samples['C/cones'].rgb.shape == (24, 30, 3)  # one extra RGB row dropped


def test_thirdsize_keeps_holes_invalid(tmp_path):
    root = make_thirdsize(tmp_path / 'third')
    art = load_samples({'type': 'middlebury_thirdsize', 'root': str(root), 'names': ['art']})[0]
    assert (art.depth[2:4, 5:9] == 0).all() and not art.valid[2:4, 5:9].any()
    assert art.valid.sum() == art.depth.size - 8
    view5 = load_samples({'type': 'middlebury_thirdsize', 'root': str(root), 'view': 5,
                          'max_samples': 1})[0]
    assert view5.source.endswith('disp5.png')


def test_ferstl_noisy_lr_inputs(tmp_path):
    root = make_ferstl(tmp_path / 'ferstl')
    samples = load_samples({'type': 'ferstl_noisy', 'root': str(root)})
    assert [s.name for s in samples] == list(MIDDLEBURY2005_SCENES)
    books = samples[1]
    assert books.source.endswith('book_big.png')
    assert {k: v.shape for k, v in books.lr_inputs.items()} == {
        2: (32, 40), 4: (16, 20), 8: (8, 10), 16: (4, 5)}


def test_nyuv2_is_metres(tmp_path):
    samples = load_samples({'type': 'nyuv2', 'root': str(make_nyuv2(tmp_path / 'nyu'))})
    assert [s.name for s in samples] == ['1000', '1001']
    assert samples[0].unit == 'metre' and samples[0].valid.all()
    assert samples[0].depth.min() == pytest.approx(0.7) and samples[0].rgb.shape == (30, 40, 3)


def test_lu_rgbd6_relative_all_valid(tmp_path):
    samples = load_samples({'type': 'lu_rgbd6', 'root': str(make_lu_rgbd6(tmp_path / 'lu'))})
    assert len(samples) == 6 and samples[0].unit == 'relative'
    assert samples[0].valid.all()  # its 0 is the per-image minimum, not a hole


def test_folder_png_millimetres_with_rgb_and_intrinsics(tmp_path):
    k = {'fx': 500.0, 'fy': 501.0, 'cx': 15.5, 'cy': 11.5}
    root = make_folder(tmp_path / 'rec', intrinsics=k)
    samples = load_samples({'type': 'folder', 'root': str(root)})
    assert [s.name for s in samples] == ['rec/00000', 'rec/00001', 'rec/00002']
    first = samples[0]
    assert first.unit == 'millimetre' and first.depth[0, 0] == 1000
    assert not first.valid[1, 2] and first.valid.sum() == first.depth.size - 1
    assert np.array_equal(first.rgb, colour(24, 32, 0))
    assert np.allclose(first.intrinsics, [[500, 0, 15.5], [0, 501, 11.5], [0, 0, 1]])


def test_folder_float_metres_and_open3d_intrinsics(tmp_path):
    root = make_folder(tmp_path / 'rec', float_depth=True, rgb_dir='color')
    (root / 'camera_primesense.json').write_text(json.dumps(
        {'width': 32, 'height': 24, 'intrinsic_matrix': [525, 0, 0, 0, 525, 0, 15.5, 11.5, 1]}))
    first = load_samples({'type': 'folder', 'root': str(root), 'max_samples': 1})[0]
    assert first.unit == 'metre' and first.depth[0, 0] == pytest.approx(1.0)
    assert not first.valid[1, 2] and first.depth[1, 2] == 0  # NaN -> invalid, stored as 0
    assert first.rgb is not None
    assert np.allclose(first.intrinsics, [[525, 0, 15.5], [0, 525, 11.5], [0, 0, 1]])


def test_folder_resizes_rgb_and_scales_tum_pngs(tmp_path):
    root = make_folder(tmp_path / 'rec', count=1, rgb_size=(48, 64))
    sample = load_samples({'type': 'folder', 'root': str(root),
                           'png_units_per_metre': 5000.0})[0]
    assert sample.rgb.shape == (24, 32, 3)
    assert sample.unit == 'metre' and sample.depth[0, 0] == pytest.approx(1000 / 5000)


@pytest.mark.parametrize('kind, relative, make', [
    ('middlebury2005', 'test_gt/3.png', make_middlebury2005),
    ('lu30', 'Middlebury_05/Middlebury_05_output_depth.png', make_lu30),
    ('msgnet_mat', 'sintel/Df_2.mat', make_msgnet_mat),
    ('ferstl_noisy', 'books/book_depth_2_n.png', make_ferstl),
    ('nyuv2', '1001/depth.npy', make_nyuv2),
    ('folder', 'depth/00001.png', make_folder),
])
def test_corrupt_file_error_names_the_file(tmp_path, kind, relative, make):
    root = make(tmp_path / 'set')
    (root / relative).write_bytes(b'this is not an image at all')
    with pytest.raises(DataError) as info:
        load_samples({'type': kind, 'root': str(root)})
    assert relative.split('/')[-1] in str(info.value)
    assert info.value.path.endswith(relative)


def test_missing_rgb_and_wrong_depth_format_are_named(tmp_path):
    root = make_lu30(tmp_path / 'lu30')
    (root / 'Middlebury_01' / 'Middlebury_01_output_color.png').unlink()
    with pytest.raises(DataError, match='Middlebury_01_output_color.png.*does not exist'):
        load_samples({'type': 'lu30', 'root': str(root), 'names': ['Middlebury_01']})
    folder = make_folder(tmp_path / 'rec', count=1)
    write_gray(folder / 'depth' / '00000.png', np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match='16-bit'):
        load_samples({'type': 'folder', 'root': str(folder)})


# ---------------------------------------------------------------------------- shared data
def test_shared_middlebury2005():
    root = require_shared('middlebury2005_sun')
    samples = load_samples({'type': 'middlebury2005', 'root': str(root)})
    shapes = [s.depth.shape for s in samples]
    assert shapes == [(1088, 1344)] * 3 + [(1088, 1280), (1088, 1344), (1088, 1280)]
    for sample in samples:
        assert sample.unit == 'disparity_8bit' and sample.valid.all()
        assert sample.rgb.shape[:2] == sample.depth.shape
        assert sample.lr_inputs[16].shape == (68, sample.depth.shape[1] // 16)
        assert 0 < sample.depth.min() and sample.depth.max() <= 255


def test_shared_training_sets_exclude_test_scenes():
    root = require_shared('middlebury_lu30')
    lu30 = load_samples({'type': 'lu30', 'root': str(root)})
    assert len(lu30) == 24 and all(s.rgb is not None for s in lu30)
    assert {s.name for s in lu30}.isdisjoint({f'Middlebury_{i}' for i in LU30_TEST_INDICES})
    msg = require_shared('msgnet_training_depth')
    names = list_samples({'type': 'msgnet_mat', 'root': str(msg)})
    assert len(names) == 70  # the leakage check found none of Df_59..70 to be a test scene
    some = load_samples({'type': 'msgnet_mat', 'root': str(msg),
                         'names': ['Df_14', 'Df_65', 'Df_59']})
    assert [s.unit for s in some] == ['sintel_depth', 'disparity_8bit', 'disparity_8bit']
    assert 0.99 < some[0].valid.mean() < 1.0  # Df_14 has 0.19 % zero pixels
    assert 0.96 < some[1].valid.mean() < 0.98  # Df_65 has 3.02 %


def test_shared_benchmark_sets():
    root = require_shared()
    counts = {'msgnet_testsets': 13, 'middlebury_thirdsize': 6, 'ferstl_noisy': 6,
              'nyuv2': 3, 'lu_rgbd6': 6}
    folders = {'msgnet_testsets': 'msgnet_testsets', 'middlebury_thirdsize':
               'middlebury2005_thirdsize', 'ferstl_noisy': 'middlebury2005_ferstl_noisy',
               'nyuv2': 'nyuv2_test_subset', 'lu_rgbd6': 'lu_rgbd6'}
    for kind, count in counts.items():
        assert len(list_samples({'type': kind, 'root': str(root / folders[kind])})) == count
    third = load_samples({'type': 'middlebury_thirdsize',
                          'root': str(root / folders['middlebury_thirdsize']),
                          'names': ['art']})[0]
    assert third.depth.shape == (370, 463)
    assert third.valid.mean() == pytest.approx(1 - 0.0012, abs=5e-4)  # 0.12 % holes
    nyu = load_samples({'type': 'nyuv2', 'root': str(root / folders['nyuv2']),
                        'names': ['1001']})[0]
    assert nyu.unit == 'metre' and nyu.depth.max() == pytest.approx(6.657, abs=1e-3)
    ferstl = load_samples({'type': 'ferstl_noisy', 'root': str(root / folders['ferstl_noisy']),
                           'names': ['laundry']})[0]
    assert ferstl.lr_inputs[16].shape == (68, 83)
    venus = load_samples({'type': 'msgnet_testsets', 'root': str(root / 'msgnet_testsets'),
                          'sets': ['C'], 'names': ['C/venus']})[0]
    assert venus.rgb.shape == (382, 434, 3)


def test_shared_open3d_folder():
    root = require_shared('open3d_rgbd_testdata')
    samples = load_samples({'type': 'folder', 'root': str(root)})
    assert len(samples) == 5 and samples[0].unit == 'millimetre'
    assert samples[0].valid.mean() == pytest.approx(1 - 0.1304, abs=1e-3)
    assert samples[0].intrinsics[0, 2] == pytest.approx(319.5)
