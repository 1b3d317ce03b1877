"""Checkpoints that cannot lie (issue 11): crafted files refused fast, small and in one line.

Each crafted file is one a probe found loading silently or expensively: an absurd ``arch``
(15 s and 5.3 GB before the refusal), flipped bytes in the weights (output off by 249 mm), a
complex tensor holding NaN, int64 and float64 weights, a pickled call to ``os.system``. All of
them are loaded in one fresh process whose peak resident memory and per-file time are bounded.
Also: the weights hash, files written with the umask's mode, and temporary files of killed
writers cleaned up.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from dsr_ros.atomic_io import remove_stale_temporaries
from dsr_ros.checkpoint import (CheckpointError, load_checkpoint, save_checkpoint,
                                weights_sha256)
from dsr_ros.networks import DSRNet
from dsr_ros.weights import default_weights_path

MAX_SECONDS, MAX_PEAK_MB = 3.0, 1024


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def _tiny(**kwargs) -> DSRNet:
    torch.manual_seed(0)
    return DSRNet(**{'scale': 4, 'num_channels': 4, 'num_blocks': 1, **kwargs})


def _payload(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def _with_weight(payload: dict, key: str, tensor: torch.Tensor) -> dict:
    return {**payload, 'state_dict': {**payload['state_dict'], key: tensor}}


def _flip_bytes(good: Path, bad: Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the largest stored tensor (zip entry data)."""
    with zipfile.ZipFile(good) as archive:
        info = max((i for i in archive.infolist() if '/data/' in i.filename),
                   key=lambda i: i.file_size)
    raw = bytearray(good.read_bytes())
    name_length = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], 'little')
    extra_length = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], 'little')
    start = info.header_offset + 30 + name_length + extra_length + info.file_size // 2
    for offset in range(start, start + count):
        raw[offset] ^= 0xFF
    bad.write_bytes(bytes(raw))


@pytest.fixture(scope='module')
def crafted(tmp_path_factory) -> dict:
    """name -> (path, fragment the one-line refusal must contain)."""
    work = tmp_path_factory.mktemp('hostile')
    good = save_checkpoint(work / 'good.pt', _tiny())
    payload = _payload(good)
    files = {}

    def craft(name, obj, fragment):
        torch.save(obj, work / f'{name}.pt')
        files[name] = (str(work / f'{name}.pt'), fragment)

    craft('wide', {**payload, 'arch': {**payload['arch'], 'num_channels': 1500}},
          'num_channels 1500 is outside [1, 256]')
    craft('deep', {**payload, 'arch': {**payload['arch'], 'num_blocks': 20000}},
          'num_blocks 20000 is outside [1, 32]')
    craft('float_width', {**payload, 'arch': {**payload['arch'], 'num_channels': 4.5}},
          'num_channels must be an integer')
    nan_complex = torch.full((4,), complex(float('nan'), 0.0), dtype=torch.complex64)
    craft('complex_nan', _with_weight(payload, 'shallow.0.bias', nan_complex),
          "'shallow.0.bias' has dtype torch.complex64")
    craft('int64', _with_weight(payload, 'shallow.0.bias', torch.zeros(4, dtype=torch.int64)),
          "'shallow.0.bias' has dtype torch.int64")
    craft('float64', _with_weight(payload, 'shallow.0.bias',
                                  torch.zeros(4, dtype=torch.float64)),
          "'shallow.0.bias' has dtype torch.float64")
    craft('os_system', {**payload, 'provenance': {'x': _Evil()}}, 'GLOBAL posix.system')
    _flip_bytes(good, work / 'flipped.pt')
    files['flipped'] = (str(work / 'flipped.pt'), 'do not match their stored SHA-256')
    return files


