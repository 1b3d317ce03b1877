"""``python -m benchmarks --quick`` runs as a user runs it, and its JSON carries the README's
numbers; the benchmark stays outside the installed package.

Not timing tests: on a shared 2-core machine the numbers mean nothing here, only that every
stage runs, the report has the fields the README tables are made from, and the FLOP count
matches a count by hand. The benchmark runs as a subprocess: tests never import its helpers.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsr_ros.cpu_tuning import malloc_env, omp_env, tune_malloc

REPO = Path(__file__).resolve().parents[1]
RECORD_FIELDS = ('case', 'model', 'device', 'scale', 'lr_size', 'hr_size', 'stage', 'variant',
                 'precision', 'channels_last', 'threads', 'frames', 'median_ms', 'p95_ms',
                 'fps', 'gflop_per_frame', 'achieved_gflop_s', 'per_frame_over_matmul',
                 'fraction_of_matmul_rate')


def run_benchmark(out_dir, *args, module='benchmarks', timeout=300):
    """``python -m <module> --quick ... --out out_dir`` from the repository; the parsed JSON
    (``benchmark.json``) and the printed text."""
    command = [sys.executable, '-m', module, '--quick', '--out', str(out_dir), *map(str, args)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out_dir / 'benchmark.json').read_text()), result.stdout


def hand_count_macs(channels, height, width, scale, in_channels):
    """Conv/deconv MACs of DSRNet(scale, channels, num_blocks=1, in_channels) by hand."""
    kernel = {2: 6, 4: 8}[scale]  # DBPN projection kernels
    lr, hr = height * width, height * width * scale ** 2
    shallow = lr * channels * in_channels * 9 + lr * channels * channels * 9 + lr * channels ** 2
    up_block = 3 * lr * channels * channels * kernel ** 2  # deconv, conv, deconv
    reconstruction = hr * channels * channels * 9 + hr * channels * 9
    return shallow + up_block + reconstruction


def test_quick_run_without_node_reports_every_stage(tmp_path, tiny_checkpoint):
    report, printed = run_benchmark(tmp_path, '--no-node', '--weights', tiny_checkpoint,
                                    '--labels', 'tiny4', '--scales', '4', '2',
                                    '--tile-size', '8')
    assert '| case | output | variant |' in printed and '### Speed options' in printed
    assert (tmp_path / 'benchmark.md').read_text().strip() == printed.strip()
    assert report['cases'] == ['tiny4 cpu x4 16x12', 'tiny4 cpu x2 16x12']
    assert {'torch', 'cpu', 'torch_threads', 'load_average_start', 'load_average_end'} <= set(
        report['meta'])
    for matmul in report['matmul']:
        assert matmul['size'] == 256 and matmul['median_ms'] > 0 and matmul['gflop_s'] > 0
    stages = {(r['case'], r['stage'], r['variant']) for r in report['records']}
    for case in report['cases']:
        assert (case, 'model', 'fp32 NHWC') in stages
        assert (case, 'wrapper', 'fp32 NHWC') in stages
    assert ('tiny4 cpu x4 16x12', 'model', 'fp32 NCHW') in stages  # the ablated case
    for item in report['records']:
        assert 'error' not in item, item
        for name in RECORD_FIELDS:
            assert name in item, (name, item['stage'], item['variant'])
        assert item['median_ms'] > 0 and item['p95_ms'] >= item['median_ms'] * 0.999
        assert item['hr_size'] == [v * item['scale'] for v in item['lr_size']]
    flops = {r['scale']: r['gflop_per_frame'] for r in report['records']}
    assert flops[4] == pytest.approx(2 * hand_count_macs(4, 12, 16, 4, 1) / 1e9)
    assert flops[2] == pytest.approx(2 * hand_count_macs(4, 12, 16, 2, 1) / 1e9)
    options = {(row['case'], row['option']) for row in report['ratios']}
    assert ('tiny4 cpu x4 16x12', 'channels_last') in options
    assert ('tiny4 cpu x4 16x12', 'tiling 8') in options
    assert all(row['speedup'] > 0 for row in report['ratios'])
    assert any('x2: random weights of the same architecture' in n for n in report['notes'])


def test_compile_and_onnxruntime_options_are_measured(tmp_path):
    # No --weights: the shipped rungs, random weights of the ladder configs where none is
    # shipped (x4 ships tiny, lite and paper); every net's origin is in the notes.
    report, _ = run_benchmark(tmp_path, '--no-node', '--compile', '--onnxruntime',
                              '--precisions', 'fp32', '--sizes', '8x8', timeout=600)
    assert [n for n in report['notes'] if 'shipped dsrnet_sensor_' in n or 'RANDOM weights' in n]
    first = report['cases'][0]
    rows = {row['option']: row for row in report['ratios'] if row['case'] == first}
    assert rows['torch.compile (freezing)']['compile_s'] > 0
    assert rows['ONNX Runtime (CPU EP)']['speedup'] > 0
    assert not [r for r in report['records'] if 'error' in r]


@pytest.mark.skipif(sys.platform != 'linux', reason='DDS node run tested on Linux')
def test_quick_run_through_the_node(tmp_path, tiny_checkpoint):
    pytest.importorskip('rclpy')
    report, _ = run_benchmark(tmp_path, '--weights', tiny_checkpoint, '--precisions', 'fp32',
                              '--frames', '3', '--budget', '0.5')
    node = {r['stage']: r for r in report['records'] if r['stage'].startswith('node')}
    assert 'error' not in node['node_lockstep'], node['node_lockstep']
    assert node['node_lockstep']['frames'] >= 2 and node['node_lockstep']['median_ms'] > 0
    assert node['node_lockstep']['fps_ratio_to_model'] > 0
    assert node['node_flood']['received'] >= 1 and node['node_flood']['fps'] > 0
    assert node['node_flood']['per_frame_over_matmul'] > 0
    assert node['node_lockstep']['peak_mem_mb'] > 0


def test_benchmarks_stay_outside_the_installed_package():
    for path in (REPO / 'dsr_ros').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [n for n in names if n.split('.')[0] in ('benchmarks', 'training')], (
                path, names)
    setup = (REPO / 'setup.py').read_text()
    assert "find_packages(include=[PACKAGE, f'{PACKAGE}.*'])" in setup


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc settings')
def test_cpu_tuning_applies_in_a_fresh_process():
    # A child process: the settings are process-wide and cannot be undone.
    code = ('from dsr_ros.cpu_tuning import tune_malloc; import torch; ok = tune_malloc(); '
            'torch.ones(64, 1024, 1024).sum(); print(ok)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == 'True'
    assert malloc_env()['MALLOC_ARENA_MAX'] == '1'
    assert omp_env() == {'OMP_WAIT_POLICY': 'PASSIVE'}
    with pytest.raises(ValueError):
        tune_malloc(0)


def test_pareto_finds_each_model_in_any_of_several_suite_files(tmp_path, tiny_checkpoint):
    """One sensor.json per model (as the suite writes them) is enough for the Pareto table."""
    ratios = {'sr_over_bicubic_mad': 0.7, 'sr_over_nearest_mad': 0.8,
              'sr_over_bicubic_rmse': 0.9, 'sr_over_nearest_rmse': 0.6}
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'results': {'someone else': {
        'weights': '/nowhere.pt', 'summary': {'area': {k: 9.0 for k in ratios}}}}}))
    mine = tmp_path / 'mine.json'
    mine.write_text(json.dumps({'results': {'tiny4': {
        'weights': str(tiny_checkpoint), 'summary': {'area': ratios}}}}))
    command = [sys.executable, '-m', 'benchmarks.pareto', '--quick', '--no-node',
               '--out', str(tmp_path / 'out'), '--weights', str(tiny_checkpoint),
               '--labels', 'tiny4', '--sensor-json', str(other), str(mine)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / 'out' / 'pareto.json').read_text())
    assert report['rows'][0]['sensor'] == {'area': ratios}
    assert report['quality_files']['sensor'] == [str(other), str(mine)]
    assert '| tiny4 | area | 0.700 | 0.800 | 0.900 | 0.600 |' in result.stdout


def test_two_revisions_take_turns_and_report_their_ratio(tmp_path, tiny_checkpoint):
    """``benchmarks.revisions`` times this checkout against a committed revision (here HEAD,
    so both sides run the same code) in alternating processes; an unknown revision is refused
    by name."""
    if not (REPO / '.git').exists():
        pytest.skip('needs a git checkout')

    def revisions(*args):
        return subprocess.run([sys.executable, '-m', 'benchmarks.revisions', *map(str, args)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)

    done = revisions('--against', 'HEAD', '--weights', tiny_checkpoint, '--sizes', '8x8',
                     '--repeats', '1', '--rounds', '2', '--out', tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / 'revisions.json').read_text())
    sides = [(r['side'], r['round']) for r in report['records']]
    assert sides == [('against', 0), ('this', 0), ('against', 1), ('this', 1)]
    (row,) = report['summary']
    assert row['input'] == '8x8' and row['speedup'] > 0 and row['this_ms'] > 0
    assert '| speedup |' in (tmp_path / 'revisions.md').read_text()
    refused = revisions('--against', 'no-such-revision', '--weights', tiny_checkpoint,
                        '--out', tmp_path)
    assert refused.returncode != 0 and "'no-such-revision'" in refused.stderr
    exported = tmp_path / 'exported'
    exported.mkdir()
    subprocess.run(f'git archive HEAD dsr_ros | tar -x -C {exported}', shell=True, cwd=REPO,
                   check=True)
    done = revisions('--against', exported, '--weights', tiny_checkpoint, '--sizes', '8x8',
                     '--repeats', '1', '--rounds', '1', '--out', tmp_path / 'folder')
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / 'folder' / 'revisions.json').read_text())['summary']
