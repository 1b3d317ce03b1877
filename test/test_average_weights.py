"""`python -m training.checkpoints average`: a weighted average of checkpoints, its provenance,
its refusals."""

import torch
from conftest import write_checkpoint

from dsr_ros.checkpoint import load_checkpoint
from training.checkpoints.cli import main


def _average(*args):
    return main(['average', *args])


def test_the_average_is_weighted_per_tensor_and_says_where_it_came_from(tmp_path):
    a = write_checkpoint(tmp_path / 'a.pt', seed=0)
    b = write_checkpoint(tmp_path / 'b.pt', seed=1)
    out = tmp_path / 'soup.pt'
    assert _average(str(a), str(b), '--weights', '0.25', '0.75', '--out', str(out),
                    '--why', 'between the two') == 0
    (net_a, meta_a), (net_b, meta_b) = load_checkpoint(a), load_checkpoint(b)
    soup, meta = load_checkpoint(out)
    state_a, state_b = net_a.state_dict(), net_b.state_dict()
    for key, tensor in soup.state_dict().items():
        assert torch.allclose(tensor, 0.25 * state_a[key] + 0.75 * state_b[key], atol=1e-6), key
    averaged = meta['provenance']['averaged_from']
    assert averaged['why'] == 'between the two'
    assert [(i['path'], i['weight'], i['weights_sha256']) for i in averaged['inputs']] == [
        (str(a), 0.25, meta_a['weights_sha256']), (str(b), 0.75, meta_b['weights_sha256'])]
    assert meta['provenance']['note'] == 'random weights for tests'  # the first's, kept


def test_other_architectures_and_bad_weights_are_refused(tmp_path, capsys):
    a = write_checkpoint(tmp_path / 'a.pt', num_channels=4)
    wide = write_checkpoint(tmp_path / 'wide.pt', num_channels=6)
    out = tmp_path / 'soup.pt'
    assert _average(str(a), str(wide), '--out', str(out), '--why', 'x') == 1
    assert 'wide.pt: architecture' in capsys.readouterr().err
    assert _average(str(a), str(a), '--weights', '0.7', '0.7', '--out', str(out),
                    '--why', 'x') == 1
    assert 'sum to 1' in capsys.readouterr().err
    assert not out.exists()
