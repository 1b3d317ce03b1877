"""benchmarks.real_camera: frames decimated as image_proc does, scored against the full frame."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import real_camera as rc


def _frame(height=48, width=64):
    rows, cols = np.mgrid[0:height, 0:width]
    mm = (1500 + 3 * cols + 200 * (rows > height // 2)).astype(np.uint16)
    mm[5:9, 10:14] = 0
    return mm


def test_decimation_keeps_the_top_left_pixel_of_each_block_after_the_crop(monkeypatch):
    monkeypatch.setitem(rc.CONVENTIONS, 'crop_decimate', (8, 4, 48, 40))
    frame = _frame()
    case = rc.decimate_as_image_proc(frame, 'crop_decimate', 'f')
    assert case.lr_mm.shape == (10, 12) and case.roi == (8, 4, 40, 48)
    np.testing.assert_array_equal(case.lr_mm, frame[4:44:4, 8:56:4])
    assert case.truth_m.shape == (40, 48)
    np.testing.assert_allclose(case.truth_m[0, 0], frame[4, 8] / 1000.0)
    whole = rc.decimate_as_image_proc(frame, 'decimate', 'f')
    assert whole.roi == (0, 0, 0, 0) and whole.lr_mm.shape == (12, 16)


def test_scores_pool_pixels_and_read_sources_apart():
    pytest.importorskip('sensor_msgs')
    from std_msgs.msg import Header

    from dsr_ros.ros.messages import depth_to_msg
    frame = _frame()
    cases = [rc.decimate_as_image_proc(frame, 'decimate', name) for name in
             ('primesense_0', 'tum')]
    truth_mm = np.nan_to_num(cases[0].truth_m * 1000).astype(np.uint16)
    outputs = {0: (depth_to_msg(truth_mm, Header()), None)}  # the truth itself, no info
    result = rc.score(cases, outputs)
    assert result['summary']['frames_out'] == 1 and result['summary']['camera_info_out'] == 0
    assert result['summary']['sr_mad_mm'] < 0.5  # SR = truth (to 1 mm rounding)
    assert result['summary']['nearest_mad_mm'] > 1.0
    assert result['by_source']['primesense']['frames_out'] == 1
    assert result['by_source']['tum']['frames_out'] == 0
    assert 'sr_over_nearest_mad' in result['summary']
    table = rc.markdown({'no parameter set': result})
    assert '| no parameter set | all | 1 | 0 |' in table
    assert '| no parameter set | primesense | 1 | 0 |' in table


def test_the_published_camera_info_is_image_procs():
    pytest.importorskip('sensor_msgs')
    from std_msgs.msg import Header
    case = rc.decimate_as_image_proc(_frame(), 'crop_decimate', 'f')
    info = rc._camera_info(Header(), case)
    assert (info.width, info.height, info.binning_x, info.binning_y) == (640, 480, 4, 4)
    assert (info.roi.x_offset, info.roi.y_offset) == case.roi[:2]
