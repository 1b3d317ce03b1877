"""Train several configs at once on one lent GPU, inside a wall-clock budget.

A lent GPU comes for minutes, not hours, and one small DSRNet leaves most of it idle, so the
rungs of the model ladder train side by side, each in its own ``training.train`` process. How
many patches fit the budget is not known in advance (it depends on the card, the other runs
and the data workers), so every run first trains two short probe epochs, all of them at once;
each run's samples/s in its second probe epoch (the first pays for worker start-up and cuDNN's
autotuning: on a lent H100 it measured 2-3x too slow) then sets its
``data.patches_per_epoch`` so that the epochs its config asks for (and their learning-rate
steps) end inside the budget. The choice is recorded as a ``--set`` override, so each
checkpoint's provenance says exactly what ran.

    python -m training.experiments.train_concurrently --out runs_gpu --budget-min 6 \\
        --run paper_x4=training/configs/sensor_paper_x4.yaml \\
        --run lite_x4=training/configs/sensor_lite_x4.yaml

Each run's folder (``OUT/NAME``) is an ordinary run directory (``best_dsrnet.pt`` is
node-ready, ``history.csv``); ``OUT/summary.json`` lists probe rates, the chosen epoch sizes,
epochs done and best held-out errors. A run still going when the budget (plus a grace period)
is over is stopped; its best checkpoint so far stays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from training.config import ConfigError, load_config, total_epochs
from training.plot_history import read_history

__all__ = ['epochs_logged', 'launch', 'main', 'parse_run', 'patches_per_epoch', 'wait_all']

#: The repository: each run's ``training.train`` process starts here.
REPO = Path(__file__).resolve().parents[2]


def parse_run(text: str) -> Tuple[str, str]:
    """``NAME=CONFIG`` -> (name, config path)."""
    name, sep, config = text.partition('=')
    if not sep or not name or not config:
        raise argparse.ArgumentTypeError(f'--run {text!r} is not NAME=CONFIG')
    return name, config


def epochs_logged(run_dir: Path) -> List[Dict[str, Any]]:
    """Parsed rows of a run's ``history.csv``; none when the run logged no epoch."""
    try:
        return read_history(run_dir / 'history.csv')
    except (OSError, ValueError):
        return []


def launch(config: str, out: Path, overrides: Sequence[str]) -> subprocess.Popen:
    """One ``training.train`` process, its log in ``out.log``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, '-m', 'training.train', '--config', config, '--out', str(out),
               '--no-progress'] + [arg for item in overrides for arg in ('--set', item)]
    log = open(f'{out}.log', 'w')  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_all(processes: Dict[str, subprocess.Popen], deadline: float) -> Dict[str, int]:
    """Wait until every process ends or the deadline passes (then stop them); exit codes."""
    codes: Dict[str, int] = {}
    while len(codes) < len(processes):
        for name, process in processes.items():
            if name not in codes and process.poll() is not None:
                codes[name] = process.returncode
        if time.monotonic() > deadline:
            for name, process in processes.items():
                if name not in codes:
                    process.terminate()
                    try:
                        codes[name] = process.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        codes[name] = process.wait()
                    print(f'{name}: stopped at the deadline', flush=True)
            break
        time.sleep(1.0)
    return codes


def patches_per_epoch(rate: float, seconds: float, epochs: int, batch: int,
                      floor: int) -> int:
    """Patches per epoch so that ``epochs`` epochs at ``rate`` samples/s take ``seconds``."""
    per_epoch = int(rate * max(seconds, 0.0) / max(epochs, 1))
    return max(floor, per_epoch // batch * batch)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Probe, size, train, summarise; 0 when at least one run left a best checkpoint."""
    parser = argparse.ArgumentParser(prog='python -m training.experiments.train_concurrently',
                                     description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run', dest='runs', type=parse_run, action='append', required=True,
                        metavar='NAME=CONFIG', help='a run (repeatable)')
    parser.add_argument('--out', type=Path, required=True, help='folder of the run folders')
    parser.add_argument('--budget-min', type=float, required=True,
                        help='wall-clock minutes for everything, probe included')
    parser.add_argument('--probe-patches', type=int, default=1024,
                        help='patches of each of a run\'s two probe epochs')
    parser.add_argument('--grace-min', type=float, default=0.5,
                        help='after the budget, how long a run may finish its epoch')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override for every run (e.g. device=cpu)')
    args = parser.parse_args(argv)
    start = time.monotonic()
    deadline = start + 60.0 * args.budget_min
    try:  # a typo must stop everything before a lent GPU's minutes go
        configs = {name: load_config(path, args.overrides) for name, path in args.runs}
    except ConfigError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    paths = dict(args.runs)

    probes = {name: launch(paths[name], args.out / f'probe_{name}', args.overrides + [
        'schedule.stage1_epochs=2', 'schedule.stage2_epochs=0',
        f'data.patches_per_epoch={args.probe_patches}']) for name in paths}
    probe_codes = wait_all(probes, deadline)
    probe_wall = time.monotonic() - start
    summary: Dict[str, Any] = {'budget_min': args.budget_min, 'probe_wall_s': probe_wall,
                               'overrides': args.overrides, 'runs': {}}
    mains = {}
    for name, config in configs.items():
        history = epochs_logged(args.out / f'probe_{name}')
        entry: Dict[str, Any] = {'config': paths[name], 'probe_exit': probe_codes.get(name)}
        summary['runs'][name] = entry
        if len(history) < 2:
            print(f'{name}: the probe epochs failed (see {args.out}/probe_{name}.log); '
                  'not trained', flush=True)
            continue
        rate = float(history[-1]['samples_per_s'])
        # Start-up (data, CUDA) and validation: what the probe took beyond its epochs.
        overhead = max(probe_wall - sum(float(row['epoch_s']) for row in history), 0.0)
        epochs = total_epochs(config)
        # Epochs run slower than the probe measured when the others are busy too: keep 10 %,
        # and about 3 s per epoch for its held-out pass and checkpoints.
        seconds = 0.9 * (deadline - time.monotonic() - overhead - 3.0 * epochs)
        count = patches_per_epoch(rate, seconds, epochs, int(config['data']['batch_size']),
                                  floor=int(config['data']['batch_size']))
        entry.update(probe_samples_per_s=rate, patches_per_epoch=count, epochs=epochs)
        print(f'{name}: probe {rate:.0f} samples/s -> {epochs} epochs x {count} patches',
              flush=True)
        mains[name] = launch(paths[name], args.out / name,
                             args.overrides + [f'data.patches_per_epoch={count}'])
    codes = wait_all(mains, deadline + 60.0 * args.grace_min)
    for name in mains:
        history = epochs_logged(args.out / name)
        entry = summary['runs'][name]
        entry.update(exit=codes.get(name), epochs_done=len(history),
                     best_val_e_dsr=min((float(r['val_e_dsr']) for r in history),
                                        default=None),
                     samples_per_s=[round(float(r['samples_per_s']), 1) for r in history])
    summary['wall_s'] = time.monotonic() - start
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2), flush=True)
    done = [name for name in mains if (args.out / name / 'best_dsrnet.pt').exists()]
    return 0 if done else 1


if __name__ == '__main__':
    sys.exit(main())
