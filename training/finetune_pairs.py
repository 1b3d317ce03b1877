"""Real LR/HR pairs in a bag: a second depth topic of the same scene at 1/scale the size.

A robot may record its depth camera at two resolutions (``/camera/depth/image_raw`` 640x480 and
``/camera/depth_lr/image_raw`` 160x120). Those pairs are better training data than the sensor
model's guess at the degradation: the LR frame is exactly what the node will be given, the HR
frame what it should give back. :func:`pick_pair_topics` finds the pair of topics (the LR
topic's size times the scale is the HR topic's), :func:`attach_lr_frames` pairs each kept HR
frame with the LR frame of (nearly) the same stamp and stores it in ``sample.lr_inputs[scale]``
(the field evaluation already reads given LR inputs from); HR frames without a partner are
dropped, so the whole fine-tune trains and scores on real pairs.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from training.data.bag_messages import BagError
from training.data.bag_survey import TopicInfo, describe_topic
from training.data.patches import METRIC_UNITS
from training.data.rosbag_io import iter_bag_samples, norm_topic
from training.data.sample import RGBDSample

__all__ = ['attach_lr_frames', 'pick_pair_topics']


def _is_lr_of(lr: TopicInfo, hr: TopicInfo, scale: int) -> bool:
    return bool(lr.width and hr.width and lr.topic != hr.topic
                and (lr.width * scale, lr.height * scale) == (hr.width, hr.height))


def pick_pair_topics(path, survey: Dict[str, TopicInfo], scale: int,
                     depth: Optional[str] = None, lr: Optional[str] = None
                     ) -> Tuple[Optional[str], Optional[str]]:
    """``(depth topic or None, LR topic or None)``: the HR topic to read (None: leave it to
    :func:`~training.data.bag_survey.pick_topics`) and its real-LR sibling.

    ``lr`` names the LR topic (``none``: the sensor model on the HR topic, whatever the bag
    holds); otherwise the LR topic is the only depth topic whose size times ``scale`` is the HR
    topic's, and several candidates are listed, never guessed between.
    """
    depths = [t for t in survey.values() if t.is_depth]
    hr_info = survey.get(norm_topic(depth)) if depth else None
    if lr is not None and lr.lower() == 'none':
        pairs = [h for h in depths for t in depths if _is_lr_of(t, h, scale)]
        return (pairs[0].topic if hr_info is None and len(pairs) == 1 else depth), None
    if lr is not None:
        lr_info = survey.get(norm_topic(lr))
        if lr_info is None or not lr_info.is_depth:
            raise BagError(path, f'--lr-topic {lr!r} is not a depth image topic of the bag; '
                                 f'depth topics: {_listing(depths)}')
        if hr_info is None:
            partners = [t for t in depths if _is_lr_of(lr_info, t, scale)]
            hr_info = partners[0] if len(partners) == 1 else None
        if hr_info is not None and not _is_lr_of(lr_info, hr_info, scale):
            raise BagError(path, f'--lr-topic {lr_info.topic} is {lr_info.width}x'
                                 f'{lr_info.height}, not the {hr_info.topic} size '
                                 f'{hr_info.width}x{hr_info.height} divided by {scale}')
        return (hr_info.topic if hr_info else depth), lr_info.topic
    if hr_info is not None:
        candidates = [(hr_info, t) for t in depths if _is_lr_of(t, hr_info, scale)]
    else:
        candidates = [(h, t) for h in depths for t in depths if _is_lr_of(t, h, scale)]
    if len(candidates) > 1:
        raise BagError(path, f'{len(candidates)} depth topics could be the real LR input at '
                             f'x{scale}; pick one with --lr-topic (or --lr-topic none): '
                             + _listing([t for _, t in candidates]))
    if not candidates:
        return depth, None
    hr_info, lr_info = candidates[0]
    return hr_info.topic, lr_info.topic


def attach_lr_frames(path, samples: List[RGBDSample], lr_topic: str, scale: int,
                     tolerance: float) -> Tuple[List[RGBDSample], Dict[str, float]]:
    """The HR ``samples`` that have an LR frame within ``tolerance`` seconds (nearest stamp,
    each LR frame used once), with it in ``lr_inputs[scale]`` in the HR frame's unit (holes 0),
    and the pairing statistics."""
    frames = [s for s in iter_bag_samples(path, lr_topic) if s.stamp is not None]
    if not frames:
        raise BagError(path, f'no decodable frame on the LR topic {lr_topic}')
    stamps = np.array([f.stamp for f in frames])
    used = np.zeros(len(frames), bool)
    paired: List[RGBDSample] = []
    largest = 0.0
    for sample in samples:
        if sample.stamp is None:
            continue
        gaps = np.where(used, np.inf, np.abs(stamps - sample.stamp))
        best = int(np.argmin(gaps))
        if gaps[best] > tolerance:
            continue
        lr = frames[best]
        want = (sample.depth.shape[0] // scale, sample.depth.shape[1] // scale)
        if lr.depth.shape != want or sample.depth.shape != (want[0] * scale, want[1] * scale):
            raise BagError(path, f'{lr_topic} frame at {lr.stamp:.6f} s is '
                                 f'{lr.depth.shape[1]}x{lr.depth.shape[0]}, not the HR frame\'s '
                                 f'{sample.depth.shape[1]}x{sample.depth.shape[0]} / {scale}')
        if sample.unit not in METRIC_UNITS or lr.unit not in METRIC_UNITS:
            raise BagError(path, f'real pairs need metric depth, got {sample.unit} and {lr.unit}')
        factor = METRIC_UNITS[lr.unit] / METRIC_UNITS[sample.unit]
        sample.lr_inputs[scale] = np.where(lr.valid, lr.depth * factor, 0.0).astype(np.float32)
        used[best] = True
        largest = max(largest, float(gaps[best]))
        paired.append(sample)
    if not paired:
        raise BagError(path, f'no frame of {lr_topic} lies within {tolerance * 1e3:g} ms of a '
                             'kept HR frame; raise --tolerance or pass --lr-topic none')
    return paired, {'pairs': len(paired), 'hr_frames_unpaired': len(samples) - len(paired),
                    'lr_frames': len(frames), 'largest_offset_ms': round(largest * 1e3, 3)}


def _listing(infos: List[TopicInfo]) -> str:
    return '; '.join(describe_topic(t) for t in infos) or 'none'