_LOAD_ALL = '''
import json, sys, time
from dsr_ros.checkpoint import CheckpointError, load_checkpoint
results = {}
for name, path in json.loads(sys.argv[1]).items():
    start = time.monotonic()
    try:
        load_checkpoint(path)
        message = None
    except CheckpointError as error:
        message = str(error)
    results[name] = {'seconds': time.monotonic() - start, 'message': message}
with open('/proc/self/status') as handle:
    peak = [int(l.split()[1]) for l in handle if l.startswith('VmHWM:')][0] / 1024
print(json.dumps({'results': results, 'peak_mb': peak}))
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='needs Linux /proc')
def test_crafted_checkpoints_are_refused_in_one_line_fast_and_small(crafted):
    paths = {name: path for name, (path, _) in crafted.items()}
    result = subprocess.run([sys.executable, '-c', _LOAD_ALL, json.dumps(paths)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f'peak RSS of the process loading all crafted files: {report["peak_mb"]:.0f} MiB')
    assert report['peak_mb'] < MAX_PEAK_MB
    for name, (path, fragment) in crafted.items():
        outcome = report['results'][name]
        message = outcome['message']
        print(f'{name}: {outcome["seconds"]:.2f} s: {message}')
        assert message is not None, f'{name} was accepted'
        assert fragment in message and path in message, message
        assert '\n' not in message and 'weights_only' not in message, message
        assert outcome['seconds'] < MAX_SECONDS, name


def test_weights_hash_is_stored_and_low_precision_weights_load_as_fp32(tmp_path):
    model = _tiny().to(torch.bfloat16)
    path = save_checkpoint(tmp_path / 'bf16.pt', model)
    payload = _payload(path)
    assert payload['weights_sha256'] == weights_sha256(payload['state_dict'])
    loaded, metadata = load_checkpoint(path)
    assert metadata['weights_verified'] is True
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor.float()), key


def test_checkpoint_without_a_hash_loads_with_a_warning(tmp_path, caplog):
    path = save_checkpoint(tmp_path / 'm.pt', _tiny())
    payload = _payload(path)
    del payload['weights_sha256']
    torch.save(payload, tmp_path / 'old.pt')
    with caplog.at_level(logging.WARNING, logger='dsr_ros.checkpoint'):
        _, metadata = load_checkpoint(tmp_path / 'old.pt')
    assert metadata['weights_verified'] is False
    assert 'no weights_sha256' in caplog.text


@pytest.mark.skipif(default_weights_path() is None, reason='no shipped model')
def test_the_shipped_model_carries_a_verified_hash():
    _, metadata = load_checkpoint(default_weights_path())
    assert metadata['weights_verified'] is True


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_umask_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / 'm.pt', _tiny())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_training_history_gets_the_umask_mode(tmp_path):
    from training.run_log import RunLog
    old = os.umask(0o022)
    try:
        log = RunLog(tmp_path / 'run')
        log.write({'epoch': 1, 'l_dsr': 0.5})
        log.close()
    finally:
        os.umask(old)
    assert (tmp_path / 'run' / 'history.csv').stat().st_mode & 0o777 == 0o644


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f'm.pt.{dead_pid}.abc123.tmp'
    stale.write_bytes(b'')
    running = tmp_path / f'm.pt.{os.getppid()}.def456.tmp'  # a live writer's: kept
    running.write_bytes(b'')
    other = tmp_path / f'n.pt.{dead_pid}.abc123.tmp'  # another target's: kept
    other.write_bytes(b'')
    save_checkpoint(tmp_path / 'm.pt', _tiny())
    assert not stale.exists() and running.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['m.pt', running.name, other.name])
    assert remove_stale_temporaries(tmp_path / 'n.pt') == 1


def test_refusal_is_a_checkpoint_error_naming_the_path(tmp_path):
    bad = tmp_path / 'deep.pt'
    payload = _payload(save_checkpoint(tmp_path / 'm.pt', _tiny()))
    torch.save({**payload, 'arch': {**payload['arch'], 'num_blocks': 20000}}, bad)
    with pytest.raises(CheckpointError, match='num_blocks 20000') as caught:
        load_checkpoint(bad)
    assert caught.value.path == str(bad)
