"""The frames of a fine-tune: a robot's bags read once, and whole stretches of them held out.

Consecutive frames of a bag are near-copies of each other, so a held-out set drawn frame by
frame would score the net on frames it trained on. :func:`split_held_out` keeps whole
time-contiguous stretches out instead (the last ``val_fraction`` of each bag, or whole
``--val-bag`` bags) and leaves a ``gap`` of seconds before each stretch unused, and says which.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from training.data.bag_messages import BagError
from training.data.bag_pairing import BagStats
from training.data.bag_survey import TopicInfo, bag_digest, pick_topics, survey_bag
from training.data.rosbag_io import iter_bag_samples
from training.data.sample import RGBDSample
from training.finetune_pairs import attach_lr_frames, pick_pair_topics

__all__ = ['BagSource', 'Stretch', 'load_bag', 'split_held_out']

LOGGER = logging.getLogger('training.finetune')


@dataclass
class BagSource:
    """One bag as read: its topics, kept frames, pairing statistics and digest."""

    path: Path
    topics: Dict[str, Optional[str]]
    survey: Dict[str, TopicInfo]
    samples: List[RGBDSample]
    stats: BagStats
    every: int
    tolerance: float
    digest: Dict[str, Any] = field(default_factory=dict)
    #: real LR/HR pairing statistics (:mod:`training.finetune_pairs`); None: no LR topic
    pairs: Optional[Dict[str, Any]] = None

    def provenance(self) -> Dict[str, Any]:
        """What a checkpoint records of this bag (plain data)."""
        used = {role: self.survey[topic].as_dict() for role, topic in self.topics.items()
                if topic}
        return {'path': str(self.path.resolve()), 'digest': self.digest, 'topics': used,
                'pairing_tolerance_s': self.tolerance if self.topics.get('rgb') else None,
                'pairing': self.stats.summary(), 'every_nth_frame': self.every,
                'frames_kept': len(self.samples),
                **({'real_pairs': self.pairs} if self.pairs else {})}


@dataclass
class Stretch:
    """A held-out, time-contiguous run of frames of one bag."""

    bag: str
    start: float
    end: float
    frames: int
    gap_s: float
    origin: float

    def describe(self) -> str:
        """``bag: 12.30-15.00 s into the bag (27 frames; ...)``."""
        return (f'{self.bag}: {self.start - self.origin:.2f}-{self.end - self.origin:.2f} s '
                f'into the bag ({self.frames} frames; {self.gap_s:g} s before it unused)')

    def as_dict(self) -> Dict[str, Any]:
        """Plain data for provenance (header stamps, and seconds into the bag)."""
        return {'bag': self.bag, 'start_stamp': self.start, 'end_stamp': self.end,
                'start_s': round(self.start - self.origin, 3),
                'end_s': round(self.end - self.origin, 3), 'frames': self.frames,
                'gap_s': self.gap_s}


def load_bag(path: Path, depth: Optional[str] = None, info: Optional[str] = None,
             rgb: Optional[str] = None, tolerance: float = 0.02, max_frames: int = 600,
             want_rgb: bool = True, scale: Optional[int] = None,
             lr: Optional[str] = None) -> BagSource:
    """Survey a bag, pick its topics, and read at most ``max_frames`` evenly spaced frames.

    With ``scale``, a depth topic at 1/scale of the HR size (or ``lr``) gives real LR inputs:
    only the HR frames paired with one are kept (:mod:`training.finetune_pairs`).
    """
    path = Path(path)
    survey = survey_bag(path)
    lr_topic = None
    if scale:
        depth, lr_topic = pick_pair_topics(path, survey, scale, depth, lr)
    topics = pick_topics(path, survey, depth, info, rgb, want_rgb)
    if lr_topic:
        sibling = lr_topic.rsplit('/', 1)[0] + '/camera_info'
        topics.update(lr=lr_topic, lr_info=sibling if sibling in survey else None)
    count = survey[topics['depth']].count
    every = max(1, math.ceil(count / max(1, max_frames)))
    stats = BagStats()
    samples = [sample for index, sample in enumerate(iter_bag_samples(
        path, topics['depth'], topics['rgb'], topics['info'], tolerance, stats))
        if index % every == 0]
    if not samples:
        raise BagError(path, f'no usable frame on {topics["depth"]}: {stats.summary()}')
    samples.sort(key=lambda s: s.stamp if s.stamp is not None else 0.0)
    pairs = None
    if lr_topic:
        samples, pairs = attach_lr_frames(path, samples, lr_topic, int(scale), tolerance)
    return BagSource(path, topics, survey, samples, stats, every, tolerance, bag_digest(path),
                     pairs)


def split_held_out(sources: Sequence[BagSource], val_sources: Sequence[BagSource] = (),
                   val_fraction: float = 0.2, gap_s: float = 1.0
                   ) -> Tuple[List[RGBDSample], List[RGBDSample], List[Stretch]]:
    """Training frames, held-out frames and the held-out stretches.

    With ``val_sources`` every frame of those bags is held out and every frame of ``sources``
    trains. Otherwise the last ``val_fraction`` of each bag's frames is held out and training
    frames stamped within ``gap_s`` seconds before that stretch are dropped.
    """
    train: List[RGBDSample] = []
    val: List[RGBDSample] = []
    stretches: List[Stretch] = []
    if val_sources:
        for source in sources:
            train.extend(source.samples)
        for source in val_sources:
            val.extend(source.samples)
            stretches.append(Stretch(str(source.path), _stamp(source.samples[0]),
                                     _stamp(source.samples[-1]), len(source.samples), 0.0,
                                     _stamp(source.samples[0])))
        return train, val, stretches
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'--val-fraction must be between 0 and 1, got {val_fraction}')
    for source in sources:
        frames = source.samples
        held = max(1, round(val_fraction * len(frames)))
        start = _stamp(frames[-held])
        kept = [s for s in frames[:-held] if _stamp(s) < start - gap_s]
        if not kept:
            raise ValueError(f'{source.path}: {len(frames)} frames over '
                             f'{_stamp(frames[-1]) - _stamp(frames[0]):.1f} s leave no training '
                             f'frame once the last {held} are held out with a {gap_s:g} s gap; '
                             'record a longer bag, lower --val-gap, or pass --val-bag')
        train.extend(kept)
        val.extend(frames[-held:])
        stretches.append(Stretch(str(source.path), start, _stamp(frames[-1]), held, gap_s,
                                 _stamp(frames[0])))
    return train, val, stretches


def _stamp(sample: RGBDSample) -> float:
    return float(sample.stamp) if sample.stamp is not None else 0.0
