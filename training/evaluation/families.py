"""The degradation families of the real-sensor suite: THE one list of them, and how each is made.

Every family name, every group of families (camera, native, phase known, noisy, with punched
holes, what the balanced score averages) and the LR frame each family makes from a metric
ground-truth frame live here; the suite, the phase study, the ranking and the checkpoint tools
import them. Fixed parameters, drawn per image from a seeded generator (:func:`family_rng`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import cv2
import numpy as np

from dsr_ros.baselines import filled_frame
from dsr_ros.depth_io import valid_mask
from dsr_ros.sampling_geometry import SamplingGeometry
from training.data import sensor_degradation as sd
from training.data import sensor_noise as sn

__all__ = ['CAMERA_FAMILIES', 'FAMILIES', 'FAMILY_SETS', 'HOLE_FAMILIES', 'NATIVE_FAMILIES',
           'NOISY_FAMILIES', 'PHASE_KNOWN_FAMILIES', 'PHASE_UNKNOWN_FAMILIES',
           'POINT_FAMILIES', 'STRUCTURED_LIGHT_FAMILIES', 'decimate_real', 'degrade_frame',
           'family_rng', 'geometry_of_family', 'runnable_families']

#: What a native low-resolution camera produces: a footprint centred on each pixel (area
#: average, or a Gaussian PSF over the block), with ToF noise, structured-light noise and
#: disparity steps, flying pixels, holes, quantisation. The resolver runs them as the node does
#: with a native camera_info (geometry ``native``).
NATIVE_FAMILIES = ('area', 'native_psf', 'area_tof', 'native_sl', 'native_flying',
                   'native_holes', 'native_quant')
#: Decimated streams whose phase the node knows (camera_info binning, or sampling_phase): the
#: resolver is told the phase (geometry ``decimated``); only for checkpoints with a measured
#: point alignment (``python -m training.checkpoints calibrate-phase``). ``real_phase_known``:
#: the real frames.
PHASE_KNOWN_FAMILIES = ('point_phase_known', 'point_sl_phase_known', 'point_holes_phase_known',
                        'real_phase_known')
#: The families a camera produces: what the node's default models are chosen on.
CAMERA_FAMILIES = NATIVE_FAMILIES + PHASE_KNOWN_FAMILIES
#: Random, unknown phase (no camera makes one: reported beside its phase-blind floor,
#: ``python -m training.evaluation phase-study``) and the research degradations.
FAMILIES = ('area', 'point', 'bilinear', 'cubic', 'aa_cubic', 'gaussian', 'area_tof',
            'point_sl', 'point_holes', 'point_phase_known', 'native_psf', 'native_sl',
            'native_flying', 'native_holes', 'native_quant', 'point_sl_phase_known',
            'point_holes_phase_known')
#: The families reported with the phase unknown (nine synthetic ones and the real frames):
#: what the balanced score of :mod:`training.evaluation.ranking` averages over.
PHASE_UNKNOWN_FAMILIES = FAMILIES[:9] + ('real',)
#: ``--families``: every family, or the camera families and, beside its phase-blind floor, the
#: random phase.
FAMILY_SETS = {'all': FAMILIES, 'camera': CAMERA_FAMILIES + ('point',)}
#: The synthetic noisy families with the phase unknown (the ranking's 'noisy' column); Ferstl's
#: noisy inputs are a family of their own data set.
NOISY_FAMILIES = ('area_tof', 'point_sl')
#: Point sampling at a random, unknown phase.
POINT_FAMILIES = ('point', 'point_sl', 'point_holes')
#: Families with punched holes (edge dropouts and blobs): their error next to the holes is
#: compared with the same frame without them.
HOLE_FAMILIES = ('point_holes', 'native_holes', 'point_holes_phase_known')
#: Families with structured-light noise and 1/8 px disparity steps.
STRUCTURED_LIGHT_FAMILIES = ('point_sl', 'native_sl', 'point_sl_phase_known')


def family_rng(seed: int, family: str, frame_name: str) -> np.random.Generator:
    """The generator of one frame x family: the same draws for a seed, whatever else runs."""
    return np.random.default_rng([seed, FAMILIES.index(family) if family in FAMILIES else 99,
                                  len(frame_name), sum(map(ord, frame_name))])


def degrade_frame(gt: np.ndarray, family: str, scale: int, rng: np.random.Generator,
                  with_clean: bool = False, phase: Optional[Tuple[int, int]] = None) -> Any:
    """The LR frame (metres, NaN = hole) of a suite family; GT holes stay holes.

    ``with_clean`` also returns the frame before the family's own holes were punched (the
    hole-free reference of :func:`training.evaluation.scores.near_hole_ratio`). ``phase``: the
    point / gaussian sampling phase (drawn from ``rng`` when None).
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
        lr = sn.quantize(sn.add_tof_noise(lr, rng, 0.005), 'mm')
    elif family in STRUCTURED_LIGHT_FAMILIES:
        lr = sn.quantize(sn.add_structured_light_noise(lr, rng, 40.0, 0.05, 8), 'mm')
    elif family == 'native_flying':
        lr = sn.flying_pixels(lr, rng, 0.5, 0.05)[0]
    elif family == 'native_quant':
        lr = sn.quantize(lr, '8bit', lr_valid)
    clean = lr.astype(np.float32)
    clean[~lr_valid] = np.nan
    if family in HOLE_FAMILIES:
        lr_valid = lr_valid & ~sn.edge_dropouts(lr, rng, 0.5) & ~sn.blob_holes(
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


def runnable_families(families: Sequence[str], phase_known: bool) -> Tuple[str, ...]:
    """``families`` without the phase-known ones when the model has no point alignment."""
    return tuple(f for f in families if f not in PHASE_KNOWN_FAMILIES or phase_known)
