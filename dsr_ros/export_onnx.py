"""Export a DSRNet checkpoint to ONNX, e.g. to build a TensorRT engine with ``trtexec``.

The graph takes the *normalised, hole-free* LR depth ``depth_lr`` (float32, ``1 x 1 x h x w``)
and returns ``depth_sr`` (``1 x 1 x h*s x w*s``), exactly like ``DSRNet.forward``; the
numpy-side steps of :class:`dsr_ros.inference.DepthSuperResolver` (unit conversion,
normalisation, hole filling, invalid mask) stay outside the graph because they depend on the
input encoding. The bicubic global residual becomes an ONNX ``Resize`` (cubic, coefficient
-0.75, half-pixel coordinates), which matches ``F.interpolate(mode='bicubic')``. With
``--dynamic`` height and width are free axes (TensorRT then needs an optimisation profile,
e.g. ``--minShapes=depth_lr:1x1x60x80 --optShapes=depth_lr:1x1x240x320
--maxShapes=depth_lr:1x1x480x640``); otherwise they are fixed to ``--height``/``--width``.

The TorchScript-based exporter is used (``dynamo=False``): it needs no extra packages and
produces plain opset-17 operators; torch's newer exporter needs ``onnxscript``.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.networks import DSRNet

__all__ = ['DEFAULT_OPSET', 'INPUT_NAME', 'OUTPUT_NAME', 'export_onnx', 'main']

DEFAULT_OPSET = 17
INPUT_NAME = 'depth_lr'
OUTPUT_NAME = 'depth_sr'


class _Plain(nn.Module):
    """``DSRNet`` with the single-tensor signature: no ``return_features`` branch to trace."""

    def __init__(self, model: DSRNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, depth_lr: torch.Tensor) -> torch.Tensor:
        return self.model(depth_lr)


def export_onnx(model: DSRNet, path: Union[str, os.PathLike], *, height: int = 120,
                width: int = 160, dynamic: bool = False, opset: int = DEFAULT_OPSET,
                metadata: Optional[Dict[str, Any]] = None, batch: int = 1) -> Path:
    """Write ``model`` as ONNX and return the path.

    ``height``/``width`` give the LR example input (and the fixed shape without ``dynamic``).
    ``metadata`` (e.g. scale and normalisation from the checkpoint) is stored as ONNX
    ``metadata_props`` so a TensorRT/onnxruntime user knows how to feed the graph. ``batch``:
    the fixed batch size (the node's per-tile scaling runs all tiles of a frame as one batch).
    """
    if opset < 17:
        raise ValueError(f'opset {opset} is too old: bicubic Resize as exported needs 17+')
    if height < 1 or width < 1:
        raise ValueError(f'height and width must be positive, got {height}x{width}')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = _Plain(model.eval().float().cpu().to(memory_format=torch.contiguous_format))
    if batch < 1:
        raise ValueError(f'batch must be positive, got {batch}')
    example = torch.rand(batch, model.in_channels, height, width)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {2: 'height', 3: 'width'},
                        OUTPUT_NAME: {2: 'height_sr', 3: 'width_sr'}}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter announces its own deprecation; it is the one that needs no
        # onnxscript, and its output is checked against PyTorch in test/test_onnx.py.
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        torch.onnx.export(wrapped, (example,), os.fspath(path), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    _add_metadata(path, model, metadata or {})
    return path


def _add_metadata(path: Path, model: DSRNet, metadata: Dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(os.fspath(path))
    onnx.checker.check_model(proto)
    props = {'producer': 'dsr_ros.export_onnx', 'scale': str(model.scale),
             'arch': repr(model.arch_kwargs()),
             'input': 'normalised LR depth in [0, 1], holes filled, float32 NCHW'}
    if 'normalization' in metadata:
        props['normalization'] = repr(metadata['normalization'])
    if 'path' in metadata:
        props['checkpoint'] = os.path.basename(str(metadata['path']))
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, os.fspath(path))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m dsr_ros.export_onnx',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='DSRNet checkpoint (.pt)')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--height', type=int, default=120, help='LR input height')
    parser.add_argument('--width', type=int, default=160, help='LR input width')
    parser.add_argument('--dynamic', action='store_true',
                        help='free height/width axes instead of the fixed example size')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> Path:
    """Command line: load the checkpoint, export, print one line saying what was written."""
    opts = build_parser().parse_args(argv)
    model, metadata = load_checkpoint(opts.weights)
    path = export_onnx(model, opts.out, height=opts.height, width=opts.width,
                       dynamic=opts.dynamic, opset=opts.opset, metadata=metadata)
    shape = 'dynamic HxW' if opts.dynamic else f'{opts.height}x{opts.width}'
    print(f'wrote {path}: DSRNet x{model.scale} {model.arch_kwargs()}, input {INPUT_NAME} '
          f'1x1x{shape}, output {OUTPUT_NAME}, opset {opts.opset}')
    return path


if __name__ == '__main__':
    main()
