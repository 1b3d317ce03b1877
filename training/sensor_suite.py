"""Real-sensor evaluation suite: SR against bicubic and nearest on depth degraded like cameras.

``python -m training.evaluate --suite sensor --weights W.pt [W2.pt ...] --out DIR [--quick]``

The paper's protocol (OpenCV-bicubic LR of 8-bit disparity) says little about a real camera.
This suite scores a model the way the node uses it (:meth:`DepthSuperResolver.run` on metric
frames with holes, the checkpoint's own scaling) against nearest-neighbour and bicubic
upsampling of the same LR frame, over the same pixels (GT valid and LR-valid, i.e. the output
mask every method shares).

Data (metric ground truth; never trained on by the sensor configs):

* ``middlebury``: Middlebury 2005 GT (6 scenes, centre 480 x 640), disparity -> metres with
  ``z = fB / (d + d_off)``, fB = 3740 px x 0.16 m, d_off = 200 px (about Middlebury 2005's
  full-size camera: 1.3-2.7 m);
* ``nyuv2``: the three NYUv2 test samples (metres);
* ``lu``: the Lu RGB-D 6 set (8-bit relative depth, mapped to 0.5-4.5 m);
* ``ferstl``: Middlebury 2005 with the noisy LR inputs of Ferstl et al. (their own degradation,
  one family of its own);
* ``real``: real PrimeSense frames (Open3D's 5-frame sequence, 16UC1 mm) and single TUM and
  SUN3D Kinect frames, **decimated x s by keeping every s-th pixel, holes kept**, compared with
  the original frames.

**Validation split** (``--split val``): the same families on frames the shipped sensor models
were selected on but never trained on, so recipes and checkpoints can be chosen without looking
at the test frames above: ``lu_val`` (the three held-out Lu Middlebury views of the sensor
configs' ``data.val``, 8-bit disparity mapped like ``lu``), ``rooms_val`` (the eight procedural
rooms of ``data.val``, rendered at 480 x 640) and, as ``real``, the raw NYUv2 Kinect frame of
Open3D's test data (11-bit disparity, byte-swapped; ``z = 351.3 / (1092.5 - raw)``, 2047 and
non-physical values invalid), decimated like the real test frames.

Families (fixed parameters, seeded per image): ``area``, ``point`` (random phase), ``bilinear``,
``cubic``, ``aa_cubic``, ``gaussian`` (blur sigma 0.35 s + point), ``area_tof`` (area + ToF noise
0.5 % of depth + 1 mm quantisation), ``point_sl`` (point + structured-light noise fB 40 px m,
0.05 px, 1/8 px disparity steps + 1 mm), ``point_holes`` (point + edge dropouts + blobs).

Reported per family and data set: MAD and RMSE (mm) of SR, bicubic and nearest, in the edge
band (within s px of a GT discontinuity) and in flat areas, the invalid-pixel accounting (LR
holes, output pixels that changed validity: must be 0), the error next to holes relative to the
same pixels without holes, and frame-to-frame stability (mean |e_t - e_{t-1}|) on the PrimeSense
sequence and on the demo's procedural sequence. Outputs: ``sensor.json``, ``sensor.md`` and
``sensor_maps.png``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from dsr_ros.depth_io import valid_mask
from dsr_ros.inference import DepthSuperResolver, fill_invalid
from dsr_ros.sampling_geometry import SamplingGeometry
from training.data import sensor_degradation as sd
from training.data.degradation import upsample_bicubic

__all__ = ['FAMILIES', 'Frame', 'SuiteConfig', 'evaluate_suite', 'load_frames',
           'markdown_report', 'upsample_nearest']

LOGGER = logging.getLogger(__name__)

#: What a native low-resolution camera produces: a footprint centred on each pixel (area
#: average, or a Gaussian PSF over the block), with ToF noise, structured-light noise and
#: disparity steps, flying pixels, holes, quantisation. The resolver runs them as the node does
#: with a native camera_info (geometry ``native``).
NATIVE_FAMILIES = ('area', 'native_psf', 'area_tof', 'native_sl', 'native_flying',
                   'native_holes', 'native_quant')
#: Decimated streams whose phase the node knows (camera_info binning, or sampling_phase): the
#: resolver is told the phase (geometry ``decimated``); only for checkpoints with a measured
#: point alignment (tools/calibrate_phase.py). ``real_phase_known``: the real frames.
PHASE_KNOWN_FAMILIES = ('point_phase_known', 'point_sl_phase_known', 'point_holes_phase_known',
                        'real_phase_known')
#: The families a camera produces: what the node's default models are chosen on.
CAMERA_FAMILIES = NATIVE_FAMILIES + PHASE_KNOWN_FAMILIES
#: Random, unknown phase (no camera makes one: reported beside its phase-blind floor,
#: tools/phase_study.py) and the research degradations.
FAMILIES = ('area', 'point', 'bilinear', 'cubic', 'aa_cubic', 'gaussian', 'area_tof',
            'point_sl', 'point_holes', 'point_phase_known', 'native_psf', 'native_sl',
            'native_flying', 'native_holes', 'native_quant', 'point_sl_phase_known',
            'point_holes_phase_known')
#: ``--families``: every family, or the camera families and, beside its phase-blind floor, the
#: random phase.
FAMILY_SETS = {'all': FAMILIES, 'camera': CAMERA_FAMILIES + ('point',)}
NOISY_FAMILIES = ('area_tof', 'point_sl', 'ferstl')
POINT_FAMILIES = ('point', 'point_sl', 'point_holes')
MIDDLEBURY_FB = 3740.0 * 0.16
MIDDLEBURY_DOFF = 200.0
METHODS = ('sr', 'bicubic', 'nearest')


@dataclass
class Frame:
    """One metric ground-truth frame (float32 m, NaN = invalid)."""

    dataset: str
    name: str
    depth: np.ndarray
    lr_given: Optional[Dict[int, np.ndarray]] = None
    sequence: Optional[str] = None


@dataclass(frozen=True)
class SuiteConfig:
    """What to run: ``quick`` crops every frame to ``quick_size`` and keeps one per data set;
    otherwise frames larger than a camera (``max_height`` x ``max_width``, 480 x 640) are
    centre-cropped to it, so Middlebury's 1.4-megapixel scenes cost what a camera frame costs."""

    scale: int = 4
    families: Tuple[str, ...] = FAMILIES
    quick: bool = False
    quick_size: int = 96
    max_height: int = 480
    max_width: int = 640
    seed: int = 0


