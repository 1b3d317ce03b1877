"""Real depth through the node as a camera pipeline publishes it: quality over DDS, one table.

``python -m benchmarks.real_camera --out results/real_camera`` takes the real PrimeSense frames
(and the single TUM and SUN3D frames) of ``../shared/data/open3d_rgbd_testdata``, decimates each
the way ``image_proc``'s crop_decimate does (every 4th pixel from the crop's corner) and publishes
it with the camera_info that node publishes (calibration 640x480 kept, ``binning 4``, the crop
as ``roi``), over real DDS, to ``dsr_node`` started with the shipped parameter file and **no
parameter set** (``--model`` picks a rung by hand; the default is what ``model: auto`` takes on
this machine). Frames go one at a time (lockstep: each output is awaited), so the table measures
quality, not speed. The full-resolution frame is the truth; nearest (each LR pixel as an
``s x s`` block) and masked OpenCV bicubic are the baselines; every output must carry its
camera_info, checked against ``image_geometry``'s reading where the wheel is installed.

``--figure PATH`` writes zoomed crops of nearest / bicubic / SR / truth next to the numbers
(``make demo-real``; README's first figure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from dsr_ros.baselines import upsample_bicubic_masked, upsample_nearest
from dsr_ros.ros.demo import stop_node_process
from dsr_ros.depth_io import to_metres, valid_mask
from dsr_ros.depth_metrics import depth_errors_mm
from dsr_ros.ros.ros_args import default_params_file, node_command

DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'open3d_rgbd_testdata'
SCALE = 4
#: image_proc crop_decimate conventions: name -> (x_offset, y_offset, width, height) of the crop
#: in the 640x480 calibration (all zeros: no crop), decimation = binning = SCALE.
CONVENTIONS = {'decimate': (0, 0, 0, 0), 'crop_decimate': (24, 16, 576, 448)}
FIGURE_CROP = (100, 260, 140, 180)  # rows, cols of the SR frame's zoom (top, left, h, w)
#: Seconds without an answer after which a frame is sent again (lockstep).
RESEND_S = 10.0
#: Frame-name prefixes reported apart (the issue's target is on the PrimeSense sequence).
SOURCES = ('primesense', 'tum', 'sun3d')


@dataclass
class Case:
    """One published frame: the LR image, its camera_info fields and the truth under it."""

    name: str
    convention: str
    lr_mm: np.ndarray
    truth_m: np.ndarray
    roi: Tuple[int, int, int, int]  # x, y, height, width (all zero: none)


def load_frames(root: Path) -> List[Tuple[str, np.ndarray]]:
    """``(name, millimetres uint16)`` of the PrimeSense sequence, TUM and SUN3D frames."""
    frames = [(f'primesense_{p.stem}', cv2.imread(str(p), cv2.IMREAD_UNCHANGED))
              for p in sorted((root / 'depth').glob('*.png'))]
    if not frames:
        raise FileNotFoundError(f'no depth/*.png under {root} (../shared/data is needed)')
    tum = cv2.imread(str(root / 'other_formats' / 'TUM_depth.png'), cv2.IMREAD_UNCHANGED)
    if tum is not None:
        frames.append(('tum', np.rint(tum / 5.0).astype(np.uint16)))
    sun = cv2.imread(str(root / 'other_formats' / 'SUN_depth.png'), cv2.IMREAD_UNCHANGED)
    if sun is not None:
        mm = ((sun >> 3) | (sun << 13)) & 0xFFFF
        frames.append(('sun3d', np.where(mm < 10000, mm, 0).astype(np.uint16)))
    return frames


def decimate_as_image_proc(frame_mm: np.ndarray, convention: str, name: str) -> Case:
    """What image_proc's crop_decimate (nearest) publishes: every SCALE-th pixel from the
    crop's top-left corner, and the truth those pixels' output blocks cover."""
    x, y, width, height = CONVENTIONS[convention]
    width = width or frame_mm.shape[1]
    height = height or frame_mm.shape[0]
    crop = frame_mm[y:y + height, x:x + width]
    lr = np.ascontiguousarray(crop[::SCALE, ::SCALE])
    truth = to_metres(crop[:lr.shape[0] * SCALE, :lr.shape[1] * SCALE])
    roi = (0, 0, 0, 0) if CONVENTIONS[convention] == (0, 0, 0, 0) else (x, y, height, width)
    return Case(name, convention, lr, truth, roi)


def baselines(lr_mm: np.ndarray) -> Dict[str, np.ndarray]:
    """Nearest (each LR pixel as an s x s block) and masked bicubic of an LR frame, in metres
    (holes stay holes): the suite's baselines (:mod:`dsr_ros.baselines`)."""
    lr = to_metres(lr_mm)
    return {'nearest': upsample_nearest(lr, SCALE), 'bicubic': upsample_bicubic_masked(lr, SCALE)}


