"""Readers for the RGB-D sources we train and evaluate on; all return :class:`RGBDSample`.

One entry point, :func:`load_samples`, takes a *spec* dictionary (as written in the training
configs) and dispatches on ``spec['type']``. Every reader first lists its samples by name, the
``names`` / ``max_samples`` filters are applied to that listing, and only then are files read, so
selecting three scenes of a large set reads three scenes. Every file that cannot be decoded is
reported as a :class:`DataError` naming the file, never as a bare ``None`` from OpenCV deep in
a training step.

Spec keys common to every type:

- ``type``: one of :data:`READERS`.
- ``root``: folder of the data set; when absent, the set's usual folder under
  :func:`shared_data_root` (``DSR_SHARED_DATA`` or ``<repo>/../shared/data``).
- ``names``: keep only these sample names (an unknown name is an error, not an empty set).
- ``max_samples``: keep at most this many (after ``names``), in listing order.

Unknown keys are refused so that a typo in a config does not silently change the data.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from training.data.sample import RGBDSample

__all__ = ['DataError', 'READERS', 'MIDDLEBURY2005_SCENES', 'LU30_TEST_INDICES',
           'MSGNET_TEST_SCENE_MAPS', 'load_samples', 'shared_data_root', 'read_image',
           'read_depth_png', 'read_depth_array', 'read_mat', 'read_npz', 'read_rgb',
           'list_samples']

LOGGER = logging.getLogger(__name__)

#: The six Middlebury 2005 test scenes, in the index order of middlebury2005_sun (1..6).
MIDDLEBURY2005_SCENES = ('art', 'books', 'dolls', 'laundry', 'moebius', 'reindeer')
#: Indices of middlebury_lu30 that ARE the six test scenes (Art, Books, Dolls, Laundry, Moebius,
#: Reindeer; identified by correlation in that folder's SOURCE.md). Never train on them.
LU30_TEST_INDICES = ('02', '06', '14', '18', '21', '24')
#: msgnet_training_depth Middlebury maps that are one of the six test scenes: none.
#: Checked (training/data/leakage.py, ``python -m training.data.leakage``): every Df_59..Df_70 map
#: (full-size ones first reduced by 3 with INTER_AREA) was rescaled by 0.85..1.15 and its central
#: 70 % searched with normalised cross-correlation (cv2.TM_CCOEFF_NORMED) in the third-size
#: disp1.png of each test scene and in the middlebury2005_sun GT reduced by 3. The known test
#: scenes of middlebury_lu30 (02/06/14/18/21/24), used as positive controls, score 0.987-0.999
#: against their own scene; the best score of any Df map is 0.864 (Df_67 vs Books) and the
#: median of their best scores about 0.76, the level of unrelated scenes (lu30 01/03: 0.54/0.75).
#: Their shapes fit other scenes too: Df_59..64 (380-383 x 430-435) are the six Middlebury 2001
#: sizes, Df_65..70 (1110 x 1240-1330) are 2006 full-size widths, none the 1390/1342 of 2005.
MSGNET_TEST_SCENE_MAPS: tuple = ()

_SHARED_FOLDERS = {
    'middlebury2005': 'middlebury2005_sun',
    'msgnet_mat': 'msgnet_training_depth',
    'lu30': 'middlebury_lu30',
    'msgnet_testsets': 'msgnet_testsets',
    'middlebury_thirdsize': 'middlebury2005_thirdsize',
    'ferstl_noisy': 'middlebury2005_ferstl_noisy',
    'nyuv2': 'nyuv2_test_subset',
    'lu_rgbd6': 'lu_rgbd6',
    'extra_rgbd': 'extra_rgbd',
}
_COMMON_KEYS = {'type', 'root', 'path', 'names', 'max_samples'}


class DataError(ValueError):
    """A data file or folder that cannot be used; the message names the path and the reason."""

    def __init__(self, path: Any, reason: str) -> None:
        super().__init__(f'cannot read {os.fspath(path)!r}: {reason}')
        self.path = os.fspath(path)
        self.reason = reason


@dataclass
class _Entry:
    """A sample known by name whose files are read only when ``load`` is called."""

    name: str
    load: Callable[[], RGBDSample]


# ---------------------------------------------------------------------------- file helpers
def shared_data_root() -> Path:
    """Where ../shared/data is: ``$DSR_SHARED_DATA`` or the folder next to the repository."""
    env = os.environ.get('DSR_SHARED_DATA')
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / 'shared' / 'data'


def read_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """``cv2.imread`` that raises :class:`DataError` instead of returning None."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as error:
        raise DataError(path, f'OpenCV could not decode it ({error})') from error
    if image is None or image.size == 0:
        raise DataError(path, 'not a readable image (corrupt or unsupported format)')
    return image


