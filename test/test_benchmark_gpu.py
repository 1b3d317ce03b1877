"""``python -m benchmarks.gpu`` end to end on the CPU, at a tiny size: it runs, the torch
pipeline agrees with numpy, and the JSON and Markdown say what was (and was not) measured."""

from __future__ import annotations

import json

from benchmarks.gpu import JSON_NAME, MARKDOWN_NAME, main


def test_gpu_benchmark_runs_on_the_cpu(tmp_path):
    report = main(['--device', 'cpu', '--models', 'tiny', '--sizes', '40x30', '--precision',
                   'fp32', '--frames', '2', '--warmup', '1', '--budget', '0.5',
                   '--train-patches', '16', '--train-batch', '16', '--patch', '48',
                   '--out', str(tmp_path)])
    saved = json.loads((tmp_path / JSON_NAME).read_text())
    assert saved['frames'][0]['lr'] == '40x30' and saved['frames'][0]['hr'] == '160x120'
    row = report['frames'][0]
    assert set(row['timings']) == {'net', 'numpy', 'torch'}  # no graphs, no TensorRT on a CPU
    assert all(timing['frames'] >= 1 for timing in row['timings'].values())
    assert row['agreement_mm']['torch']['max'] <= 1.0
    assert row['agreement_mm']['torch']['validity_differs'] == 0
    assert report['training']['cpu_worker_patches_per_s'] > 0
    assert report['training']['device_patches_per_s'] > 0
    markdown = (tmp_path / MARKDOWN_NAME).read_text()
    assert '| tiny x4 | 40x30 -> 160x120 | fp32 |' in markdown and '| 0.00, -, - |' in markdown
    assert 'no CUDA device' in markdown
