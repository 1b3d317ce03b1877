"""Write a small rosbag2 from a folder of RGB-D frames, to test the node and the bag reader.

``python -m training.make_bag --input FOLDER --out BAG [--storage sqlite3|mcap] [--rate HZ]
[--compressed-rgb] [--depth-topic T] [--rgb-topic T] [--info-topic T]``

The folder has the layout of the ``folder`` reader
(:func:`training.data.readers.folder.list_folder`): ``depth/`` with 16-bit millimetre PNGs
(written as ``16UC1``) or float metre .npy/.tiff (written as ``32FC1``, NaN where invalid),
optional ``rgb/`` or ``color/`` matched by file stem, and optional intrinsics JSON; the Open3D
RGB-D test data (``color/ + depth/ + camera_primesense.json``) is such a folder. Topics
(default names; ``--depth-topic`` etc. write your driver's): ``/depth/image_raw``,
``/color/image_raw`` (``rgb8``) or ``/color/image_raw/compressed`` (JPEG), and
``/depth/camera_info``, all sharing one header stamp per frame, ``1 / rate`` seconds apart.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from training.data.readers import DataError, load_samples
from training.data.bag_writer import DEPTH_TOPIC, INFO_TOPIC, RGB_TOPIC, BagFrame, write_bag
from training.data.sample import RGBDSample

__all__ = ['frame_from_sample', 'main']


def frame_from_sample(sample: RGBDSample) -> BagFrame:
    """The raw ROS form of a sample: uint16 mm (0 invalid) or float32 m (NaN invalid)."""
    if sample.unit == 'millimetre':
        depth = np.where(sample.valid, np.rint(sample.depth), 0)
        depth = np.clip(depth, 0, 65535).astype(np.uint16)
    elif sample.unit == 'metre':
        depth = np.where(sample.valid, sample.depth, np.nan).astype(np.float32)
    else:
        raise ValueError(f'{sample.name}: unit {sample.unit!r} has no ROS depth encoding '
                         '(millimetre -> 16UC1, metre -> 32FC1)')
    return BagFrame(depth=depth, rgb=sample.rgb, intrinsics=sample.intrinsics)


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description='Write a rosbag2 (depth, RGB, camera_info) from a folder of RGB-D frames.')
    parser.add_argument('--input', required=True, type=Path, help='folder of RGB-D frames')
    parser.add_argument('--out', required=True, type=Path, help='bag folder to create')
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    parser.add_argument('--rate', type=float, default=10.0, help='frame rate in Hz')
    parser.add_argument('--compressed-rgb', action='store_true',
                        help='write RGB as JPEG sensor_msgs/CompressedImage')
    parser.add_argument('--max-frames', type=int, default=None)
    parser.add_argument('--depth-topic', default=DEPTH_TOPIC, help='depth image topic')
    parser.add_argument('--rgb-topic', default=RGB_TOPIC,
                        help='colour topic (/compressed is appended with --compressed-rgb)')
    parser.add_argument('--info-topic', default=INFO_TOPIC, help='depth camera_info topic')
    parser.add_argument('--png-units-per-metre', type=float, default=1000.0,
                        help='depth PNG scale (1000 = millimetres; TUM uses 5000)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    try:
        samples = load_samples({'type': 'folder', 'root': str(args.input),
                                'png_units_per_metre': args.png_units_per_metre,
                                'max_samples': args.max_frames})
        frames = [frame_from_sample(s) for s in samples]
        counts = write_bag(args.out, frames, storage=args.storage, rate=args.rate,
                           compressed_rgb=args.compressed_rgb, depth_topic=args.depth_topic,
                           rgb_topic=args.rgb_topic, info_topic=args.info_topic)
    except (DataError, ValueError, FileExistsError) as error:
        print(f'make_bag: {error}', file=sys.stderr)
        return 2
    encoding = '16UC1' if frames[0].depth.dtype == np.uint16 else '32FC1'
    print(f'wrote {args.out} ({args.storage}): {len(frames)} frames at {args.rate:g} Hz, '
          f'depth {encoding}')
    for topic, count in counts.items():
        print(f'  {topic}: {count} messages')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
