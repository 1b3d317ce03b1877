"""dsr_ros.scene: deterministic frames, HR truth, LR = OpenCV bicubic + sensor artefacts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dsr_ros.camera_info import geometry_of, output_camera_info
from dsr_ros.scene import DepthScene, SceneConfig

SMALL = dict(lr_width=40, lr_height=30, scale=4)


def test_sizes_units_and_truth():
    scene = DepthScene(SceneConfig(**SMALL))
    frame = scene.frame(0)
    assert frame.hr_metres.shape == (120, 160) and frame.hr_metres.dtype == np.float32
    assert np.isfinite(frame.hr_metres).all()
    assert 0.5 < frame.hr_metres.min() and frame.hr_metres.max() <= 4.0
    assert frame.lr.shape == (30, 40) and frame.lr.dtype == np.uint16
    holes = frame.lr == 0
    assert 0 < holes.mean() < 0.3
    valid = ~holes
    # millimetres, within 6 sigma of the clean LR (sigma = noise_at_1m * z^2)
    clean = frame.lr_clean_metres[valid]
    error = np.abs(frame.lr[valid] / 1000.0 - clean)
    assert (error < 6 * scene.config.noise_at_1m * clean ** 2 + 0.001).all()
    assert error.mean() > 0.0005  # and the noise is really there


def test_lr_is_opencv_bicubic_of_the_truth_without_artefacts():
    config = SceneConfig(**SMALL, encoding='32FC1', noise_at_1m=0.0, edge_dropout=0.0,
                         hole_blobs=0)
    frame = DepthScene(config).frame(3)
    expected = cv2.resize(frame.hr_metres, (40, 30), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(frame.lr, expected)
    assert frame.lr.dtype == np.float32


def test_holes_are_nan_in_32fc1_and_follow_depth_edges():
    config = SceneConfig(**SMALL, encoding='32FC1', edge_dropout=1.0, hole_blobs=0)
    frame = DepthScene(config).frame(0)
    holes = np.isnan(frame.lr)
    clean = frame.lr_clean_metres
    jump = np.zeros_like(holes)
    horizontal = np.abs(np.diff(clean, axis=1)) > config.edge_threshold_m
    vertical = np.abs(np.diff(clean, axis=0)) > config.edge_threshold_m
    jump[:, 1:] |= horizontal
    jump[:, :-1] |= horizontal
    jump[1:] |= vertical
    jump[:-1] |= vertical
    assert holes.any() and holes[~jump].sum() == 0  # every hole is at an edge here


def test_frames_are_deterministic_and_the_object_moves():
    scene = DepthScene(SceneConfig(**SMALL, seed=7))
    again = DepthScene(SceneConfig(**SMALL, seed=7))
    np.testing.assert_array_equal(scene.frame(5).lr, again.frame(5).lr)
    assert (scene.frame(0).hr_metres != scene.frame(5).hr_metres).mean() > 0.01
    assert (scene.frame(5).lr != DepthScene(SceneConfig(**SMALL, seed=8)).frame(5).lr).any()


def test_lr_intrinsics_scale_exactly_to_the_hr_camera():
    scene = DepthScene(SceneConfig(**SMALL))
    scaled = output_camera_info(geometry_of(40, 30, scene.k_lr.ravel()), 4, 40, 30, (1.5, 1.5))
    np.testing.assert_allclose(np.reshape(scaled.k, (3, 3)), scene.k_hr)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match='encoding'):
        DepthScene(SceneConfig(**SMALL, encoding='mono8'))
    with pytest.raises(ValueError):
        DepthScene(SceneConfig(lr_width=2, lr_height=30))
