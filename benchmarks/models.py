"""Which networks a benchmark measures, each with a checkpoint path the node can load.

Given ``--weights``, those checkpoints (their own scale; other scales get random weights of the
same architecture). Otherwise the shipped sensor models of the ladder (``tiny``, ``lite``,
``paper``, from :mod:`dsr_ros.weights`), and when none is shipped, random weights of the
ladder's architectures as the training configs define them. Speed does not depend on weight
values; the notes say which was used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from dsr_ros.checkpoint import load_checkpoint, save_checkpoint
from dsr_ros.networks import DSRNet

__all__ = ['Model', 'build_models', 'ladder_configs']

REPO = Path(__file__).resolve().parents[1]
#: The ladder's training configs (architecture = their ``dsrnet`` section), smallest first.
LADDER_CONFIGS = {'tiny': 'sensor_tiny_x4.yaml', 'lite': 'sensor_lite_x4.yaml',
                  'paper': 'paper_x4.yaml'}


@dataclass
class Model:
    """A network to measure: a label, the net, and a checkpoint of it for the node."""

    label: str
    net: DSRNet
    weights_path: str
    random: bool = False


def ladder_configs() -> Dict[str, Dict[str, object]]:
    """``{rung: DSRNet kwargs (without scale)}`` from ``training/configs`` (absent: skipped)."""
    from training.config import load_config
    archs = {}
    for rung, name in LADDER_CONFIGS.items():
        path = REPO / 'training' / 'configs' / name
        if path.is_file():
            archs[rung] = dict(load_config(path)['dsrnet'])
    return archs


def _random_model(label: str, scale: int, arch: Dict[str, object], folder: Path) -> Model:
    torch.manual_seed(scale)
    net = DSRNet(scale, **arch).eval()
    path = save_checkpoint(folder / f'{label.replace(" ", "_")}_x{scale}_random.pt', net,
                           provenance={'source': 'benchmarks: random weights'})
    return Model(label, net, os.fspath(path), random=True)


def _shipped(scale: int) -> Dict[str, Path]:
    from dsr_ros.weights import shipped_models
    return shipped_models().get(scale, {})


def build_models(scales: Sequence[int], weights: Optional[Sequence[str]],
                 labels: Optional[Sequence[str]], folder: Path
                 ) -> Tuple[Dict[int, List[Model]], List[str]]:
    """``{scale: [Model, ...]}`` and notes saying where every net came from."""
    notes: List[str] = []
    models: Dict[int, List[Model]] = {scale: [] for scale in scales}
    if weights:
        if labels and len(labels) != len(weights):
            raise SystemExit(f'--labels needs one label per --weights file ({len(weights)})')
        for index, path in enumerate(weights):
            net, metadata = load_checkpoint(path)
            label = labels[index] if labels else Path(path).stem
            notes.append(f'{label}: {path}, x{net.scale}, arch {metadata["arch"]}')
            arch = {k: v for k, v in metadata['arch'].items() if k != 'scale'}
            for scale in scales:
                if scale == net.scale:
                    models[scale].append(Model(label, net, os.fspath(path)))
                else:
                    models[scale].append(_random_model(label, scale, arch, folder))
                    notes.append(f'{label} x{scale}: random weights of the same architecture')
        return models, notes
    archs = ladder_configs()
    for scale in scales:
        shipped = _shipped(scale)
        for rung, path in shipped.items():
            net, _ = load_checkpoint(path)
            models[scale].append(Model(rung, net, os.fspath(path)))
            notes.append(f'{rung} x{scale}: shipped {path.name}')
        for rung, arch in archs.items():
            if rung in shipped or rung == 'paper':  # paper-size at random: a GPU's job
                continue
            models[scale].append(_random_model(rung, scale, arch, folder))
            notes.append(f'{rung} x{scale}: not shipped, so RANDOM weights of DSRNet(scale, '
                         f'**{arch}) (speed does not depend on the values)')
    return models, notes
