"""`python -m training.checkpoints lineage`: the lineage lands in the provenance, nothing else
changes."""

import pytest
import torch
from conftest import write_checkpoint

from dsr_ros.checkpoint import load_checkpoint
from training.checkpoints.cli import main


def _lineage(*args):
    return main(['lineage', *args])


def test_entries_are_merged_and_the_weights_left_as_they_were(tmp_path):
    path = write_checkpoint(tmp_path / 'w.pt')
    before_net, before = load_checkpoint(path)
    assert _lineage(str(path), '--entry', 'machine=a lent H100',
                    '--entry', 'round1=python -m training.train --set a=b') == 0
    assert _lineage(str(path), '--entry', 'round2=from round1') == 0
    net, meta = load_checkpoint(path)
    lineage = meta['provenance']['lineage']
    assert lineage['machine'] == 'a lent H100'
    assert lineage['round1'] == 'python -m training.train --set a=b'  # '=' inside kept
    assert lineage['round2'] == 'from round1' and 'recorded' in lineage
    assert meta['provenance']['note'] == 'random weights for tests'
    assert meta['weights_sha256'] == before['weights_sha256'] and meta['weights_verified']
    for key, tensor in net.state_dict().items():
        assert torch.equal(tensor, before_net.state_dict()[key]), key


def test_half_precision_weights_stay_half(tmp_path):
    from dsr_ros.checkpoint import weights_sha256
    path = write_checkpoint(tmp_path / 'w.pt')
    payload = torch.load(path, weights_only=True)
    payload['state_dict'] = {k: v.half() for k, v in payload['state_dict'].items()}
    payload['weights_sha256'] = weights_sha256(payload['state_dict'])
    torch.save(payload, path)
    assert _lineage(str(path), '--entry', 'storage=fp16 for the transfer') == 0
    stored = torch.load(path, weights_only=True)
    assert {v.dtype for v in stored['state_dict'].values()} == {torch.float16}
    assert load_checkpoint(path)[1]['weights_verified']


def test_a_corrupt_file_and_a_bad_entry_are_refused(tmp_path, capsys):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    assert _lineage(str(bad), '--entry', 'machine=x') == 1
    err = capsys.readouterr().err
    assert str(bad) in err and 'not a readable torch checkpoint' in err
    assert bad.read_bytes() == b'not a checkpoint'
    with pytest.raises(SystemExit):
        _lineage(str(write_checkpoint(tmp_path / 'w.pt')), '--entry', 'no-equals-sign')
