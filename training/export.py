"""Write a node-ready DSRNet checkpoint from a training run, with its benchmark numbers.

    python -m training.export --run runs/lite_x4 --out dsr_ros/weights/dsrnet_lite_x4.pt \
        [--which best|final] [--evaluate middlebury2005] [--data-root DIR]

The run's ``best_dsrnet.pt`` (lowest held-out error) or ``final_dsrnet.pt`` is validated by
``dsr_ros.checkpoint.load_checkpoint`` (the node's own loader), optionally scored on a
benchmark by ``training.evaluation`` against bicubic, and re-saved with those metrics, the
run's history and its provenance, so the shipped file says how it was made and how good it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from dsr_ros.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

LOGGER = logging.getLogger('training.export')


def export_run(run: Path, out: Path, which: str = 'best', dataset: Optional[str] = None,
               data_root: Optional[str] = None) -> Dict[str, Any]:
    """Export ``run``'s DSRNet to ``out``; return the metrics written into it.

    ``which``: ``best`` (lowest held-out error), ``final`` (end of the schedule), ``stage1``
    (the DSRNet of ``stage1_end.pt``, before cross-task distillation) or ``last`` (the DSRNet
    of ``last.pt``: the last finished epoch, also of a run stopped early).
    """
    states = {'stage1': 'stage1_end.pt', 'last': 'last.pt'}
    source = Path(run) / states.get(which, f'{which}_dsrnet.pt')
    model, meta = (_from_training_state(source) if which in states
                   else load_checkpoint(source))
    metrics = dict(meta.get('metrics', {}))
    provenance = dict(meta.get('provenance', {}), exported_from=str(source),
                      degradation=degradation_provenance(meta.get('config', {})))

    def write() -> None:
        save_checkpoint(out, model, normalization=meta['normalization'], provenance=provenance,
                        metrics=metrics, config=meta.get('config', {}))

    write()
    if dataset:
        from training.evaluation.methods import bicubic_method
        from training.evaluation.paper import evaluate_checkpoint, evaluate_methods
        scores = evaluate_checkpoint(out, dataset=dataset, data_root=data_root)
        baseline = evaluate_methods([bicubic_method()], dataset, data_root, [model.scale],
                                    progress=False)
        bicubic = {scene: by_scale[model.scale]['mad']
                   for scene, by_scale in baseline['Bicubic'].items()
                   if model.scale in by_scale}
        metrics[dataset] = {'scale': model.scale, 'unit': scores['unit'],
                            'mad': scores['mad'], 'rmse': scores['rmse'],
                            'mean_mad': scores['mean_mad'], 'mean_rmse': scores['mean_rmse'],
                            'bicubic_mad': bicubic, 'errors': scores['errors']}
        write()
    return metrics


def degradation_provenance(config: Dict[str, Any]) -> Dict[str, Any]:
    """How the run made its LR inputs, spelled out (defaults included) for the checkpoint."""
    data = config.get('data', {})
    kind = data.get('degradation', 'cubic')
    if kind != 'sensor':
        return {'kind': kind, 'noise_std': data.get('noise_std', 0.0),
                'hole_fraction': data.get('hole_fraction', 0.0)}
    from training.data.sensor_degradation import SensorDegradation
    return {'kind': 'sensor', 'model': 'training.data.sensor_degradation.SensorDegradation',
            'ranges': SensorDegradation.from_config(data.get('sensor')).to_dict(),
            'scaling': data.get('scaling'), 'scaling_jitter': data.get('scaling_jitter', 1.0)}


def _from_training_state(state_path: Path) -> tuple:
    """The DSRNet of a training state (``stage1_end.pt``, ``last.pt``) and its metadata."""
    import torch

    from dsr_ros.checkpoint import CheckpointError, build_model
    from training.run_data import checkpoint_normalization
    try:
        state = torch.load(state_path, map_location='cpu', weights_only=True)
        config = state['config']
        model = build_model(dict(config['dsrnet'], scale=config['scale']))
        model.load_state_dict(state['modules']['dsrnet'])
    except (OSError, KeyError, RuntimeError, TypeError) as error:
        raise CheckpointError(state_path, f'not a usable training state ({error})') from error
    history = state['history']
    meta = {'normalization': checkpoint_normalization(config), 'config': config,
            'provenance': dict(state.get('provenance', {}), config_name=config['name'],
                               epoch=int(state['epoch'])),
            'metrics': {'val_e_dsr': history[-1]['val_e_dsr'] if history else None,
                        'val_history': [{k: row[k] for k in ('epoch', 'role', 'val_e_dsr')}
                                        for row in history]}}
    return model.eval(), meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run', required=True, help='training run directory')
    parser.add_argument('--out', required=True, help='checkpoint to write')
    parser.add_argument('--which', choices=('best', 'final', 'stage1', 'last'), default='best',
                        help='best held-out DSRNet (default), the end of the schedule, the end '
                             'of stage 1 (before distillation), or the last finished epoch')
    parser.add_argument('--evaluate', default=None, metavar='DATASET',
                        help='score it on this benchmark (e.g. middlebury2005) first')
    parser.add_argument('--data-root', default=None, help='benchmark folder')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    try:
        metrics = export_run(Path(args.run), Path(args.out), args.which, args.evaluate,
                             args.data_root)
    except (CheckpointError, OSError, ValueError) as error:
        LOGGER.error('%s', error)
        return 1
    if args.evaluate:
        scores = metrics[args.evaluate]
        LOGGER.info('%s x%d MAD per scene: %s (mean %s; bicubic %s)', args.evaluate,
                    scores['scale'], {k: round(v, 3) for k, v in scores['mad'].items()},
                    None if scores['mean_mad'] is None else round(scores['mean_mad'], 3),
                    {k: round(v, 3) for k, v in scores['bicubic_mad'].items()})
    LOGGER.info('wrote %s', args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