def _camera_info(header: Any, case: Case) -> Any:
    from sensor_msgs.msg import CameraInfo, RegionOfInterest
    info = CameraInfo(header=header, width=640, height=480, distortion_model='plumb_bob')
    info.d = [0.0] * 5
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    info.r = np.eye(3).ravel().tolist()
    info.p = [525.0, 0.0, 319.5, 0.0, 0.0, 525.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.binning_x = info.binning_y = SCALE
    x, y, height, width = case.roi
    info.roi = RegionOfInterest(x_offset=x, y_offset=y, height=height, width=width)
    return info


def run_node(cases: Sequence[Case], parameters: Dict[str, Any], log_path: Path,
             timeout: float = 90.0) -> Dict[int, Tuple[Any, Any]]:
    """Publish each case (lockstep) to a fresh dsr_node; ``{index: (image, camera_info)}``."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from dsr_ros.ros.messages import depth_to_msg
    namespace = f'real_camera_{os.getpid()}'
    camera = f'/{namespace}/camera'
    argv = node_command(namespace=namespace, params_file=default_params_file(),
                        parameters=parameters,
                        remaps={'depth/image_raw': f'{camera}/depth/image_raw',
                                'depth/camera_info': f'{camera}/depth/camera_info'})
    images: Dict[int, Any] = {}
    infos: Dict[int, Any] = {}
    rclpy.init()
    node = rclpy.create_node(f'real_camera_{os.getpid()}')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, f'{camera}/depth/image_raw', reliable)
    info_pub = node.create_publisher(CameraInfo, f'{camera}/depth/camera_info', reliable)
    out_sub = node.create_subscription(
        Image, f'/{namespace}/depth_sr/image_raw',
        lambda msg: images.__setitem__(msg.header.stamp.sec - 1000, msg), reliable)
    node.create_subscription(CameraInfo, f'/{namespace}/depth_sr/camera_info',
                             lambda msg: infos.__setitem__(msg.header.stamp.sec - 1000, msg),
                             reliable)
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not (image_pub.get_subscription_count() and info_pub.get_subscription_count()
                       and out_sub.get_publisher_count()):
                executor.spin_once(timeout_sec=0.05)
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'dsr_node did not come up; its log:\n'
                                       f'{log_path.read_text(errors="replace")[-2000:]}')
            for index, case in enumerate(cases):
                header = Header(frame_id='camera_depth_optical_frame')
                header.stamp.sec = 1000 + index
                due = time.monotonic() + timeout
                while not (index in images and index in infos) and time.monotonic() < due:
                    # (Re-)send until answered: a subscription re-created while the node
                    # matches its publishers' reliability can miss one message.
                    info_pub.publish(_camera_info(header, case))
                    image_pub.publish(depth_to_msg(case.lr_mm, header))
                    resend_at = time.monotonic() + RESEND_S
                    while not (index in images and index in infos) and (
                            time.monotonic() < resend_at):
                        executor.spin_once(timeout_sec=0.05)
        finally:
            stop_node_process(process, timeout=15.0)
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    return {i: (images[i], infos.get(i)) for i in images}


def _ray_check(case: Case, info: Any) -> bool:
    """Output pixel 4u (decimated, phase 0) and calibration pixel 4u + roi give one ray."""
    try:
        from image_geometry import PinholeCameraModel
    except ImportError:
        return True  # nothing to check with; the info's presence is still counted
    model, full = PinholeCameraModel(), PinholeCameraModel()
    model.fromCameraInfo(info)
    from sensor_msgs.msg import CameraInfo
    plain = CameraInfo(width=640, height=480, k=info.k, p=info.p, r=info.r, d=info.d,
                       distortion_model=info.distortion_model)
    full.fromCameraInfo(plain)
    x, y = case.roi[:2]
    return all(np.allclose(model.projectPixelTo3dRay((u, v)),
                           full.projectPixelTo3dRay((u + x, v + y)), atol=1e-9)
               for u, v in ((0, 0), (40, 28), (100, 60)))


def score(cases: Sequence[Case], outputs: Dict[int, Tuple[Any, Any]]) -> Dict[str, Any]:
    """Pooled MAD / RMSE (mm) of SR, nearest and bicubic over the pixels all three cover:
    over every frame (``summary``) and per source (``by_source``); each frame is decoded and
    scored once."""
    scored = [_score_case(case, outputs.get(index)) for index, case in enumerate(cases)]
    by_source = {source: _summary([item for case, item in zip(cases, scored)
                                   if case.name.startswith(source)])
                 for source in SOURCES if any(c.name.startswith(source) for c in cases)}
    return {'summary': _summary(scored), 'cases': [item['row'] for item in scored],
            'frames': len(cases), 'by_source': by_source}


def _score_case(case: Case, output: Optional[Tuple[Any, Any]]) -> Dict[str, Any]:
    """One frame's row, and per method the (estimate, truth, mask) its errors pool over."""
    row: Dict[str, Any] = {'frame': case.name, 'convention': case.convention,
                           'out': output is not None}
    if output is None:
        return {'row': row, 'methods': {}}
    from dsr_ros.ros.messages import depth_from_msg
    image, info = output
    methods = {'sr': to_metres(depth_from_msg(image)), **baselines(case.lr_mm)}
    mask = valid_mask(case.truth_m)
    for estimate in methods.values():
        mask &= valid_mask(estimate)
    row.update(camera_info=info is not None,
               rays_match=info is not None and _ray_check(case, info))
    for name, estimate in methods.items():
        row[f'{name}_mad_mm'] = depth_errors_mm([estimate], [case.truth_m], [mask]).mad_mm
    return {'row': row, 'methods': {name: (estimate, case.truth_m, mask)
                                    for name, estimate in methods.items()}}


def _summary(scored: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Errors pooled over the frames that came out (``depth_errors_mm``), their ratios, and
    the counts of frames, camera_infos and matching rays."""
    summary: Dict[str, Any] = {}
    out = [item['methods'] for item in scored if item['methods']]
    if out:
        for name in ('sr', 'nearest', 'bicubic'):
            estimates, truths, masks = zip(*(methods[name] for methods in out))
            metrics = depth_errors_mm(estimates, truths, masks)
            summary[f'{name}_mad_mm'], summary[f'{name}_rmse_mm'] = metrics.mad_mm, metrics.rmse_mm
        summary['sr_over_nearest_mad'] = summary['sr_mad_mm'] / summary['nearest_mad_mm']
        summary['sr_over_bicubic_rmse'] = summary['sr_rmse_mm'] / summary['bicubic_rmse_mm']
    rows = [item['row'] for item in scored]
    summary['frames_out'] = sum(r['out'] for r in rows)
    summary['camera_info_out'] = sum(r.get('camera_info', False) for r in rows)
    summary['rays_match'] = sum(r.get('rays_match', False) for r in rows)
    return summary


def markdown(results: Dict[str, Dict[str, Any]]) -> str:
    lines = ['| node setting | frames of | frames out | camera_info out | SR / nearest MAD | '
             'SR / bicubic RMSE | SR MAD mm | nearest MAD mm | bicubic MAD mm |',
             '|---|---|---|---|---|---|---|---|---|']
    for label, result in results.items():
        rows = [('all', result['summary'])] + list(result.get('by_source', {}).items())
        for source, s in rows:
            lines.append(_markdown_row(label, source, s, result['frames']))
    return '\n'.join(lines) + '\n'


def _markdown_row(label: str, source: str, s: Dict[str, Any], frames: int) -> str:
    """One table row; ``frames`` counts every frame of the run (the 'all' row's denominator)."""
    nan = float('nan')
    return (f'| {label} | {source} | {s["frames_out"]} | {s["camera_info_out"]} | '
            f'{s.get("sr_over_nearest_mad", nan):.3f} | {s.get("sr_over_bicubic_rmse", nan):.3f}'
            f' | {s.get("sr_mad_mm", nan):.2f} | {s.get("nearest_mad_mm", nan):.2f} | '
            f'{s.get("bicubic_mad_mm", nan):.2f} |')


def figure(path: Path, case: Case, sr_msg: Any) -> None:
    """Zoomed crops of nearest / bicubic / SR / truth of one frame, under 300 KB."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from dsr_ros.ros.messages import depth_from_msg
    sr = depth_from_msg(sr_msg).astype(np.float32) / 1000.0
    sr[sr == 0] = np.nan
    top, left, height, width = FIGURE_CROP
    window = (slice(top, top + height), slice(left, left + width))
    upsampled = baselines(case.lr_mm)
    panels = [('nearest', upsampled['nearest']), ('bicubic', upsampled['bicubic']),
              ('SR (dsr_node)', sr), ('truth (640x480 frame)', case.truth_m)]
    finite = case.truth_m[window][np.isfinite(case.truth_m[window])]
    low, high = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.9))
    for axis, (title, image) in zip(axes, panels):
        axis.imshow(np.ma.masked_invalid(image[window]), cmap='turbo', vmin=low, vmax=high,
                    interpolation='nearest')
        axis.set_title(title)
        axis.set_axis_off()
    fig.suptitle(f'{case.name}: 160x120 as image_proc decimates it (binning 4) -> x4; zoom of '
                 f'rows {top}-{top + height}, cols {left}-{left + width}', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m benchmarks.real_camera',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=Path, default=DATA)
    parser.add_argument('--out', type=Path, default=Path('out/real_camera'))
    parser.add_argument('--model', action='append', default=None,
                        help='also run with this model rung set (tiny / lite / paper); '
                             'repeatable. The node with no parameter set always runs.')
    parser.add_argument('--weights', action='append', default=None, type=Path,
                        help='also run with this checkpoint as weights_path (a candidate); '
                             'repeatable')
    parser.add_argument('--conventions', nargs='+', default=list(CONVENTIONS),
                        choices=list(CONVENTIONS))
    parser.add_argument('--figure', type=Path, default=None,
                        help='write the zoomed-crop figure here')
    args = parser.parse_args(argv)
    try:
        frames = load_frames(args.data)
    except FileNotFoundError as error:
        print(f'real_camera: {error}', file=sys.stderr)
        return 2
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    cases = [decimate_as_image_proc(mm, convention, name)
             for convention in args.conventions for name, mm in frames]
    args.out.mkdir(parents=True, exist_ok=True)
    runs = ([('no parameter set', {})] + [(f'model: {m}', {'model': m}) for m in args.model or []]
            + [(f'weights: {w.name}', {'weights_path': str(w.resolve())})
               for w in args.weights or []])
    results: Dict[str, Dict[str, Any]] = {}
    first_output = None
    for label, parameters in runs:
        log = args.out / f'node_{label.replace(" ", "_").replace(":", "").replace("/", "_")}.log'
        outputs = run_node(cases, parameters, log)
        results[label] = score(cases, outputs)
        chose = [line for line in log.read_text(errors='replace').splitlines()
                 if 'model auto' in line or 'super-resolving' in line]
        results[label]['node_log'] = chose[-2:]
        if first_output is None and 0 in outputs:
            first_output = outputs[0][0]
        print(f'{label}: {results[label]["summary"]}', flush=True)
    table = markdown(results)
    (args.out / 'real_camera.json').write_text(json.dumps(results, indent=1))
    (args.out / 'real_camera.md').write_text(
        '# Real PrimeSense / TUM / SUN3D frames through dsr_node as image_proc publishes them\n\n'
        f'{len(cases)} frames ({", ".join(args.conventions)}), x{SCALE}, lockstep over DDS; '
        'truth: the full-resolution frame.\n\n' + table)
    print(table)
    if args.figure is not None and first_output is not None:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        figure(args.figure, cases[0], first_output)
        print(f'wrote {args.figure}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
