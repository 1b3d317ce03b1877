"""Print what a rosbag2 holds and how many depth(+RGB) frames the reader would pair.

``python -m training.bag_info BAG --depth-topic /depth/image_raw [--rgb-topic ...]
[--camera-info-topic ...] [--tolerance 0.02]``

Use it before training on or replaying a bag: it names the topics with their types and counts,
and the pairing statistics: usable frames (paired and decodable), unmatched depth and RGB, and
per topic the messages that cannot be decoded (which training skips), with the first reason.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from training.data.rosbag_io import BagError, BagStats, bag_topics, iter_bag_samples

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
        topics = bag_topics(args.bag)
        print(f'{args.bag}:')
        width = max((len(t) for t in topics), default=5)
        for topic, (msgtype, count) in sorted(topics.items()):
            print(f'  {topic:<{width}}  {msgtype:<34} {count:>7} msgs')
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
