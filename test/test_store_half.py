"""`python -m training.checkpoints half`: fp16 weights that load and verify, and refusals
that write nothing."""

import torch
from conftest import write_checkpoint

from dsr_ros.checkpoint import load_checkpoint
from training.checkpoints.cli import main


def _half(*args):
    return main(['half', *args])


def test_weights_are_stored_half_and_load_back_close_to_the_source(tmp_path):
    source = write_checkpoint(tmp_path / 'w.pt')
    target = tmp_path / 'w_fp16.pt'
    assert _half(str(source), str(target)) == 0
    stored = torch.load(target, weights_only=True)
    assert {t.dtype for t in stored['state_dict'].values()} == {torch.float16}
    net, meta = load_checkpoint(target)
    assert meta['weights_verified']
    revision = meta['provenance']['revisions'][-1]
    assert revision['weights'] == 'rounded to float16' and revision['to'] == ['float16']
    assert meta['provenance']['note'] == 'random weights for tests'  # the rest is kept
    source_net, _ = load_checkpoint(source)
    for key, tensor in net.state_dict().items():
        assert torch.allclose(tensor, source_net.state_dict()[key], rtol=1e-3, atol=1e-4), key
    assert target.stat().st_size < source.stat().st_size


def test_corrupt_source_and_out_of_range_weights_are_refused(tmp_path, capsys):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    assert _half(str(bad), str(tmp_path / 'out.pt')) == 2
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / 'out.pt').exists()

    from dsr_ros.checkpoint import weights_sha256
    big = write_checkpoint(tmp_path / 'big.pt')
    payload = torch.load(big, weights_only=True)
    key = next(iter(payload['state_dict']))
    payload['state_dict'][key] = payload['state_dict'][key] * 0 + 1e6
    payload['weights_sha256'] = weights_sha256(payload['state_dict'])
    torch.save(payload, big)
    assert _half(str(big), str(tmp_path / 'out.pt')) == 2
    err = capsys.readouterr().err
    assert key in err and 'fp16' in err and str(big) in err
    assert not (tmp_path / 'out.pt').exists()
