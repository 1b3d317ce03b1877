"""`python -m training.checkpoints calibrate-phase`: the point and native alignment measured on
validation frames only, and recorded with the weights untouched."""

import json

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.inference import DepthSuperResolver
from training.checkpoints.cli import main

from test_data_fakes import require_shared
from test_sampling_phase import _checkpoint


def test_calibration_measures_on_validation_frames_and_records(tmp_path):
    root = require_shared('middlebury_lu30').parent
    path = _checkpoint(tmp_path / 'm.pt')
    before = load_checkpoint(path)[1]['weights_sha256']
    out = tmp_path / 'cal'
    assert main(['calibrate-phase', str(path), '--data-root', str(root), '--out', str(out),
                 '--write']) == 0
    metadata = load_checkpoint(path)[1]
    report = json.loads((out / 'phase_calibration.json').read_text())[0]
    assert metadata['sampling']['point_alignment'] == report['point_alignment']
    assert metadata['weights_sha256'] == before
    assert metadata['provenance']['revisions'][-1]['changed'] == (
        'sampling.point_alignment, sampling.native_alignment')
    assert metadata['sampling']['native_alignment'] == report['native_alignment']
    centre = 1.5  # x4
    assert [centre - v for v in report['native_alignment']] == report['native_best_move']
    assert report['native_sr_over_bicubic'] <= report['native_sr_over_bicubic_unmoved']
    assert DepthSuperResolver.from_checkpoint(path, device='cpu').native_alignment == tuple(
        report['native_alignment'])
    assert all(name.split('/')[0] in ('lu_val', 'rooms_val') for name in report['frames'])
    assert len(report['per_phase']) == 16
    # the recorded alignment is the best-scoring candidate
    assert report['mean_sr_told_over_nearest'] == min(report['alignment_scores'].values())