# ---------------------------------------------------------------------------- data
def _disparity_to_metres(disparity: np.ndarray) -> np.ndarray:
    out = np.full(disparity.shape, np.nan, np.float32)
    valid = valid_mask(disparity)
    out[valid] = MIDDLEBURY_FB / (disparity[valid] + MIDDLEBURY_DOFF)
    return out


def _nan_invalid(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = depth.astype(np.float32).copy()
    out[~valid] = np.nan
    return out


#: The data sets of each split (see the module docstring).
SPLITS: Dict[str, Tuple[str, ...]] = {
    'test': ('middlebury', 'nyuv2', 'lu', 'ferstl', 'real'),
    'val': ('lu_val', 'rooms_val', 'real_val')}
#: The held-out Lu views of the sensor configs' ``data.val`` (training/configs/sensor_*.yaml).
LU_VAL_NAMES = ('Middlebury_05', 'Middlebury_12', 'Middlebury_22')


def load_frames(data_root: Path, datasets: Optional[Sequence[str]] = None,
                quick: bool = False, split: str = 'test') -> Tuple[List[Frame], Dict[str, str]]:
    """Read every data set of ``split`` that exists under ``data_root``; say why others don't."""
    from training.data.readers import load_samples
    if split not in SPLITS:
        raise ValueError(f'unknown sensor-suite split {split!r}; known: {sorted(SPLITS)}')
    wanted = datasets or SPLITS[split]
    frames: List[Frame] = []
    missing: Dict[str, str] = {}
    readers: Dict[str, Callable[[], List[Frame]]] = {
        'middlebury': lambda: [
            Frame('middlebury', s.name, _disparity_to_metres(np.where(s.valid, s.depth, 0)))
            for s in load_samples({'type': 'middlebury2005',
                                   'root': data_root / 'middlebury2005_sun'})],
        'nyuv2': lambda: [
            Frame('nyuv2', s.name, _nan_invalid(s.depth, s.valid))
            for s in load_samples({'type': 'nyuv2', 'root': data_root / 'nyuv2_test_subset'})],
        'lu': lambda: [
            Frame('lu', s.name, _lu_metres(s))
            for s in load_samples({'type': 'lu_rgbd6', 'root': data_root / 'lu_rgbd6'})],
        'ferstl': lambda: [
            Frame('ferstl', s.name, _disparity_to_metres(np.where(s.valid, s.depth, 0)),
                  lr_given={k: _disparity_to_metres(v) for k, v in s.lr_inputs.items()})
            for s in load_samples({'type': 'ferstl_noisy',
                                   'root': data_root / 'middlebury2005_ferstl_noisy'})],
        'real': lambda: _real_frames(data_root / 'open3d_rgbd_testdata'),
        'lu_val': lambda: [
            Frame('lu_val', s.name, _lu_metres(s))
            for s in load_samples({'type': 'lu30', 'root': data_root / 'middlebury_lu30',
                                   'names': list(LU_VAL_NAMES)})],
        'rooms_val': _validation_rooms,
        'real_val': lambda: [_nyu_raw_frame(data_root / 'open3d_rgbd_testdata')],
    }
    for name in wanted:
        try:
            loaded = readers[name]()
        except (OSError, ValueError) as error:
            missing[name] = str(error)
            continue
        if quick:
            loaded = loaded[:2] if name == 'real' else loaded[:1]
        frames.extend(loaded)
    return frames, missing


def _real_frames(root: Path) -> List[Frame]:
    """Open3D's PrimeSense sequence (mm) and single TUM (1/5000 m) and SUN3D frames."""
    frames = []
    paths = sorted((root / 'depth').glob('*.png'))
    if not paths:
        raise OSError(f'no depth/*.png under {root}')
    for path in paths:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        frames.append(Frame('real', f'primesense_{path.stem}', _mm_to_metres(raw),
                            sequence='primesense'))
    other = root / 'other_formats'
    tum = cv2.imread(str(other / 'TUM_depth.png'), cv2.IMREAD_UNCHANGED)
    if tum is not None:
        frames.append(Frame('real', 'tum', _nan_invalid(tum / 5000.0, tum > 0)))
    sun = cv2.imread(str(other / 'SUN_depth.png'), cv2.IMREAD_UNCHANGED)
    if sun is not None:
        rotated = ((sun >> 3) | (sun << 13)) & 0xFFFF
        frames.append(Frame('real', 'sun3d', _nan_invalid(rotated / 1000.0,
                                                          (rotated > 0) & (rotated < 10000))))
    return frames


def _lu_metres(sample: Any) -> np.ndarray:
    """Lu's 8-bit relative depth mapped to 0.5-4.5 m (NaN = invalid)."""
    return _nan_invalid(0.5 + 4.0 * sample.depth / 255.0, sample.valid)


def _validation_rooms() -> List[Frame]:
    from training.data.synthetic import room_samples
    return [Frame('rooms_val', s.name, s.depth) for s in room_samples(8, 480, 640, seed=1)]


def _nyu_raw_frame(root: Path) -> Frame:
    """Open3D's raw NYUv2 Kinect frame (validation split's real frame), in metres."""
    path = root / 'other_formats' / 'NYU_depth.pgm'
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f'cannot read {path}')
    raw = raw.astype(np.uint16).byteswap().astype(np.float64)  # true 11-bit Kinect disparity
    with np.errstate(divide='ignore'):
        metres = 351.3 / (1092.5 - raw)
    valid = (raw < 2047) & (metres > 0.3) & (metres < 10.0)
    return Frame('real', 'nyu_raw', _nan_invalid(metres, valid))


