"""``python -m benchmarks.revisions``: the node's per-frame work at two git revisions, one run.

    python -m benchmarks.revisions --against 9cf7fa6 --device cuda --sizes 160x120 320x240 \\
        --weights dsr_ros/weights/dsrnet_sensor_lite_x4.pt --out out/revisions

Why: a change to ``DepthSuperResolver.run`` (tiling, scaling, encoding) is judged by how much
faster the same frame gets on the same machine, and machines differ from run to run (a lent
GPU is a different host each time, a CPU is shared). So both revisions run here, in separate
processes taking turns (old, new, old, new, ...), on the same weights and procedural frames,
and the report gives their ratio. ``--against`` is exported with ``git archive`` (its
``dsr_ros`` package only), or is a folder holding such an export (``git archive REV dsr_ros |
tar -x -C DIR``: a lent machine gets the working tree without ``.git``); the other side is
this checkout. Timing is
:func:`dsr_ros.model_selection.time_resolver`, what ``model: auto`` measures at start-up.

Processes differ even on the same code (on a shared 2-core VM by about 15 %, measured with
``--against`` an export of ``HEAD``): run that first, and trust a ratio well outside its band.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.frames import parse_size

REPO = Path(__file__).resolve().parents[1]
MARK = 'TIMINGS '

#: Run in a child process whose ``dsr_ros`` is one revision's: median seconds per frame.
CHILD = r'''
import json, sys
from dsr_ros.inference import DepthSuperResolver
from dsr_ros.model_selection import time_resolver
device, precision, repeats, sizes, weights = json.loads(sys.argv[1])
rows = []
for path in weights:
    resolver = DepthSuperResolver.from_checkpoint(path, device=device, precision=precision,
                                                  max_memory_mb=0)
    for width, height in sizes:
        rows.append({'weights': path, 'input': f'{width}x{height}',
                     'precision': resolver.precision,
                     'seconds': time_resolver(resolver, (height, width), repeats)})
print(''' + repr(MARK) + ''' + json.dumps(rows))
'''


def export_package(revision: str, target: Path) -> Path:
    """``dsr_ros`` as committed at ``revision``, unpacked under ``target``; a clear error if git
    does not know the revision."""
    archive = target / 'dsr_ros.tar'
    done = subprocess.run(['git', 'archive', '--format=tar', '-o', str(archive), revision,
                           'dsr_ros'], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f'benchmarks.revisions: cannot export {revision!r}: '
                         f'{done.stderr.strip()}')
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter='data')
    return target


def time_revision(root: Path, args: argparse.Namespace, weights: Sequence[str]) -> List[Dict]:
    """One child process with ``root``'s ``dsr_ros`` first on the path."""
    payload = json.dumps([args.device, args.precision, args.repeats,
                          [list(size) for size in args.sizes], list(weights)])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(REPO)]))
    done = subprocess.run([sys.executable, '-c', CHILD, payload], cwd=root, env=env,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        raise SystemExit(f'benchmarks.revisions: the run in {root} failed:\n'
                         f'{done.stderr[-3000:]}')
    return json.loads(lines[0][len(MARK):])


def summarize(records: Sequence[Dict]) -> List[Dict]:
    """Per weights and input size: mean of each side's medians and old / new (> 1: faster)."""
    groups: Dict[tuple, Dict[str, List[float]]] = {}
    for record in records:
        key = (Path(record['weights']).name, record['input'])
        groups.setdefault(key, {}).setdefault(record['side'], []).append(record['seconds'])
    rows = []
    for (weights, size), sides in groups.items():
        old, new = statistics.mean(sides['against']), statistics.mean(sides['this'])
        rows.append({'weights': weights, 'input': size, 'against_ms': 1000 * old,
                     'this_ms': 1000 * new, 'speedup': old / new})
    return rows


def markdown(rows: Sequence[Dict], args: argparse.Namespace, revision: str) -> str:
    lines = [f'## DepthSuperResolver.run: {revision} against this checkout', '',
             f'{args.device}, precision {args.precision}, {args.rounds} rounds taking turns, '
             f'median of {args.repeats} frames each; speedup = {revision} ms / this ms.', '',
             f'| weights | input | {revision} ms | this ms | speedup |', '|---|---|---|---|---|']
    lines += [f'| {r["weights"]} | {r["input"]} | {r["against_ms"]:.1f} | {r["this_ms"]:.1f} | '
              f'{r["speedup"]:.2f} |' for r in rows]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--against', required=True,
                        help='git revision to compare with, or a folder holding its dsr_ros')
    parser.add_argument('--weights', nargs='+', required=True, help='checkpoints to time')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', default='auto')
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(160, 120)],
                        help='LR input sizes WIDTHxHEIGHT')
    parser.add_argument('--repeats', type=int, default=9, help='timed frames per measurement')
    parser.add_argument('--rounds', type=int, default=2, help='turns each revision takes')
    parser.add_argument('--out', type=Path, default=REPO / 'out' / 'revisions')
    args = parser.parse_args(argv)
    weights = [os.path.abspath(path) for path in args.weights]
    records: List[Dict] = []
    with tempfile.TemporaryDirectory() as folder:
        given = Path(args.against)
        old = (given.resolve() if (given / 'dsr_ros' / '__init__.py').is_file()
               else export_package(args.against, Path(folder)))
        for round_index in range(args.rounds):
            for side, root in (('against', old), ('this', REPO)):
                for row in time_revision(root, args, weights):
                    records.append(dict(row, side=side, round=round_index))
    rows = summarize(records)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'revisions.json').write_text(json.dumps(
        {'against': args.against, 'device': args.device, 'records': records, 'summary': rows},
        indent=1))
    report = markdown(rows, args, args.against)
    (args.out / 'revisions.md').write_text(report)
    print(report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
