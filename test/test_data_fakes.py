"""Small synthetic copies of the shared data layouts, and where the real data is.

Not a test module by itself (it holds no tests); the reader, evaluation and bag tests import it
so that every layout is exercised on tiny files even where ../shared/data is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Optional[Path]:
    """../shared/data (or $DSR_SHARED_DATA) when it exists, else None."""
    env = os.environ.get('DSR_SHARED_DATA')
    path = Path(env) if env else REPO.parent / 'shared' / 'data'
    return path if path.is_dir() else None


def require_shared(*parts: str) -> Path:
    """The shared data folder ``parts`` below the root, or skip the test cleanly."""
    root = shared_data()
    if root is None:
        pytest.skip('../shared/data is absent (set DSR_SHARED_DATA to run real-data tests)')
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f'{path} is absent')
    return path


def disparity(height: int, width: int, seed: int = 0, holes: bool = False) -> np.ndarray:
    """A piecewise-smooth uint8 disparity map (planes with steps), optionally with 0-holes.

    Gentle planes, not a random room (training.data.synthetic): test_degradation
    checks that every kernel keeps the mean within 5 levels, which a room's near floor (its
    disparity climbing steeply to 250 in the last rows) breaks for nearest sampling.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    image = 60 + 0.3 * rows + 0.2 * cols
    image[height // 4:height // 2, width // 3:2 * width // 3] += 50
    image += rng.normal(0, 0.5, image.shape)
    image = np.clip(np.rint(image), 1, 255).astype(np.uint8)
    if holes:
        image[2:4, 5:9] = 0
    return image


def colour(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random uint8 RGB image."""
    return np.random.default_rng(seed + 100).integers(0, 256, (height, width, 3), np.uint8)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Save RGB with OpenCV (which expects BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def write_gray(path: Path, image: np.ndarray) -> None:
    """Save a single-channel 8/16-bit image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def make_middlebury2005(root: Path, height: int = 64, width: int = 80) -> Path:
    """middlebury2005_sun layout: test_gt, test_color, testx{2,4,8,16} for scenes 1..6."""
    for index in range(1, 7):
        gt = disparity(height, width, index)
        write_gray(root / 'test_gt' / f'{index}.png', gt)
        write_rgb(root / 'test_color' / f'{index}.png', colour(height, width, index))
        for scale in (2, 4, 8, 16):
            lr = cv2.resize(gt, (width // scale, height // scale),
                            interpolation=cv2.INTER_CUBIC)
            write_gray(root / f'testx{scale}' / f'{index}.png', lr)
    return root


def make_lu30(root: Path) -> Path:
    """middlebury_lu30 layout with 30 small pairs."""
    for index in range(1, 31):
        name = f'Middlebury_{index:02d}'
        write_gray(root / name / f'{name}_output_depth.png', disparity(20, 24, index))
        write_rgb(root / name / f'{name}_output_color.png', colour(20, 24, index))
    return root


def make_msgnet_mat(root: Path) -> Path:
    """msgnet_training_depth layout: sintel/Df_1..3 (float64), middlebury/Df_59..60 (uint8)."""
    import scipy.io
    (root / 'sintel').mkdir(parents=True)
    (root / 'middlebury').mkdir(parents=True)
    for number in (1, 2, 10):
        depth = np.linspace(0.5, 120.0, 16 * 20).reshape(16, 20)
        depth[0, 0] = np.nan if number == 2 else depth[0, 0]
        scipy.io.savemat(str(root / 'sintel' / f'Df_{number}.mat'), {'Df': depth})
    for number in (59, 60):
        scipy.io.savemat(str(root / 'middlebury' / f'Df_{number}.mat'),
                         {'Df': disparity(18, 22, number)})
    return root


def make_msgnet_testsets(root: Path) -> Path:
    """msgnet_testsets layout: A (RGB 22 rows/14 cols larger), B (BMP depth), C (.mat)."""
    import scipy.io
    for scene in ('art', 'books'):
        write_gray(root / 'A' / scene / 'depth.png', disparity(30, 40))
        write_rgb(root / 'A' / scene / 'rgb.png', colour(52, 54))
        write_gray(root / 'B' / scene / 'depth.bmp', disparity(28, 36))
    (root / 'C' / 'cones').mkdir(parents=True)
    scipy.io.savemat(str(root / 'C' / 'cones' / 'depth_cones_2.mat'),
                     {'img_double': disparity(24, 30)})
    write_rgb(root / 'C' / 'cones' / 'rgb.bmp', colour(25, 30))
    return root


def make_thirdsize(root: Path) -> Path:
    """middlebury2005_thirdsize layout with holes in disp1."""
    for scene in ('Art', 'Books', 'Dolls', 'Laundry', 'Moebius', 'Reindeer'):
        for view in (1, 5):
            write_gray(root / scene / f'disp{view}.png', disparity(37, 46, view, holes=True))
            write_rgb(root / scene / f'view{view}.png', colour(37, 46, view))
    return root


def make_ferstl(root: Path, height: int = 64, width: int = 80) -> Path:
    """middlebury2005_ferstl_noisy layout (books as book_*)."""
    for scene in ('art', 'books', 'dolls', 'laundry', 'moebius', 'reindeer'):
        prefix = 'book' if scene == 'books' else scene
        gt = disparity(height, width, 3)
        write_gray(root / scene / f'{prefix}_big.png', gt)
        write_rgb(root / scene / f'{prefix}_color.png', colour(height, width))
        for k, scale in enumerate((2, 4, 8, 16), 1):
            lr = cv2.resize(gt, (width // scale, height // scale), interpolation=cv2.INTER_AREA)
            write_gray(root / scene / f'{prefix}_depth_{k}_n.png', lr)
    return root


def make_nyuv2(root: Path) -> Path:
    """nyuv2_test_subset layout: <i>/depth.npy metres + rgb.jpg."""
    for index in (1000, 1001):
        folder = root / str(index)
        folder.mkdir(parents=True)
        depth = np.linspace(0.7, 4.0, 30 * 40, dtype=np.float32).reshape(30, 40)
        np.save(folder / 'depth.npy', depth)
        write_rgb(folder / 'rgb.jpg', colour(30, 40))
    return root


def make_lu_rgbd6(root: Path) -> Path:
    """lu_rgbd6 layout (with the original 'ouput' spelling of the colour files)."""
    for index in range(1, 7):
        name = f'RGBD_{index:02d}'
        depth = disparity(24, 32, index)
        depth[0, 0] = 0  # the per-image minimum: valid in this set
        write_gray(root / name / f'{name}_output_depth.png', depth)
        write_rgb(root / name / f'{name}_ouput_color.png', colour(24, 32, index))
    return root


def make_folder(root: Path, count: int = 3, height: int = 24, width: int = 32,
                float_depth: bool = False, rgb_dir: str = 'rgb',
                rgb_size: Optional[tuple] = None, intrinsics: Optional[dict] = None) -> Path:
    """The generic 'folder' layout: depth/ (16-bit mm PNG or float .npy) + rgb/ + JSON."""
    for index in range(count):
        # A ramp, not a room: the folder tests check exact values (1000 mm at (0, 0)) and that
        # the (1, 2) hole is the only invalid pixel.
        mm = (1000 + 40 * np.arange(height * width).reshape(height, width) % 1500 + index)
        mm = mm.astype(np.uint16)
        mm[1, 2] = 0
        if float_depth:
            metres = mm.astype(np.float32) / 1000
            metres[1, 2] = np.nan
            (root / 'depth').mkdir(parents=True, exist_ok=True)
            np.save(root / 'depth' / f'{index:05d}.npy', metres)
        else:
            write_gray(root / 'depth' / f'{index:05d}.png', mm)
        size = rgb_size or (height, width)
        write_rgb(root / rgb_dir / f'{index:05d}.png', colour(size[0], size[1], index))
    if intrinsics is not None:
        (root / 'intrinsics.json').write_text(json.dumps(intrinsics))
    return root