def read_rgb(path: Path) -> np.ndarray:
    """A colour image as uint8 RGB (H, W, 3) (OpenCV reads BGR; palettes/grey are expanded)."""
    image = read_image(path, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(image[:, :, ::-1])


def read_depth_png(path: Path) -> np.ndarray:
    """A single-channel 8- or 16-bit depth image as float32, values unchanged."""
    image = read_image(path, cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        # Palette BMPs and some PNGs decode to 3 identical channels.
        if not (np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 0], image[..., 2])):
            raise DataError(path, f'expected a single-channel depth image, got {image.shape}')
        image = image[..., 0]
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        raise DataError(path, f'unsupported depth dtype {image.dtype}')
    return image.astype(np.float32)


def read_mat(path: Path, key: str) -> np.ndarray:
    """One 2-D array of a MATLAB file (v5 via scipy; v7.3/HDF5 via h5py when installed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    with path.open('rb') as handle:
        head = handle.read(512)
    if head[:8] == b'\x89HDF\r\n\x1a\n' or b'MATLAB 7.3' in head[:128]:
        try:
            import h5py  # noqa: F401 - optional, only for v7.3 files
        except ImportError as error:
            raise DataError(path, 'MATLAB v7.3 (HDF5) file; install h5py to read it') from error
        with h5py.File(path, 'r') as mat:
            if key not in mat:
                raise DataError(path, f'no variable {key!r}; found {sorted(mat.keys())}')
            array = np.asarray(mat[key]).T  # HDF5 stores MATLAB arrays transposed
    else:
        import scipy.io
        try:
            mat = scipy.io.loadmat(str(path))
        except Exception as error:  # noqa: BLE001 - scipy raises many kinds for a bad file
            raise DataError(path, f'not a readable MATLAB file ({type(error).__name__}: '
                                  f'{error})') from error
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith('__'))
            raise DataError(path, f'no variable {key!r}; found {found}')
        array = np.asarray(mat[key])
    if array.ndim != 2 or array.size == 0:
        raise DataError(path, f'variable {key!r} is not a 2-D array (shape {array.shape})')
    return array


def _finite_positive(depth: np.ndarray) -> np.ndarray:
    with np.errstate(invalid='ignore'):
        return np.isfinite(depth) & (depth > 0)


def _rgb_matching(path: Path, shape: tuple, name: str) -> np.ndarray:
    rgb = read_rgb(path)
    if rgb.shape[:2] != shape:
        raise DataError(path, f'RGB {rgb.shape[:2]} does not match the depth {shape} of {name}')
    return rgb


# ---------------------------------------------------------------------------- readers
def _list_middlebury2005(root: Path, with_rgb: bool = True,
                         scales: Sequence[int] = (2, 4, 8, 16)) -> List[_Entry]:
    """middlebury2005_sun: test_gt/<i>.png, test_color/<i>.png, testx<s>/<i>.png, i = 1..6.

    Depth is the hole-filled 0-255 Middlebury disparity; the LR inputs are the benchmark's own
    (``lr_inputs[s]``), so evaluation uses exactly what the paper's group used.
    """
    _require_dir(root / 'test_gt')

    def make(index: int, name: str) -> _Entry:
        def load() -> RGBDSample:
            gt_path = root / 'test_gt' / f'{index}.png'
            depth = read_depth_png(gt_path)
            lr = {}
            for scale in scales:
                lr_path = root / f'testx{scale}' / f'{index}.png'
                lr[int(scale)] = read_depth_png(lr_path)
                expected = (depth.shape[0] // scale, depth.shape[1] // scale)
                if lr[int(scale)].shape != expected:
                    raise DataError(lr_path, f'LR input {lr[int(scale)].shape} is not '
                                             f'{expected} = GT {depth.shape} / {scale}')
            rgb = (_rgb_matching(root / 'test_color' / f'{index}.png', depth.shape, name)
                   if with_rgb else None)
            return RGBDSample(name, depth, depth > 0, 'disparity_8bit', rgb=rgb, lr_inputs=lr,
                              source=str(gt_path))
        return _Entry(name, load)

    return [make(index, name) for index, name in enumerate(MIDDLEBURY2005_SCENES, 1)]


def _list_msgnet_mat(root: Path, subsets: Sequence[str] = ('sintel', 'middlebury'),
                     exclude: Optional[Sequence[str]] = None) -> List[_Entry]:
    """msgnet_training_depth: <subset>/Df_<n>.mat, variable ``Df``; depth only.

    Sintel maps are in Sintel depth units (``sintel_depth``), the Middlebury maps on the 8-bit
    disparity scale. ``exclude`` defaults to :data:`MSGNET_TEST_SCENE_MAPS` (empty: none of the
    maps is a test scene, see there how that was checked).
    """
    units = {'sintel': 'sintel_depth', 'middlebury': 'disparity_8bit'}
    unknown = [s for s in subsets if s not in units]
    if unknown:
        raise ValueError(f'msgnet_mat: unknown subsets {unknown}, expected {sorted(units)}')
    skip = set(MSGNET_TEST_SCENE_MAPS if exclude is None else exclude)
    entries = []
    for subset in subsets:
        _require_dir(root / subset)
        paths = sorted((root / subset).glob('Df_*.mat'), key=_natural_key)
        for path in paths:
            if path.stem in skip:
                continue
            entries.append(_mat_entry(path, path.stem, 'Df', units[subset]))
    return entries


def _mat_entry(path: Path, name: str, key: str, unit: str,
               rgb_path: Optional[Path] = None) -> _Entry:
    def load() -> RGBDSample:
        depth = read_mat(path, key).astype(np.float32)
        rgb = None
        if rgb_path is not None:
            rgb = read_rgb(rgb_path)
            rgb = _crop_rgb_to(rgb, depth.shape, rgb_path, name)
        return RGBDSample(name, depth, _finite_positive(depth), unit, rgb=rgb, source=str(path))
    return _Entry(name, load)


def _list_lu30(root: Path, exclude_test_scenes: bool = True) -> List[_Entry]:
    """middlebury_lu30: Middlebury_NN/Middlebury_NN_output_{depth,color}.png, NN = 01..30.

    ``exclude_test_scenes`` (default) drops :data:`LU30_TEST_INDICES`, the six test scenes at
    third size: training on them would leak the Middlebury benchmark.
    """
    _require_dir(root)
    entries = []
    for folder in sorted(root.glob('Middlebury_[0-9][0-9]')):
        index = folder.name.split('_')[1]
        if exclude_test_scenes and index in LU30_TEST_INDICES:
            continue
        entries.append(_png_pair_entry(folder.name,
                                       folder / f'{folder.name}_output_depth.png',
                                       folder / f'{folder.name}_output_color.png',
                                       'disparity_8bit'))
    return entries


def _png_pair_entry(name: str, depth_path: Path, rgb_path: Optional[Path], unit: str,
                    zero_is_invalid: bool = True) -> _Entry:
    def load() -> RGBDSample:
        depth = read_depth_png(depth_path)
        rgb = _rgb_matching(rgb_path, depth.shape, name) if rgb_path is not None else None
        valid = _finite_positive(depth) if zero_is_invalid else np.isfinite(depth)
        return RGBDSample(name, depth, valid, unit, rgb=rgb, source=str(depth_path))
    return _Entry(name, load)


def _crop_rgb_to(rgb: np.ndarray, shape: tuple, path: Path, name: str) -> np.ndarray:
    """Drop extra trailing rows/columns of an RGB image that is at most 1 px larger."""
    extra_rows, extra_cols = rgb.shape[0] - shape[0], rgb.shape[1] - shape[1]
    if not (0 <= extra_rows <= 1 and 0 <= extra_cols <= 1):
        raise DataError(path, f'RGB {rgb.shape[:2]} does not match the depth {shape} of {name}')
    if extra_rows or extra_cols:
        LOGGER.info('%s: RGB %s cropped to the depth size %s (bottom/right)', name,
                    rgb.shape[:2], shape)
    return np.ascontiguousarray(rgb[:shape[0], :shape[1]])


def _list_msgnet_testsets(root: Path, sets: Sequence[str] = ('A', 'B', 'C')) -> List[_Entry]:
    """msgnet_testsets: A/<s>/{depth,rgb}.png, B/<s>/depth.bmp, C/<s>/{depth_<s>_2.mat,rgb.bmp}.

    Names are ``<set>/<scene>``. A's RGB is the uncropped full view: the depth sits at offset
    (11, 7) in it (see that folder's SOURCE.md), so it is cropped there. B has no RGB. C's
    ``img_double`` is at most one row shorter than its RGB, which loses its last row. Values
    are treated as ``disparity_8bit`` for all three sets (C's tsukuba/venus use other
    disparity scalings, but stay in 0-255).
    """
    entries = []
    for subset in sets:
        if subset not in ('A', 'B', 'C'):
            raise ValueError(f'msgnet_testsets: unknown set {subset!r}, expected A, B or C')
        _require_dir(root / subset)
        for folder in sorted(p for p in (root / subset).iterdir() if p.is_dir()):
            name = f'{subset}/{folder.name}'
            if subset == 'A':
                entries.append(_msgnet_a_entry(name, folder))
            elif subset == 'B':
                entries.append(_png_pair_entry(name, folder / 'depth.bmp', None,
                                               'disparity_8bit'))
            else:
                entries.append(_mat_entry(folder / f'depth_{folder.name}_2.mat', name,
                                          'img_double', 'disparity_8bit', folder / 'rgb.bmp'))
    return entries


def _msgnet_a_entry(name: str, folder: Path) -> _Entry:
    def load() -> RGBDSample:
        depth_path = folder / 'depth.png'
        depth = read_depth_png(depth_path)
        rgb = read_rgb(folder / 'rgb.png')
        top = (rgb.shape[0] - depth.shape[0]) // 2
        left = (rgb.shape[1] - depth.shape[1]) // 2
        if top < 0 or left < 0:
            raise DataError(folder / 'rgb.png', f'RGB {rgb.shape[:2]} is smaller than the '
                                                f'depth {depth.shape}')
        rgb = np.ascontiguousarray(rgb[top:top + depth.shape[0], left:left + depth.shape[1]])
        return RGBDSample(name, depth, depth > 0, 'disparity_8bit', rgb=rgb,
                          source=str(depth_path))
    return _Entry(name, load)


def _list_middlebury_thirdsize(root: Path, view: int = 1, with_rgb: bool = True
                               ) -> List[_Entry]:
    """middlebury2005_thirdsize: <Scene>/disp<v>.png + view<v>.png, v = 1 or 5.

    Raw third-size disparity on the 8-bit scale (value = 3 x third-size disparity) with its
    real holes: 0 = unknown, so ``valid`` is False there and the zeros are kept as they are.
    """
    if view not in (1, 5):
        raise ValueError(f'middlebury_thirdsize: view must be 1 or 5, got {view!r}')
    _require_dir(root)
    entries = []
    for scene in MIDDLEBURY2005_SCENES:
        folder = root / scene.capitalize()
        entries.append(_png_pair_entry(scene, folder / f'disp{view}.png',
                                       folder / f'view{view}.png' if with_rgb else None,
                                       'disparity_8bit'))
    return entries


def _list_ferstl_noisy(root: Path, with_rgb: bool = True) -> List[_Entry]:
    """middlebury2005_ferstl_noisy: <s>/<f>_big.png GT, <f>_color.png, <f>_depth_<k>_n.png.

    ``<f>`` is the scene name except Books (``book``). The noisy LR maps for k = 1..4 become
    ``lr_inputs`` for scales 2, 4, 8, 16 (same 8-bit scale as the GT, plus noise).
    """
    _require_dir(root)
    entries = []
    for scene in MIDDLEBURY2005_SCENES:
        prefix = 'book' if scene == 'books' else scene
        entries.append(_ferstl_entry(scene, root / scene, prefix, with_rgb))
    return entries


def _ferstl_entry(name: str, folder: Path, prefix: str, with_rgb: bool) -> _Entry:
    def load() -> RGBDSample:
        gt_path = folder / f'{prefix}_big.png'
        depth = read_depth_png(gt_path)
        lr = {}
        for k, scale in enumerate((2, 4, 8, 16), 1):
            lr_path = folder / f'{prefix}_depth_{k}_n.png'
            lr[scale] = read_depth_png(lr_path)
            expected = (depth.shape[0] // scale, depth.shape[1] // scale)
            if lr[scale].shape != expected:
                raise DataError(lr_path, f'LR input {lr[scale].shape} is not {expected}')
        rgb = (_rgb_matching(folder / f'{prefix}_color.png', depth.shape, name)
               if with_rgb else None)
        return RGBDSample(name, depth, depth > 0, 'disparity_8bit', rgb=rgb, lr_inputs=lr,
                          source=str(gt_path))
    return _Entry(name, load)


def _list_nyuv2(root: Path, with_rgb: bool = True) -> List[_Entry]:
    """nyuv2_test_subset: <i>/depth.npy (float32 metres) + <i>/rgb.jpg; names are the indices."""
    _require_dir(root)
    entries = []
    for folder in sorted(p for p in root.iterdir() if (p / 'depth.npy').is_file()):
        entries.append(_npy_entry(folder.name, folder / 'depth.npy',
                                  folder / 'rgb.jpg' if with_rgb else None))
    if not entries:
        raise DataError(root, 'no <index>/depth.npy found')
    return entries


def _npy_entry(name: str, depth_path: Path, rgb_path: Optional[Path]) -> _Entry:
    def load() -> RGBDSample:
        depth = read_depth_array(depth_path)
        rgb = _rgb_matching(rgb_path, depth.shape, name) if rgb_path is not None else None
        return RGBDSample(name, depth, _finite_positive(depth), 'metre', rgb=rgb,
                          source=str(depth_path))
    return _Entry(name, load)


def read_depth_array(path: Path) -> np.ndarray:
    """A float depth map from .npy, .tif or .tiff, as float32 (any unit; values unchanged)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    if path.suffix.lower() == '.npy':
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as error:  # noqa: BLE001 - numpy raises several kinds
            raise DataError(path, f'not a readable .npy ({type(error).__name__}: {error})'
                            ) from error
    else:
        array = read_image(path, cv2.IMREAD_UNCHANGED)
    array = np.squeeze(np.asarray(array))
    if array.ndim != 2 or array.size == 0 or array.dtype.kind not in 'fui':
        raise DataError(path, f'expected a 2-D numeric depth map, got {array.dtype} '
                              f'{array.shape}')
    return array.astype(np.float32)


def _list_lu_rgbd6(root: Path, with_rgb: bool = True) -> List[_Entry]:
    """lu_rgbd6: RGBD_0k/RGBD_0k_output_depth.png + RGBD_0k_ouput_color.png (sic).

    The depth is 8-bit and normalised per image with no metric meaning: unit ``relative``.
    Its 0 is the per-image minimum, not a hole, so every pixel is valid.
    """
    _require_dir(root)
    entries = []
    for folder in sorted(root.glob('RGBD_[0-9][0-9]')):
        entries.append(_png_pair_entry(folder.name, folder / f'{folder.name}_output_depth.png',
                                       folder / f'{folder.name}_ouput_color.png'
                                       if with_rgb else None, 'relative',
                                       zero_is_invalid=False))
    return entries


def _list_extra_rgbd(root: Path) -> List[_Entry]:
    """extra_rgbd: two registered Middlebury RGB-D pairs at full size (see its SOURCE.md).

    ``aloe2006_full``: Middlebury 2006 Aloe, 1282x1110, 8-bit full-size disparity (0 = unknown)
    and the left view as JPEG. Its depth equals MSG-Net's ``Df_65`` where both are valid (see
    :mod:`training.data.overlap`). ``motorcycle2014``: Middlebury 2014 Motorcycle at quarter
    size, float disparity in pixels with ``+inf`` where unknown (7 % of the pixels): unit
    ``relative`` (a disparity, not 8-bit), invalid pixels set to 0 and masked.
    """
    _require_dir(root)
    aloe, motorcycle = root / 'aloe2006_full', root / 'motorcycle2014'

    def load_aloe() -> RGBDSample:
        depth = read_depth_png(aloe / 'aloeGT.png')
        rgb = _rgb_matching(aloe / 'aloeL.jpg', depth.shape, 'aloe2006_full')
        return RGBDSample('aloe2006_full', depth, depth > 0, 'disparity_8bit', rgb=rgb,
                          source=str(aloe / 'aloeGT.png'))

    def load_motorcycle() -> RGBDSample:
        path = motorcycle / 'motorcycle_disp.npz'
        depth = read_npz(path, 'arr_0')
        valid = _finite_positive(depth)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
        rgb = _rgb_matching(motorcycle / 'motorcycle_left.png', depth.shape, 'motorcycle2014')
        return RGBDSample('motorcycle2014', depth, valid, 'relative', rgb=rgb, source=str(path))

    return [_Entry('aloe2006_full', load_aloe), _Entry('motorcycle2014', load_motorcycle)]


def read_npz(path: Path, key: str) -> np.ndarray:
    """One 2-D float array of a ``.npz`` file, as float32 (non-finite values kept)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'file does not exist')
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise DataError(path, f'no array {key!r} (has {archive.files})')
            array = archive[key]
    except (OSError, ValueError) as error:
        raise DataError(path, f'not a readable .npz ({error})') from error
    if array.ndim != 2:
        raise DataError(path, f'array {key!r} is not 2-D (shape {array.shape})')
    return array.astype(np.float32)


_DEPTH_SUFFIXES = ('.png', '.npy', '.tif', '.tiff')
_RGB_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm')
_INTRINSICS_FILES = ('intrinsics.json', 'camera_info.json', 'camera.json',
                     'camera_primesense.json')


def _list_folder(root: Path, depth_dir: str = 'depth', rgb_dir: Optional[str] = None,
                 png_units_per_metre: float = 1000.0, with_rgb: bool = True,
                 intrinsics: Optional[Sequence[float]] = None) -> List[_Entry]:
    """A generic folder of RGB-D frames, e.g. a recording exported from a camera.

    Layout::

        <root>/depth/<stem>.png     16-bit PNG, millimetres (0 = invalid)  -> unit 'millimetre'
        <root>/depth/<stem>.npy     float metres (also .tif/.tiff; NaN/<=0 invalid) -> 'metre'
        <root>/rgb|color|image/<stem>.png|jpg   optional, matched to the depth by file stem
        <root>/intrinsics.json      optional: {"K": [9 row-major]} or {"fx","fy","cx","cy"}
                                    or Open3D's {"intrinsic_matrix": [9 column-major]}
                                    (camera_info.json, camera.json, camera_primesense.json too)

    The Open3D RGB-D test data (color/ + depth/ + camera_primesense.json) is this layout. A
    folder without a ``depth/`` subfolder is read as depth files only. PNGs whose scale is not
    millimetres (TUM: 5000 per metre) are converted to metres with ``png_units_per_metre``.
    Samples are named ``<folder>/<stem>``.
    """
    _require_dir(root)
    depth_root = root / depth_dir if (root / depth_dir).is_dir() else root
    depth_files = sorted((p for p in depth_root.iterdir()
                          if p.suffix.lower() in _DEPTH_SUFFIXES and p.is_file()),
                         key=_natural_key)
    if not depth_files:
        raise DataError(depth_root, f'no depth files ({", ".join(_DEPTH_SUFFIXES)})')
    rgb_root = None
    if with_rgb and depth_root != root:
        candidates = [rgb_dir] if rgb_dir else ['rgb', 'color', 'colour', 'image', 'images']
        rgb_root = next((root / c for c in candidates if (root / c).is_dir()), None)
        if rgb_dir and rgb_root is None:
            raise DataError(root / rgb_dir, 'folder does not exist')
    rgb_by_stem = {}
    if rgb_root is not None:
        rgb_by_stem = {p.stem: p for p in sorted(rgb_root.iterdir())
                       if p.suffix.lower() in _RGB_SUFFIXES}
    k = (np.asarray(intrinsics, dtype=np.float64).reshape(3, 3) if intrinsics is not None
         else _folder_intrinsics(root))
    entries = []
    for path in depth_files:
        name = f'{root.name}/{path.stem}'
        entries.append(_folder_entry(name, path, rgb_by_stem.get(path.stem),
                                     float(png_units_per_metre), k))
    return entries


def _folder_intrinsics(root: Path) -> Optional[np.ndarray]:
    import json
    for file_name in _INTRINSICS_FILES:
        path = root / file_name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
            if 'K' in data:
                return np.asarray(data['K'], dtype=np.float64).reshape(3, 3)
            if 'intrinsic_matrix' in data:  # Open3D: column-major
                return np.asarray(data['intrinsic_matrix'], dtype=np.float64).reshape(3, 3).T
            return np.array([[data['fx'], 0, data['cx']], [0, data['fy'], data['cy']],
                             [0, 0, 1]], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(path, f'cannot read intrinsics ({type(error).__name__}: {error}); '
                                  'expected K, intrinsic_matrix or fx/fy/cx/cy') from error
    return None


def _folder_entry(name: str, path: Path, rgb_path: Optional[Path], units_per_metre: float,
                  k: Optional[np.ndarray]) -> _Entry:
    def load() -> RGBDSample:
        if path.suffix.lower() == '.png':
            raw = read_image(path, cv2.IMREAD_UNCHANGED)
            if raw.ndim != 2 or raw.dtype != np.uint16:
                raise DataError(path, f'a depth PNG must be 16-bit single-channel, got '
                                      f'{raw.dtype} {raw.shape}')
            depth = raw.astype(np.float32)
            unit = 'millimetre'
            if units_per_metre != 1000.0:
                depth, unit = depth / np.float32(units_per_metre), 'metre'
        else:
            depth, unit = read_depth_array(path), 'metre'
        valid = _finite_positive(depth)
        depth = np.where(valid, depth, np.float32(0))
        rgb = None
        if rgb_path is not None:
            rgb = read_rgb(rgb_path)
            if rgb.shape[:2] != depth.shape:
                LOGGER.info('%s: RGB %s resized to the depth size %s (INTER_AREA)', name,
                            rgb.shape[:2], depth.shape)
                rgb = cv2.resize(rgb, (depth.shape[1], depth.shape[0]),
                                 interpolation=cv2.INTER_AREA)
        return RGBDSample(name, depth, valid, unit, rgb=rgb, intrinsics=k, source=str(path))
    return _Entry(name, load)


def _list_rosbag(root: Path, depth_topic: str = '/depth/image_raw',
                 rgb_topic: Optional[str] = None, camera_info_topic: Optional[str] = None,
                 tolerance: float = 0.02, every: int = 1,
                 max_frames: Optional[int] = None) -> List[_Entry]:
    """A rosbag2 (sqlite3 or mcap) through :mod:`training.data.rosbag_io`; ``root`` = the bag.

    Frames are decoded when listed (pairing needs the stream in order), so for long bags use
    ``every`` (keep every n-th synchronised frame, what training wants from a 30 Hz recording)
    and ``max_frames`` (stop reading after that many synchronised frames) to bound memory.
    """
    from training.data.rosbag_io import BagStats, iter_bag_samples
    stats = BagStats()
    samples = []
    for index, sample in enumerate(iter_bag_samples(root, depth_topic, rgb_topic,
                                                    camera_info_topic, tolerance, stats,
                                                    max_frames)):
        if index % max(1, int(every)) == 0:
            samples.append(sample)
    LOGGER.info('%s: %s', root, stats.summary())
    return [_Entry(sample.name, (lambda s=sample: s)) for sample in samples]


READERS: Dict[str, Callable[..., List[_Entry]]] = {
    'middlebury2005': _list_middlebury2005,
    'msgnet_mat': _list_msgnet_mat,
    'lu30': _list_lu30,
    'msgnet_testsets': _list_msgnet_testsets,
    'middlebury_thirdsize': _list_middlebury_thirdsize,
    'ferstl_noisy': _list_ferstl_noisy,
    'nyuv2': _list_nyuv2,
    'lu_rgbd6': _list_lu_rgbd6,
    'extra_rgbd': _list_extra_rgbd,
    'folder': _list_folder,
    'rosbag': _list_rosbag,
}


# ---------------------------------------------------------------------------- dispatch
def list_samples(spec: Dict[str, Any]) -> List[str]:
    """The sample names a spec selects, without reading any image."""
    return [entry.name for entry in _select(spec)]


def load_samples(spec: Dict[str, Any]) -> List[RGBDSample]:
    """Read the samples a spec describes (see the module docstring for the keys)."""
    entries = _select(spec)
    label = spec['type']
    iterator: Iterable[_Entry] = entries
    if len(entries) > 3:
        iterator = tqdm(entries, desc=f'reading {label}', unit='sample', leave=False)
    samples = [entry.load() for entry in iterator]
    LOGGER.info('%s: %d samples (%s)', label, len(samples),
                ', '.join(s.name for s in samples[:8]) + (' ...' if len(samples) > 8 else ''))
    return samples


def _select(spec: Dict[str, Any]) -> List[_Entry]:
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ValueError(f'a data spec must be a dict with a "type"; got {spec!r}')
    kind = spec['type']
    if kind not in READERS:
        raise ValueError(f'unknown data type {kind!r}; known: {sorted(READERS)}')
    reader = READERS[kind]
    options = {k: v for k, v in spec.items() if k not in _COMMON_KEYS}
    allowed = set(reader.__code__.co_varnames[1:reader.__code__.co_argcount])
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f'{kind}: unknown option(s) {unknown}; allowed: '
                         f'{sorted(allowed | _COMMON_KEYS)}')
    root = spec.get('root', spec.get('path'))  # 'path' reads better for one bag or file
    if root is None:
        if kind not in _SHARED_FOLDERS:
            raise ValueError(f'{kind}: "root" is required')
        root = shared_data_root() / _SHARED_FOLDERS[kind]
    entries = reader(Path(root).expanduser(), **options)
    names = spec.get('names')
    if names is not None:
        if isinstance(names, str):
            names = [names]
        by_name = {entry.name: entry for entry in entries}
        lowered = {entry.name.lower(): entry for entry in entries}
        missing = [n for n in names if n not in by_name and str(n).lower() not in lowered]
        if missing:
            raise ValueError(f'{kind}: no sample named {missing} under {root}; available: '
                             f'{sorted(by_name)}')
        entries = [by_name.get(n) or lowered[str(n).lower()] for n in names]
    max_samples = spec.get('max_samples')
    if max_samples is not None:
        entries = entries[:int(max_samples)]
    return entries


def _require_dir(path: Path) -> None:
    if not path.is_dir():
        raise DataError(path, 'folder does not exist')


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r'(\d+)', path.name))