def _mm_to_metres(raw: np.ndarray) -> np.ndarray:
    return _nan_invalid(raw.astype(np.float32) / 1000.0, raw > 0)


# ---------------------------------------------------------------------------- degradations
def filled_frame(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A frame (NaN = hole) with every hole set to its nearest valid pixel."""
    return fill_invalid(np.nan_to_num(depth, nan=0.0), valid)


def degrade_frame(gt: np.ndarray, family: str, scale: int, rng: np.random.Generator,
                  with_clean: bool = False, phase: Optional[Tuple[int, int]] = None) -> Any:
    """The LR frame (metres, NaN = hole) of a suite family; GT holes stay holes.

    ``with_clean`` also returns the frame before the family's own holes were punched (the
    hole-free reference of :func:`near_hole_ratio`). ``phase``: the point / gaussian sampling
    phase (drawn from ``rng`` when None).
    """
    valid = valid_mask(gt)
    filled = filled_frame(gt, valid)
    drawn = tuple(int(v) for v in rng.integers(0, scale, 2))
    phase = drawn if phase is None else phase
    base = _downsampling_of(family)
    if family == 'native_psf':  # a Gaussian footprint centred on the pixel
        filled = cv2.GaussianBlur(filled, (0, 0), sigmaX=0.35 * scale,
                                  borderType=cv2.BORDER_REFLECT)
    if base in ('point', 'gaussian'):
        lr = sd.downsample(filled, scale, base, phase=phase, sigma=0.35 * scale)
        row, col = phase
        lr_valid = valid[row::scale, col::scale][:lr.shape[0], :lr.shape[1]]
    else:
        lr = sd.downsample(filled, scale, base)
        height, width = lr.shape
        blocks = valid[:height * scale, :width * scale].reshape(height, scale, width, scale)
        lr_valid = blocks.mean(axis=(1, 3)) >= 0.5
    if family == 'area_tof':
        lr = sd.quantize(sd.add_tof_noise(lr, rng, 0.005), 'mm')
    elif family in ('point_sl', 'native_sl', 'point_sl_phase_known'):
        lr = sd.quantize(sd.add_structured_light_noise(lr, rng, 40.0, 0.05, 8), 'mm')
    elif family == 'native_flying':
        lr = sd._flying_pixels(lr, rng, 0.5, 0.05)[0]
    elif family == 'native_quant':
        lr = sd.quantize(lr, '8bit', lr_valid)
    clean = lr.astype(np.float32)
    clean[~lr_valid] = np.nan
    if family in ('point_holes', 'native_holes', 'point_holes_phase_known'):
        lr_valid = lr_valid & ~sd.edge_dropouts(lr, rng, 0.5) & ~sd.blob_holes(
            lr.shape, rng, 0.03)
    out = lr.astype(np.float32)
    out[~lr_valid] = np.nan
    return (out, clean) if with_clean else out


def _downsampling_of(family: str) -> str:
    """The downsampling a suite family starts from (native ones: a centred footprint)."""
    if family in sd.DOWNSAMPLING:
        return family
    if family.startswith('native_') or family == 'area_tof':
        return 'area'
    return family.split('_')[0]


def decimate_real(frame: np.ndarray, scale: int) -> np.ndarray:
    """What the issue's user did: keep every ``scale``-th pixel (phase 0), holes included."""
    height, width = frame.shape[0] // scale, frame.shape[1] // scale
    return np.ascontiguousarray(frame[:height * scale:scale, :width * scale:scale])


