"""The words a user gets for the small things that go wrong around fine-tuning (issue 31).

Each is one line that names the cause: Ctrl-C (with the exact ``--resume`` command), a resume
refused for a changed config (the keys), an architecture mismatch, a depth topic in a colour
encoding (depth encodings only), a bag folder without ``metadata.yaml`` (``ros2 bag reindex``),
a corrupted, empty or foreign training state; and ``bag_info`` / ``make_bag`` say and take topics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import save_checkpoint
from dsr_ros.networks import DSRNet
from dsr_ros.weights import shipped_weights
from driver_bag import DEPTH, write_driver_bag
from training import bag_info, make_bag
from training.config import ConfigError
from training.data.bag_messages import BagError
from training.data.bag_survey import survey_bag
from training.data.rosbag_io import read_bag_samples
from training.data.synthetic import synthetic_samples
from training.trainer import Trainer
from training.warm_start import init_dsrnet_from

from test_training import tiny_config

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **extra: str) -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1',
                DSR_SHARED_DATA=str(tmp_path / 'no_shared'), **extra)


def test_ctrl_c_gives_one_line_with_the_exact_resume_command(tmp_path):
    write_driver_bag(tmp_path / 'bag', 'sqlite3', rgb=False)
    args = ['--bag', 'bag', '--out', 'run', '--model', 'tiny', '--epoch-patches', '64',
            '--no-progress']
    process = subprocess.Popen([sys.executable, '-m', 'training.finetune', *args],
                               cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / 'run' / 'last.pt').exists() and process.poll() is None:
        assert time.monotonic() < deadline, 'no epoch finished'
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if line.strip() and 'INFO' not in line]
    expected = 'python -m training.finetune ' + ' '.join(args) + ' --resume'
    assert len(lines) == 1 and lines[0].endswith(expected), err
    resumed = subprocess.run([sys.executable, *expected.split()[1:]], cwd=tmp_path,
                             env=_env(tmp_path, DSR_FINETUNE_MAX_STEPS='1'),
                             capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert 'resumed run/last.pt after epoch' in resumed.stdout


def _trained_state(tmp_path: Path) -> tuple:
    config = tiny_config(stage1_epochs=1, stage2_epochs=0)
    config['loss']['distill'] = False
    trainer = Trainer(config, tmp_path, synthetic_samples(2, 64, 64, with_rgb=False),
                      synthetic_samples(1, 64, 64, seed=1, with_rgb=False), progress=False)
    trainer.train()
    return config, tmp_path / 'last.pt'


def _fresh(config: dict, tmp_path: Path) -> Trainer:
    return Trainer(config, tmp_path / 'again', synthetic_samples(2, 64, 64, with_rgb=False),
                   synthetic_samples(1, 64, 64, seed=1, with_rgb=False), progress=False)


def _one_line(error: Exception) -> str:
    text = str(error)
    assert '\n' not in text, text
    return text


def test_a_refused_resume_names_the_differing_keys(tmp_path):
    config, state = _trained_state(tmp_path)
    changed = dict(config, seed=5, optim=dict(config['optim'], lr=0.5))
    with pytest.raises(ConfigError) as refused:
        _fresh(changed, tmp_path).load_state(state)
    assert 'differs in optim.lr, seed' in _one_line(refused.value)


def test_a_flipped_byte_in_last_pt_is_refused(tmp_path):
    config, state = _trained_state(tmp_path)
    _fresh(config, tmp_path).load_state(state)  # the intact state resumes
    with zipfile.ZipFile(state) as archive:  # torch stores tensors uncompressed
        entry = max((i for i in archive.infolist() if '/data/' in i.filename),
                    key=lambda i: i.file_size)
    raw = bytearray(state.read_bytes())
    header = entry.header_offset
    name_length, extra_length = (int(v) for v in np.frombuffer(
        bytes(raw[header + 26:header + 30]), '<u2'))
    raw[header + 30 + name_length + extra_length + entry.file_size // 2] ^= 0x10
    state.write_bytes(bytes(raw))
    with pytest.raises(ConfigError) as refused:
        _fresh(config, tmp_path).load_state(state)
    assert 'does not match its stored SHA-256' in _one_line(refused.value)


@pytest.mark.parametrize('content,words', [
    (b'', 'the file is empty (0 bytes'),
    (b'not a torch file at all\n' * 4, 'not a readable torch file of 96 bytes'),
    ('checkpoint', "not a training state (format 'dsr_ros.dsrnet/1'")])
def test_an_empty_or_foreign_state_gets_one_line(tmp_path, content, words):
    config, _ = _trained_state(tmp_path)
    path = tmp_path / 'foreign.pt'
    if content == 'checkpoint':
        save_checkpoint(path, DSRNet(scale=4, num_channels=4, num_blocks=1))
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        _fresh(config, tmp_path).load_state(path)
    assert words in _one_line(refused.value)


def test_tiny_weights_in_a_lite_net_is_one_line():
    lite = DSRNet(scale=4, num_channels=32, num_blocks=3, in_channels=2)
    with pytest.raises(ValueError) as refused:
        init_dsrnet_from(lite, str(shipped_weights('tiny', 4)))
    line = _one_line(refused.value)
    assert '12 channels x 1 blocks' in line and '32 channels x 3 blocks' in line
    assert 'weight shapes differ (first shallow.0.weight)' in line


def test_a_depth_topic_in_a_colour_encoding_lists_depth_encodings_only(tmp_path):
    bag = write_driver_bag(tmp_path / 'bag', 'mcap', rgb=True, frames=3,
                           depth_encoding='8UC3')
    result = subprocess.run([sys.executable, '-m', 'training.finetune', '--bag', 'bag', '--out',
                             'run', '--depth-topic', DEPTH], cwd=tmp_path, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert '\n' not in line and "encoding '8UC3', not a depth encoding (16UC1, 32FC1, mono16)" \
        in line
    with pytest.raises(BagError) as refused:  # the reader says the same
        read_bag_samples(bag, DEPTH)
    assert 'not a depth encoding (16UC1, 32FC1, mono16)' in str(refused.value)
    for colour in ('rgb8', 'bgr8', 'mono8'):
        assert colour not in line and colour not in str(refused.value)


def test_bag_info_shows_encoding_size_and_rate(tmp_path, capsys):
    write_driver_bag(tmp_path / 'bag', 'sqlite3', rgb=True, frames=5)
    assert bag_info.main([str(tmp_path / 'bag')]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
            if line.startswith('  /')}
    assert '16UC1' in rows[DEPTH] and '160x120' in rows[DEPTH] and '10.00 Hz' in rows[DEPTH]
    assert 'bgr8' in rows['/camera/color/image_raw']
    assert '30.00 Hz' in rows['/imu/data']


def test_a_bag_folder_without_metadata_gets_the_reindex_hint(tmp_path, capsys):
    bag = write_driver_bag(tmp_path / 'bag', 'sqlite3', rgb=False, frames=2)
    (bag / 'metadata.yaml').unlink()
    assert bag_info.main([str(bag)]) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and f'run `ros2 bag reindex {bag}`' in err


def test_make_bag_takes_topic_names(tmp_path):
    for index in range(2):
        depth = np.full((48, 64), 1500 + index, np.uint16)
        (tmp_path / 'frames' / 'depth').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / 'frames' / 'depth' / f'{index:03d}.png'), depth)
    assert make_bag.main(['--input', str(tmp_path / 'frames'), '--out', str(tmp_path / 'bag'),
                          '--depth-topic', '/camera/depth/image_raw']) == 0
    topics = survey_bag(tmp_path / 'bag')
    assert topics['/camera/depth/image_raw'].encoding == '16UC1'
    assert topics['/camera/depth/image_raw'].count == 2


def test_init_weights_mismatch_through_the_trainer_is_one_line(tmp_path):
    config = tiny_config(stage1_epochs=1, stage2_epochs=0)
    config['init_weights'] = str(shipped_weights('tiny', 4))
    with pytest.raises(ValueError) as refused:
        _fresh(config, tmp_path)
    assert 'does not fit this DSRNet' in _one_line(refused.value)
    torch.set_num_threads(1)
