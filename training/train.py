"""The training loop of cross-task distillation (Algorithm 1 of Sun et al., CVPR 2021).

    python -m training.train --config training/configs/lite_x4.yaml --out runs/lite_x4 [--resume]

The method itself (nets, optimisers, roles, freezing, one step) is
:class:`training.model.CrossTaskModel`; :class:`training.trainer.Trainer` runs it (epochs,
held-out validation, role choice and its warnings, checkpoints, logging); this module is its
command line. Stage 1 trains DSRNet and DENet independently; stage 2 picks a student every
epoch (``schedule.role_policy``). The DSRNet with the lowest held-out error is exported as a
node-ready ``best_dsrnet.pt``, the last one as ``final_dsrnet.pt``.

Every epoch ends with an atomic ``last.pt``; ``--resume`` restores it and replays the epoch that
was interrupted exactly (patches are drawn from ``(seed, epoch, index)``), so a killed run ends
with the weights an uninterrupted run would have. Multi-process: ``torchrun --nproc_per_node K
-m training.train ...`` gives every rank the same number of batches of each epoch and averages
gradients (:mod:`training.distributed`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch.distributed as dist

from training.config import ConfigError, load_config
from training.model import TrainingDiverged
from training.provenance import build_provenance
from training.resume_checks import resume_command
from training.run_data import load_data
from training.trainer import Trainer

__all__ = ['main']

LOGGER = logging.getLogger('training.train')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train one config; 0 on success, 1 on a one-line error, 130 when interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', required=True, help='YAML file under training/configs/')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config key, e.g. --set seed=1 '
                        '(repeatable; recorded in the config and provenance)')
    parser.add_argument('--out', default=None, help='run directory (default runs/<name>)')
    parser.add_argument('--resume', action='store_true', help='continue from OUT/last.pt')
    parser.add_argument('--init-from', default=None,
                        help='start from another run\'s state (e.g. its stage1_end.pt) with '
                             'this config: the equal-budget ablation fork')
    parser.add_argument('--export', default=None,
                        help='also copy the best DSRNet checkpoint to this path at the end')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    trainer = None
    try:
        config = load_config(args.config, args.overrides)
        out_dir = Path(args.out or Path('runs') / config['name'])
        train, val, dropped = load_data(config)
        provenance = build_provenance(config, args.config, train, val, args.overrides,
                                      dropped, int(os.environ.get('WORLD_SIZE', '1')),
                                      str(config['device']))
        trainer = Trainer(config, out_dir, train, val, provenance, not args.no_progress)
        if args.init_from and not (args.resume and (out_dir / 'last.pt').exists()):
            trainer.load_state(Path(args.init_from), fork=True)
            LOGGER.info('forked from %s at epoch %d', args.init_from, trainer.epoch)
        if args.resume:
            state = out_dir / 'last.pt'
            if state.exists():
                trainer.load_state(state)
                LOGGER.info('resumed %s at epoch %d', state, trainer.epoch)
            else:
                LOGGER.info('nothing to resume in %s; starting fresh', out_dir)
        elif (out_dir / 'last.pt').exists():
            raise ConfigError(f'{out_dir} already holds a run; pass --resume or another --out')
        if trainer.rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / 'config.json').write_text(json.dumps(config, indent=2))
        LOGGER.info('training %s: %d train / %d held-out samples, %d epochs on %s',
                    config['name'], len(train), len(val), trainer.total_epochs, trainer.device)
        trainer.train()
    except (ConfigError, TrainingDiverged, ValueError, OSError) as error:
        LOGGER.error('%s', error)
        return 1
    except KeyboardInterrupt:
        print(f'\ninterrupted: finished epochs are kept; continue with: '
              f'{resume_command("training.train", argv)}', file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    best = out_dir / 'best_dsrnet.pt'
    if args.export and trainer.rank == 0:
        import shutil
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, args.export)
        LOGGER.info('exported %s', args.export)
    LOGGER.info('done: best held-out e_dsr %.5f, node-ready checkpoint %s', trainer.best_val,
                best)
    return 0


if __name__ == '__main__':
    sys.exit(main())
