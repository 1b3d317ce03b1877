"""The thin-node refactor (issue 29, item 2) changed no output bit: old and new resolvers agree.

The package as it was before the refactor (commit ``0a5a158``) is extracted with ``git archive``
into a temporary folder; the same script then runs it and this checkout, each in one process for
all cases (the old one with ``PYTHONPATH`` at the extracted copy), on the same frames and
settings, the way the node calls them: the resolver, the output encoding and the point cloud.
Frames: small synthetic rooms from :mod:`dsr_ros.scene` as ``16UC1`` with holes and as
``32FC1``; native and decimated geometry, a ``max_depth``, self-ensemble on, memory tiles,
per-tile (lite x4's 32-pixel tiles) and whole-frame scaling, the numpy and the torch frame
pipeline, on the tiny models and lite x4 (small frames keep the whole test near a minute on a
CPU).

The one intended change: a ``32FC1`` output of a ``16UC1`` input used to be rounded to whole
millimetres (it went through ``16UC1``); it is now the resolver's metres. The old side of that
comparison is therefore the old resolver's metres before rounding (its float encoding of the
same result), for the numpy pipeline; the old torch pipeline cannot be asked for them (its
encoding is fused with the download), so that pairing runs on the numpy pipeline only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dsr_ros.scene import sensor_frame_mm

ROOT = Path(__file__).resolve().parents[1]
BEFORE = '0a5a158'
#: Shipped models and the LR frame size they run at here: lite x4's frame is larger than its
#: 32-pixel scaling tile, and every frame is wider than the 24-pixel memory tile below.
MODELS = {'dsrnet_sensor_tiny_x2.pt': (24, 32), 'dsrnet_sensor_tiny_x4.pt': (24, 32),
          'dsrnet_sensor_tiny_x8.pt': (20, 28), 'dsrnet_sensor_lite_x4.pt': (36, 44)}
#: Memory tiles smaller than every frame above.
MEMORY_TILES = {'scaling_tile': 0, 'tile_size': 24, 'tile_overlap': 4}

_SCRIPT = textwrap.dedent('''
    """Run the resolver as the node does on every case; save images and point clouds."""
    import json, sys
    import numpy as np
    import torch
    import dsr_ros
    from dsr_ros.depth_io import convert_depth
    from dsr_ros.inference import DepthSuperResolver
    from dsr_ros.pointcloud import depth_to_points
    from dsr_ros.sampling_geometry import SamplingGeometry

    torch.set_num_threads(1)
    frames = dict(np.load(sys.argv[1]))
    cases = json.load(open(sys.argv[2]))
    K = (200.0, 0.0, 150.5, 0.0, 210.0, 100.25, 0.0, 0.0, 1.0)
    results = {'__file__': np.array(dsr_ros.__file__)}
    for case in cases:
        resolver = DepthSuperResolver.from_checkpoint(case['weights'], device='cpu',
                                                      **case['kwargs'])
        for run in case['runs']:
            depth = frames[case['frames'] + run['frame']]
            kind = run['geometry']
            geometry = None if kind is None else SamplingGeometry(kind, (0, 0))
            if kind == 'decimated' and resolver.point_alignment is None:
                continue
            enc, max_depth = run['encoding'], run['max_depth']
            if hasattr(resolver, 'resolve'):  # after the refactor: the node's calls
                dtype = np.uint16 if enc == '16UC1' else np.float32
                resolved = resolver.resolve(depth, max_depth, geometry, dtype=dtype)
                image = resolved.depth
                points = depth_to_points(image, K, resolved.hr_valid())
            else:  # before: run, convert, cloud from the converted image
                if enc == '32FC1' and depth.dtype == np.uint16:  # the old metres, unrounded
                    encode = type(resolver)._encode
                    type(resolver)._encode = lambda self, r, v, d: encode(self, r, v,
                                                                         np.float32)
                    try:
                        image = resolver.run(depth, max_depth, geometry)
                    finally:
                        type(resolver)._encode = encode
                else:
                    image = convert_depth(resolver.run(depth, max_depth, geometry), enc)
                points = depth_to_points(image, K)
            results[run['name'] + '/image'] = image
            results[run['name'] + '/points'] = points
    np.savez(sys.argv[3], **results)
''')


def _old_package(tmp: Path) -> Path:
    """``dsr_ros`` as of :data:`BEFORE`, extracted under ``tmp``; skips without git history."""
    if shutil.which('git') is None:
        pytest.skip('git is not installed')
    known = subprocess.run(['git', 'cat-file', '-e', f'{BEFORE}^{{commit}}'], cwd=ROOT,
                           capture_output=True)
    if known.returncode != 0:
        pytest.skip(f'commit {BEFORE} is not in this checkout (no git history)')
    archive = tmp / 'before.tar'
    subprocess.run(['git', 'archive', '-o', str(archive), BEFORE, 'dsr_ros'], cwd=ROOT,
                   check=True)
    old = tmp / 'before'
    old.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(old)
    return old


def _frames(tmp: Path) -> Path:
    """Per model, a synthetic room at its size: ``16UC1`` with holes and ``32FC1`` (NaN
    holes)."""
    frames = {}
    for model, (height, width) in MODELS.items():
        room = sensor_frame_mm(width, height, seed=7)
        metres = room.astype(np.float32) / np.float32(1000.0)
        metres[room == 0] = np.nan
        frames[f'{model}/room_mm'] = room
        frames[f'{model}/room_m'] = metres
    path = tmp / 'frames.npz'
    np.savez(path, **frames)
    return path


def _run_set(thorough: bool, torch_pipeline: bool) -> list:
    """Both frames, in their own encoding and (the millimetre frame) the other one; unknown,
    native and decimated geometry when ``thorough``, else decimated and one native; one run
    with a ``max_depth``. The torch pipeline skips the ``16UC1`` -> ``32FC1`` pairing."""
    runs = []
    for frame, same, other in (('room_mm', '16UC1', '32FC1'), ('room_m', '32FC1', '16UC1')):
        geometries = (None, 'native', 'decimated') if thorough else ('decimated',)
        for geometry in geometries:
            runs.append((frame, geometry, same, None))
        if not (torch_pipeline and frame == 'room_mm'):
            runs.append((frame, 'native', other, None))
    runs.append(('room_mm', 'native', '16UC1', 2500.0))
    return [{'name': f'{frame}/{geometry}/{encoding}/{limit}', 'frame': frame,
             'geometry': geometry, 'encoding': encoding, 'max_depth': limit}
            for frame, geometry, encoding, limit in runs]


def _cases() -> list:
    """Resolver settings per model: both pipelines everywhere; on tiny x4 every geometry, a
    self-ensemble, memory tiles with whole-frame scaling, and a known sampling_phase; on
    lite x4 (per-tile scaling) memory tiles in the torch pipeline."""
    settings = []
    for model in MODELS:
        thorough = 'tiny_x4' in model
        settings += [(model, {}, thorough), (model, {'frame_pipeline': 'torch'}, thorough)]
    settings += [('dsrnet_sensor_tiny_x4.pt', {'ensemble_passes': 4}, False),
                 ('dsrnet_sensor_tiny_x4.pt', MEMORY_TILES, False),
                 ('dsrnet_sensor_tiny_x4.pt', {'ensemble_passes': 2, 'frame_pipeline': 'torch',
                                               'sampling_phase': [0, 0]}, False),
                 ('dsrnet_sensor_lite_x4.pt', dict(MEMORY_TILES, scaling_tile=-1,
                                                   frame_pipeline='torch'), False)]
    cases = []
    for i, (model, kwargs, thorough) in enumerate(settings):
        runs = _run_set(thorough, kwargs.get('frame_pipeline') == 'torch')
        cases.append({'weights': str(ROOT / 'dsr_ros' / 'weights' / model), 'kwargs': kwargs,
                      'frames': f'{model}/',
                      'runs': [dict(r, name=f'{i}/{r["name"]}') for r in runs]})
    return cases


def _run(package: Path, frames: Path, cases: Path, out: Path) -> dict:
    script = out.parent / 'run_cases.py'
    script.write_text(_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(package), OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, str(script), str(frames), str(cases), str(out)],
                          cwd=out.parent, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(out))


def test_outputs_are_bit_identical_before_and_after(tmp_path: Path) -> None:
    missing = [m for m in MODELS if not (ROOT / 'dsr_ros' / 'weights' / m).exists()]
    if missing:
        pytest.skip(f'{missing} not shipped in this checkout')
    old = _old_package(tmp_path)
    frames = _frames(tmp_path)
    cases = tmp_path / 'cases.json'
    cases.write_text(json.dumps(_cases()))
    (tmp_path / 'old').mkdir()
    (tmp_path / 'new').mkdir()
    before = _run(old, frames, cases, tmp_path / 'old' / 'out.npz')
    after = _run(ROOT, frames, cases, tmp_path / 'new' / 'out.npz')
    assert str(before.pop('__file__')).startswith(str(old))
    assert str(after.pop('__file__')).startswith(str(ROOT / 'dsr_ros'))
    assert sorted(before) == sorted(after) and before
    differ = [name for name in before
              if before[name].dtype != after[name].dtype
              or not np.array_equal(before[name], after[name], equal_nan=True)]
    assert not differ, f'{len(differ)} of {len(before)} outputs differ, e.g. {differ[:5]}'
