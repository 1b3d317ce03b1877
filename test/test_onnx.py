"""ONNX export of DSRNet: the graph onnxruntime runs must compute what PyTorch computes.

The bicubic global residual is the operator most likely to drift (ONNX ``Resize`` has its own
cubic coefficient and coordinate conventions), so every check here runs a global-residual net.
"""

import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import save_checkpoint
from dsr_ros.export_onnx import INPUT_NAME, export_onnx, main
from dsr_ros.networks import DSRNet

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

TOLERANCE = 1e-4  # float32 on [0, 1] depth; observed differences are about 3e-7


def _tiny(scale: int, global_residual: bool = True) -> DSRNet:
    torch.manual_seed(scale)
    return DSRNet(scale, num_channels=8, num_blocks=2, global_residual=global_residual).eval()


def _run_both(model: DSRNet, path, height: int, width: int):
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    torch.manual_seed(height * 1000 + width)
    depth = torch.rand(1, 1, height, width)
    with torch.no_grad():
        expected = model(depth).numpy()
    got = session.run(None, {INPUT_NAME: depth.numpy()})[0]
    return expected, got


@pytest.mark.parametrize('scale', [4, 8])
def test_dynamic_export_matches_pytorch_at_several_sizes(tmp_path, scale):
    model = _tiny(scale)
    path = export_onnx(model, tmp_path / 'dsr.onnx', height=12, width=16, dynamic=True)
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    assert any(node.op_type == 'Resize' for node in proto.graph.node)
    for height, width in [(12, 16), (20, 28), (9, 13)]:
        expected, got = _run_both(model, path, height, width)
        assert got.shape == (1, 1, height * scale, width * scale)
        assert np.abs(got - expected).max() < TOLERANCE


def test_fixed_export_has_fixed_shape_and_matches(tmp_path):
    model = _tiny(4, global_residual=False)
    path = export_onnx(model, tmp_path / 'fixed.onnx', height=10, width=14)
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 10, 14]
    expected, got = _run_both(model, path, 10, 14)
    assert np.abs(got - expected).max() < TOLERANCE


def test_command_line_exports_a_checkpoint_with_metadata(tmp_path, capsys):
    model = _tiny(4)
    ckpt = save_checkpoint(tmp_path / 'dsr.pt', model)
    out = main(['--weights', str(ckpt), '--out', str(tmp_path / 'cli.onnx'), '--height', '8',
                '--width', '12', '--dynamic'])
    assert 'wrote' in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props['scale'] == '4' and 'normalization' in props
    expected, got = _run_both(model, out, 16, 12)
    assert np.abs(got - expected).max() < TOLERANCE


def test_old_opset_is_refused(tmp_path):
    with pytest.raises(ValueError, match='opset'):
        export_onnx(_tiny(4), tmp_path / 'old.onnx', opset=11)