# ---------------------------------------------------------------------------- baselines
def upsample_nearest(lr: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upsampling: each LR pixel becomes an s x s block (holes stay holes)."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


def upsample_bicubic_masked(lr: np.ndarray, scale: int) -> np.ndarray:
    """OpenCV bicubic of the nearest-filled LR frame, LR holes kept as invalid blocks."""
    valid = valid_mask(lr)
    if not valid.any():
        return np.full((lr.shape[0] * scale, lr.shape[1] * scale), np.nan, np.float32)
    out = upsample_bicubic(filled_frame(lr, valid), scale)
    out[~upsample_nearest(valid, scale)] = np.nan
    return out


# ---------------------------------------------------------------------------- scoring
def _edge_band(gt: np.ndarray, scale: int) -> np.ndarray:
    filled = filled_frame(gt, valid_mask(gt))
    edges = sd.edge_jump(filled) > 0.03 * np.maximum(filled, 1e-3)
    return cv2.dilate(edges.astype(np.uint8), np.ones((2 * scale + 1, 2 * scale + 1),
                                                      np.uint8)) > 0


def _errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> Dict[str, float]:
    diff = (pred[mask] - gt[mask]) * 1000.0
    if diff.size == 0:
        return {'mad': float('nan'), 'rmse': float('nan'), 'pixels': 0}
    return {'mad': float(np.abs(diff).mean()), 'rmse': float(np.sqrt((diff ** 2).mean())),
            'pixels': int(diff.size)}


def score(outputs: Dict[str, np.ndarray], gt: np.ndarray, lr: np.ndarray, scale: int
          ) -> Dict[str, Any]:
    """Errors of every method over the shared pixels, edge band and flat split, validity."""
    height, width = lr.shape[0] * scale, lr.shape[1] * scale
    gt = gt[:height, :width]
    lr_valid_up = upsample_nearest(valid_mask(lr), scale)
    common = valid_mask(gt) & lr_valid_up
    for out in outputs.values():
        common &= valid_mask(out)
    band = _edge_band(gt, scale)
    result: Dict[str, Any] = {}
    for method, out in outputs.items():
        result[method] = dict(_errors(out, gt, common), edge=_errors(out, gt, common & band),
                              flat=_errors(out, gt, common & ~band))
    if 'sr' in outputs:  # the oracle-only phase study scores baselines and oracles alone
        sr_valid = valid_mask(outputs['sr'])
        result['validity'] = {'lr_holes': int((~valid_mask(lr)).sum()),
                              'became_valid': int((sr_valid & ~lr_valid_up).sum()),
                              'became_invalid': int((~sr_valid & lr_valid_up).sum())}
    return result


def near_hole_ratio(resolver: DepthSuperResolver, gt: np.ndarray, lr_holes: np.ndarray,
                    lr_clean: np.ndarray, scale: int, radius: int = 4,
                    with_holes: Optional[np.ndarray] = None,
                    geometry: Optional[SamplingGeometry] = None) -> Dict[str, float]:
    """SR error within ``radius`` HR px of punched holes, relative to the same pixels when the
    same LR frame has no such holes (``lr_clean``).

    Issue 8's criterion: holes may not spoil their valid neighbours by more than 10 %.
    ``with_holes``: the SR output of ``lr_holes`` when the caller has it already; both runs
    use ``geometry``.
    """
    holes = ~valid_mask(lr_holes) & valid_mask(lr_clean)
    if with_holes is None:
        with_holes = resolver.run(lr_holes, geometry=geometry)
    without = resolver.run(lr_clean, geometry=geometry)
    height, width = with_holes.shape
    near = cv2.dilate(upsample_nearest(holes, scale).astype(np.uint8),
                      np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    mask = near & valid_mask(with_holes) & valid_mask(gt[:height, :width])
    err_holes = _errors(with_holes, gt[:height, :width], mask)
    err_clean = _errors(without, gt[:height, :width], mask)
    return {'mad_with_holes': err_holes['mad'], 'mad_without_holes': err_clean['mad'],
            'ratio': err_holes['mad'] / max(err_clean['mad'], 1e-9), 'pixels': err_holes['pixels']}


def temporal_flicker(errors: List[np.ndarray], masks: List[np.ndarray]) -> float:
    """Mean |e_t - e_{t-1}| in mm over pixels valid in both frames (lower = steadier)."""
    values = []
    for index in range(1, len(errors)):
        mask = masks[index] & masks[index - 1]
        if mask.any():
            values.append(float(np.abs(errors[index][mask] - errors[index - 1][mask]).mean()))
    return float(np.mean(values)) * 1000.0 if values else float('nan')


# ---------------------------------------------------------------------------- the suite
def _crop(depth: np.ndarray, size: int, width: Optional[int] = None) -> np.ndarray:
    """The centre ``size`` x ``width`` (square when ``width`` is None) of a frame."""
    width = size if width is None else width
    rows, cols = depth.shape
    top, left = max(0, (rows - size) // 2), max(0, (cols - width) // 2)
    return depth[top:top + size, left:left + width]


def geometry_of_family(family: str, phase: Optional[Tuple[int, int]]
                       ) -> Optional[SamplingGeometry]:
    """The sampling geometry the node would use for a family's frames: native for the
    native families, decimated at ``phase`` for the phase-known ones, and None (the output as
    the net places it) for the random, unknown phase no camera_info describes."""
    if family in NATIVE_FAMILIES:
        return SamplingGeometry('native', source='suite: native family')
    if phase is not None:
        return SamplingGeometry('decimated', tuple(phase), 'suite: phase known')
    return None


def run_told(resolver: DepthSuperResolver, lr: np.ndarray,
             phase: Optional[Tuple[int, int]]) -> np.ndarray:
    """SR of ``lr`` told ``phase`` (None: unknown), as the node's sampling_phase does."""
    return resolver.run(lr, geometry=geometry_of_family('point', phase))


def _run_methods(resolver: DepthSuperResolver, lr: np.ndarray, scale: int,
                 geometry: Optional[SamplingGeometry] = None) -> Dict[str, np.ndarray]:
    """SR (in ``geometry``, as the node runs it), bicubic, nearest."""
    return {'sr': resolver.run(lr, geometry=geometry),
            'bicubic': upsample_bicubic_masked(lr, scale),
            'nearest': upsample_nearest(lr, scale)}


def evaluate_suite(resolver: DepthSuperResolver, frames: Sequence[Frame],
                   config: SuiteConfig = SuiteConfig(), progress: bool = True,
                   keep_maps: bool = False) -> Dict[str, Any]:
    """Score one model on every frame x family; returns per-image rows and summaries."""
    scale = config.scale
    if resolver.scale != scale:
        raise ValueError(f'the model is x{resolver.scale}, the suite runs x{scale}')
    families = [f for f in config.families
                if f not in PHASE_KNOWN_FAMILIES or resolver.point_alignment is not None]
    jobs: List[Tuple[Frame, str]] = []
    for frame in frames:
        if frame.dataset == 'real':
            jobs.append((frame, 'real'))
            if resolver.point_alignment is not None:
                jobs.append((frame, 'real_phase_known'))
        elif frame.dataset == 'ferstl':
            jobs.append((frame, 'ferstl'))
        else:
            jobs.extend((frame, family) for family in families
                        if family != 'real_phase_known')
    rows: List[Dict[str, Any]] = []
    maps: Dict[str, Dict[str, np.ndarray]] = {}
    sequences: Dict[str, Dict[str, list]] = {}
    start = time.perf_counter()
    for frame, family in tqdm(jobs, desc='sensor suite', unit='image', disable=not progress,
                              leave=False):
        gt = (_crop(frame.depth, config.quick_size) if config.quick
              else _crop(frame.depth, config.max_height, config.max_width))
        rng = np.random.default_rng([config.seed, FAMILIES.index(family)
                                     if family in FAMILIES else 99, len(frame.name),
                                     sum(map(ord, frame.name))])
        phase = None
        if family in ('real', 'real_phase_known'):
            lr = decimate_real(gt, scale)
            phase = (0, 0) if family == 'real_phase_known' else None
        elif family in PHASE_KNOWN_FAMILIES:
            phase = tuple(int(v) for v in rng.integers(0, scale, 2))
            lr, clean = degrade_frame(gt, family, scale, rng, with_clean=True, phase=phase)
        elif family == 'ferstl':
            # Crop the given LR input and take the GT window that lies exactly under it.
            lr_full = frame.lr_given[scale]
            lr_rows, lr_cols = ((config.quick_size // scale,) * 2 if config.quick
                                else (config.max_height // scale, config.max_width // scale))
            top = max(0, (lr_full.shape[0] - lr_rows) // 2)
            left = max(0, (lr_full.shape[1] - lr_cols) // 2)
            lr = lr_full[top:top + lr_rows, left:left + lr_cols]
            gt = frame.depth[top * scale:(top + lr.shape[0]) * scale,
                             left * scale:(left + lr.shape[1]) * scale]
        else:
            lr, clean = degrade_frame(gt, family, scale, rng, with_clean=True)
        geometry = geometry_of_family(family, phase)
        outputs = _run_methods(resolver, lr, scale, geometry)
        row = {'dataset': frame.dataset, 'frame': frame.name, 'family': family,
               **score(outputs, gt, lr, scale)}
        if family in ('point_holes', 'native_holes', 'point_holes_phase_known'):
            row['near_holes'] = near_hole_ratio(resolver, gt, lr, clean, scale,
                                                with_holes=outputs['sr'], geometry=geometry)
        rows.append(row)
        if keep_maps and family not in maps:
            maps[family] = dict(outputs, gt=gt[:lr.shape[0] * scale, :lr.shape[1] * scale],
                                lr=lr)
        if frame.sequence and family == 'real':
            seq = sequences.setdefault(frame.sequence, {m: [] for m in METHODS + ('mask',)})
            gt_c = gt[:lr.shape[0] * scale, :lr.shape[1] * scale]
            common = valid_mask(gt_c) & valid_mask(outputs['sr'])
            for method in METHODS:
                seq[method].append(np.nan_to_num(outputs[method] - gt_c))
                common &= valid_mask(outputs[method])
            seq['mask'].append(common)
    result = {'scale': scale, 'quick': config.quick, 'seed': config.seed, 'rows': rows,
              'seconds': time.perf_counter() - start,
              'stability': {name: {m: temporal_flicker(seq[m], seq['mask']) for m in METHODS}
                            for name, seq in sequences.items()}}
    result['stability']['demo_scene'] = demo_stability(resolver, scale, config.quick)
    result['summary'] = summarize(rows)
    if keep_maps:
        result['maps'] = maps
    return result


def demo_stability(resolver: DepthSuperResolver, scale: int, quick: bool) -> Dict[str, float]:
    """Temporal flicker on the demo's procedural sequence (noisy LR, exact HR truth)."""
    from dsr_ros.scene import DepthScene, SceneConfig
    scene = DepthScene(SceneConfig(lr_width=40 if quick else 160, lr_height=30 if quick else 120,
                                   scale=scale, encoding='32FC1'))
    errors: Dict[str, list] = {m: [] for m in METHODS + ('mask',)}
    for index in range(3 if quick else 6):
        frame = scene.frame(index)
        outputs = _run_methods(resolver, frame.lr, scale)
        common = np.ones(frame.hr_metres.shape, bool)
        for method in METHODS:
            errors[method].append(np.nan_to_num(outputs[method] - frame.hr_metres))
            common &= valid_mask(outputs[method])
        errors['mask'].append(common)
    return {m: temporal_flicker(errors[m], errors['mask']) for m in METHODS}


def summarize(rows: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Per family: mean over data sets of the per-data-set mean MAD/RMSE and their ratios."""
    families: Dict[str, Dict[str, list]] = {}
    for row in rows:
        per = families.setdefault(row['family'], {}).setdefault(row['dataset'], [])
        per.append(row)
    summary: Dict[str, Any] = {}
    for family, datasets in families.items():
        entry: Dict[str, Any] = {'datasets': {}}
        for dataset, items in datasets.items():
            means = {m: {k: float(np.nanmean([r[m][k] for r in items])) for k in ('mad', 'rmse')}
                     for m in METHODS}
            means['edge_mad'] = {m: float(np.nanmean([r[m]['edge']['mad'] for r in items]))
                                 for m in METHODS}
            means['flat_mad'] = {m: float(np.nanmean([r[m]['flat']['mad'] for r in items]))
                                 for m in METHODS}
            means['became_valid'] = sum(r['validity']['became_valid'] for r in items)
            means['became_invalid'] = sum(r['validity']['became_invalid'] for r in items)
            if 'near_holes' in items[0]:
                means['near_hole_ratio'] = float(np.nanmean([r['near_holes']['ratio']
                                                             for r in items]))
            entry['datasets'][dataset] = means
        for ratio, (num, den, key) in {
                'sr_over_bicubic_mad': ('sr', 'bicubic', 'mad'),
                'sr_over_nearest_mad': ('sr', 'nearest', 'mad'),
                'sr_over_bicubic_rmse': ('sr', 'bicubic', 'rmse'),
                'sr_over_nearest_rmse': ('sr', 'nearest', 'rmse')}.items():
            entry[ratio] = float(np.mean([d[num][key] / d[den][key]
                                          for d in entry['datasets'].values()]))
        summary[family] = entry
    return summary


# ---------------------------------------------------------------------------- reporting
def markdown_report(results: Dict[str, Dict[str, Any]]) -> str:
    """One table per model: a row per family with the ratios (< 1: SR better) and errors."""
    lines = []
    for label, result in results.items():
        passes = result.get('ensemble_passes', 1)
        seed = result.get('seed', 0)
        notes = (', quick' if result['quick'] else '') + (
            f', {passes}-pass self-ensemble' if passes > 1 else '') + (
            f', seed {seed}' if seed else '')
        lines += [f'### {label} (x{result["scale"]}{notes})', '',
                  '| family | data sets | SR/bicubic MAD | SR/nearest MAD | SR/bicubic RMSE | '
                  'SR/nearest RMSE | SR MAD mm | bicubic MAD mm | nearest MAD mm | '
                  'validity changed |',
                  '|---|---|---|---|---|---|---|---|---|---|']
        for family, entry in result['summary'].items():
            datasets = entry['datasets']
            mean = {m: np.mean([d[m]['mad'] for d in datasets.values()]) for m in METHODS}
            changed = sum(d['became_valid'] + d['became_invalid'] for d in datasets.values())
            lines.append(
                f'| {family} | {", ".join(datasets)} | {entry["sr_over_bicubic_mad"]:.3f} | '
                f'{entry["sr_over_nearest_mad"]:.3f} | {entry["sr_over_bicubic_rmse"]:.3f} | '
                f'{entry["sr_over_nearest_rmse"]:.3f} | {mean["sr"]:.2f} | '
                f'{mean["bicubic"]:.2f} | {mean["nearest"]:.2f} | {changed} |')
        near = [d.get('near_hole_ratio') for e in result['summary'].values()
                for d in e['datasets'].values() if d.get('near_hole_ratio') is not None]
        lines.append('')
        if near:
            lines.append(f'Error within 4 px of holes / same pixels without holes: '
                         f'{np.mean(near):.3f} (mean over data sets).')
        for name, values in result['stability'].items():
            lines.append(f'Frame-to-frame flicker on {name} (mean |e_t - e_t-1|, mm): ' +
                         ', '.join(f'{m} {v:.2f}' for m, v in values.items()))
        lines.append('')
    return '\n'.join(lines)


def save_figure(maps: Dict[str, Dict[str, np.ndarray]], path: Path) -> None:
    """Error maps (|method - GT|, mm) for the first image of every family."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    families = list(maps)
    fig, axes = plt.subplots(len(families), 5, figsize=(15, 2.6 * len(families)),
                             squeeze=False)
    for row, family in enumerate(families):
        item = maps[family]
        gt = item['gt']
        low, high = np.nanpercentile(gt, [1, 99])
        axes[row, 0].imshow(gt, cmap='turbo', vmin=low, vmax=high)
        axes[row, 0].set_title(f'{family}: GT')
        axes[row, 1].imshow(item['lr'], cmap='turbo', vmin=low, vmax=high)
        axes[row, 1].set_title('LR input')
        errs = {m: np.abs(item[m] - gt) * 1000.0 for m in ('nearest', 'bicubic', 'sr')}
        top = np.nanpercentile(np.concatenate([e[np.isfinite(e)] for e in errs.values()]), 99)
        for col, method in enumerate(('nearest', 'bicubic', 'sr'), start=2):
            axes[row, col].imshow(errs[method], cmap='magma', vmin=0, vmax=max(top, 1e-3))
            axes[row, col].set_title(f'|{method} - GT| (MAD {np.nanmean(errs[method]):.1f} mm)')
        for axis in axes[row]:
            axis.axis('off')
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=45)  # under 300 KB at 17 families (the repository's figure limit)
    plt.close(fig)


def run_suite(weights: Sequence[Path], out: Path, data_root: Path,
              labels: Optional[Sequence[str]] = None, quick: bool = False,
              device: str = 'cpu', progress: bool = True, split: str = 'test',
              scaling_tile: int = -1, ensemble_passes: int = 1,
              save_maps: bool = True, seed: int = 0,
              families: Sequence[str] = FAMILIES) -> Dict[str, Any]:
    """The CLI's work: every checkpoint at its own scale; writes JSON, Markdown and a figure.

    ``seed``: what draws each frame's phase, noise and holes (0 gives the reported numbers;
    another seed asks whether they hold on other draws of the same families).

    ``scaling_tile``: the resolver's (-1: each checkpoint's ``fit_tile``; 0: whole frames).
    ``ensemble_passes``: the resolver's self-ensemble (:mod:`dsr_ros.self_ensemble`).
    ``save_maps``: write the error-map figure (the first checkpoint's maps).
    ``families``: the synthetic families to run (the real frames always run).
    """
    frames, missing = load_frames(data_root, quick=quick, split=split)
    if not frames:
        raise ValueError(f'no sensor-suite data under {data_root}: {missing}')
    for name, reason in missing.items():
        LOGGER.warning('sensor suite: %s skipped: %s', name, reason)
    results: Dict[str, Any] = {}
    figure_maps = None
    for index, path in enumerate(weights):
        label = labels[index] if labels else Path(path).stem
        resolver = DepthSuperResolver.from_checkpoint(path, device=device,
                                                      scaling_tile=scaling_tile,
                                                      ensemble_passes=ensemble_passes)
        config = SuiteConfig(scale=resolver.scale, quick=quick, seed=seed,
                             families=tuple(families))
        result = evaluate_suite(resolver, frames, config, progress,
                                keep_maps=save_maps and index == 0)
        figure_maps = result.pop('maps', figure_maps)
        result['weights'] = os.fspath(path)
        result['fit_tile'] = resolver.fit_tile()
        result['ensemble_passes'] = resolver.ensemble_passes
        results[label] = result
    out.mkdir(parents=True, exist_ok=True)
    (out / 'sensor.json').write_text(json.dumps(
        {'results': results, 'split': split, 'seed': seed, 'missing': missing,
         'data_root': os.fspath(data_root)}, indent=1,
        default=float))
    (out / 'sensor.md').write_text(markdown_report(results))
    if figure_maps:
        save_figure(figure_maps, out / 'sensor_maps.png')
    return results
