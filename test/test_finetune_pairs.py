"""Fine-tuning on a bag's real LR/HR pairs (issue 31: "real HR/LR when the bag has both").

A robot that records its depth at two resolutions gives the fine-tune what the node will really
be given: the LR topic's frames are the net's input and the HR frames the target, instead of the
sensor model's guess. The bag is written with plain ``rosbags`` (test/driver_bag.py); the run is
a real fine-tune of the shipped tiny x4 for two optimizer steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsr_ros.checkpoint import load_checkpoint
from dsr_ros.inference import DepthSuperResolver
from driver_bag import DEPTH, DEPTH_LR, write_driver_bag
from training.data.bag_survey import TopicInfo
from training.data.patches import PatchDataset
from training.data.bag_messages import IMAGE, BagError
from training.data.sample import RGBDSample
from training.finetune_data import load_bag
from training.finetune_pairs import pick_pair_topics

REPO = Path(__file__).resolve().parents[1]
PAIRS_LINE = f'degradation: real pairs, topics {DEPTH} (HR) and {DEPTH_LR} (LR), 30 pairs'


@pytest.fixture(scope='module')
def paired_run(tmp_path_factory):
    """The CLI on an mcap bag with both depth topics (LR 3 ms after HR), exported regardless."""
    root = tmp_path_factory.mktemp('pairs')
    write_driver_bag(root / 'bag', 'mcap', rgb=False, lr_topic=DEPTH_LR, lr_offset=0.003)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1',
               DSR_FINETUNE_MAX_STEPS='2', DSR_SHARED_DATA=str(root / 'no_shared'))
    result = subprocess.run([sys.executable, '-m', 'training.finetune', '--bag', 'bag', '--out',
                             'run', '--model', 'tiny', '--export-anyway', '--no-progress'],
                            cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


def test_real_pairs_are_found_said_and_recorded(paired_run):
    root, result = paired_run
    assert PAIRS_LINE in result.stdout.splitlines()
    assert '| real LR frames (the bag\'s LR topic) |' in result.stdout
    assert 'native (area-averaged)' not in result.stdout  # the table scores the real frames
    _, meta = load_checkpoint(root / 'run' / 'dsrnet_finetuned.pt')
    provenance = meta['provenance']
    assert provenance['degradation'] == PAIRS_LINE.split(': ', 1)[1]
    bag = provenance['bags'][0]
    assert (bag['topics']['depth']['width'], bag['topics']['lr']['width']) == (160, 40)
    assert bag['topics']['lr']['topic'] == DEPTH_LR
    assert bag['real_pairs']['pairs'] == 30 and bag['real_pairs']['largest_offset_ms'] == 3.0
    assert meta['config']['data']['given_lr'] is True
    resolver = DepthSuperResolver.from_checkpoint(root / 'run' / 'dsrnet_finetuned.pt',
                                                  device='cpu')
    lr = np.full((30, 40), 1.5, np.float32)
    assert resolver.run(lr).shape == (120, 160)


def test_pairs_farther_apart_than_the_tolerance_are_refused(tmp_path):
    write_driver_bag(tmp_path / 'bag', 'sqlite3', rgb=False, frames=4, lr_topic=DEPTH_LR,
                     lr_offset=0.05)
    with pytest.raises(BagError, match='within 20 ms of a kept HR frame.*--lr-topic none'):
        load_bag(tmp_path / 'bag', scale=4)
    assert load_bag(tmp_path / 'bag', scale=4, lr='none').pairs is None  # the sensor model


def _topic(name: str, width: int, height: int) -> TopicInfo:
    return TopicInfo(name, IMAGE, 10, '16UC1', width, height)


def test_the_lr_topic_is_picked_only_when_unambiguous():
    hr, lr, other = (_topic('/d/image_raw', 640, 480), _topic('/lr/image_raw', 160, 120),
                     _topic('/lr2/image_raw', 160, 120))
    survey = {t.topic: t for t in (hr, lr)}
    assert pick_pair_topics('bag', survey, 4) == (hr.topic, lr.topic)
    assert pick_pair_topics('bag', survey, 2) == (None, None)  # 4x apart: no x2 pair
    assert pick_pair_topics('bag', survey, 4, lr='none') == (hr.topic, None)
    survey[other.topic] = other
    with pytest.raises(BagError, match='2 depth topics could be the real LR input at x4; pick '
                                       'one with --lr-topic.*/lr/image_raw.*/lr2/image_raw'):
        pick_pair_topics('bag', survey, 4)
    assert pick_pair_topics('bag', survey, 4, lr='/lr2/image_raw') == (hr.topic, other.topic)
    with pytest.raises(BagError, match='not the /d/image_raw size 640x480 divided by 2'):
        pick_pair_topics('bag', survey, 2, depth=hr.topic, lr=lr.topic)


def test_a_given_lr_patch_is_the_real_frame_under_its_hr_patch():
    rng = np.random.default_rng(0)
    lr = rng.uniform(1000, 3000, (30, 40)).astype(np.float32)  # mm
    lr[5, 5] = 0.0  # a hole: no loss under its block
    hr = np.kron(lr, np.ones((4, 4), np.float32)) + 500.0  # unlike any degradation of it
    hr[hr <= 500.0] = 2000.0
    sample = RGBDSample('pair', hr, np.ones(hr.shape, bool), 'millimetre', lr_inputs={4: lr})
    data = PatchDataset([sample], 4, patch_size=64, patches_per_epoch=8, degradation='sensor',
                        given_lr=True)
    masked = []
    for index in range(len(data)):
        item = data[index]
        net_in, target = item['lr'][0].numpy(), item['hr'][0].numpy()  # metres / 10
        valid = item['valid'][0].numpy()[::4, ::4] > 0
        assert np.allclose(target[::4, ::4][valid] - net_in[valid], 0.05, atol=1e-5)
        masked.append(int((item['valid'] == 0).sum()))
    assert 16 in masked and set(masked) <= {0, 16}  # the hole's 4x4 block, where it is drawn
    with pytest.raises(ValueError, match='need degradation sensor'):
        PatchDataset([sample], 4, patch_size=64, degradation='cubic', given_lr=True)
