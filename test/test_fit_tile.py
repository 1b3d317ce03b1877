"""`python -m training.checkpoints fit-tile`: a tile recorded in the depth scaling, weights
untouched, fixed scalings refused."""

from dsr_ros.checkpoint import load_checkpoint, save_checkpoint
from dsr_ros.networks import DSRNet
from training.checkpoints.cli import main


def test_set_fit_tile_keeps_the_weights_and_refuses_fixed_scalings(tmp_path):
    model = DSRNet(scale=4, num_channels=4, num_blocks=1)
    path = save_checkpoint(tmp_path / 'm.pt', model, normalization={'mode': 'range'},
                           provenance={'command': 'test'})
    before = load_checkpoint(path)[1]['weights_sha256']
    assert main(['fit-tile', '40', str(path)]) == 0
    _, metadata = load_checkpoint(path)
    assert metadata['weights_sha256'] == before and metadata['normalization']['fit_tile'] == 40
    assert metadata['provenance']['command'] == 'test'
    fixed = save_checkpoint(tmp_path / 'f.pt', model,
                            normalization={'mode': 'fixed', 'max_value': 10.0, 'unit': 'm'})
    assert main(['fit-tile', '32', str(fixed)]) == 2
