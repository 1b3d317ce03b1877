"""Print what a rosbag2 holds and how many depth(+RGB) frames the reader would pair.

``python -m training.bag_info BAG --depth-topic /depth/image_raw [--rgb-topic ...]
[--camera-info-topic ...] [--tolerance 0.02]``

Use it before training on or replaying a bag: it names the topics with their types, counts,
rates and (image topics) encoding and size, the topics ``training.finetune`` would pick, and
the pairing statistics: usable frames (paired and decodable), unmatched depth and RGB, and
per topic the messages that cannot be decoded (which training skips), with the first reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from training.data.bag_messages import BagError
from training.data.bag_pairing import BagStats
from training.data.bag_survey import pick_topics, survey_bag
from training.data.rosbag_io import iter_bag_samples

__all__ = ['main']


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; returns the exit status (2 for an unreadable bag or missing topic)."""
    parser = argparse.ArgumentParser(description='Topics and usable RGB-D pairs of a rosbag2.')
    parser.add_argument('bag', type=Path)
    parser.add_argument('--depth-topic', default=None,
                        help='depth image topic; without it only the topics are listed')
    parser.add_argument('--rgb-topic', default=None)
    parser.add_argument('--camera-info-topic', default=None)
    parser.add_argument('--tolerance', type=float, default=0.02,
                        help='largest depth/RGB stamp difference in seconds')
    args = parser.parse_args(argv)
    try:
        topics = survey_bag(args.bag)
        print(f'{args.bag}:')
        width = max((len(t) for t in topics), default=5)
        for topic, info in sorted(topics.items()):
            size = f'{info.width}x{info.height}' if info.width else '-'
            print(f'  {topic:<{width}}  {info.msgtype:<34} {info.encoding or "-":<9} '
                  f'{size:>9} {info.rate_hz:7.2f} Hz {info.count:>7} msgs')
        if not args.depth_topic:
            try:
                picked = pick_topics(args.bag, topics)
                print('training.finetune would use: ' + ', '.join(
                    f'{role} {topic}' for role, topic in picked.items() if topic))
            except BagError as error:
                print(f'training.finetune needs a choice: {error.reason}')
        if args.depth_topic:
            stats = BagStats()
            for _ in iter_bag_samples(args.bag, args.depth_topic, args.rgb_topic,
                                      args.camera_info_topic, args.tolerance, stats,
                                      decode=False):
                pass
            print(f'pairs (tolerance {args.tolerance * 1e3:g} ms): {stats.summary()}')
            for topic, reason in sorted(stats.first_error.items()):
                print(f'  undecodable on {topic}: {stats.undecodable[topic]}, first: {reason}')
    except BagError as error:
        print(f'bag_info: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
