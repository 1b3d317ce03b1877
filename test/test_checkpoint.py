"""dsr_ros.checkpoint: round trips and every refusal, each message naming path and reason."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from dsr_ros.checkpoint import (CHECKPOINT_FORMAT, DEFAULT_NORMALIZATION, CheckpointError,
                                load_checkpoint, read_checkpoint, revised_provenance,
                                save_checkpoint, update_metadata, weights_sha256)
from dsr_ros.networks import DSRNet


def _tiny(**kwargs) -> DSRNet:
    torch.manual_seed(0)
    return DSRNet(**{'scale': 4, 'num_channels': 4, 'num_blocks': 1, **kwargs})


@pytest.fixture
def saved(tmp_path):
    model = _tiny(global_residual=False)
    path = save_checkpoint(tmp_path / 'sub' / 'model.pt', model,
                           normalization={'mode': 'minmax', 'max_value': 1.0, 'unit': 'm'},
                           provenance={'data': 'unit test', 'git': 'abc123'},
                           metrics={'mad': 0.25, 'history': [{'epoch': 1, 'mad': 0.3}]},
                           config={'lr': 1e-3, 'crop': (256, 256)})
    return model, path


def test_round_trip_rebuilds_the_same_network(saved):
    model, path = saved
    loaded, metadata = load_checkpoint(path)
    assert not loaded.training
    assert loaded.arch_kwargs() == model.arch_kwargs()
    assert loaded.global_residual is False
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert metadata['format'] == CHECKPOINT_FORMAT and metadata['scale'] == 4
    assert metadata['normalization']['mode'] == 'minmax'
    assert metadata['provenance']['git'] == 'abc123'
    assert metadata['metrics']['history'][0]['epoch'] == 1
    assert metadata['path'] == str(path)
    assert 'state_dict' not in metadata
    x = torch.rand(1, 1, 5, 6)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model.eval()(x))


def test_saving_is_atomic_and_loadable_without_pickled_code(saved):
    _, path = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ['model.pt']  # no temp files left
    payload = torch.load(path, map_location='cpu', weights_only=True)
    assert set(payload) >= {'format', 'arch', 'scale', 'normalization', 'state_dict'}


def test_default_normalization_is_the_papers(tmp_path):
    path = save_checkpoint(tmp_path / 'm.pt', _tiny())
    assert read_checkpoint(path)['normalization'] == DEFAULT_NORMALIZATION


def test_metadata_is_stored_as_plain_data_that_weights_only_loading_accepts(tmp_path):
    """numpy/torch scalars, str subclasses (torch.__version__) and Paths would make torch.save
    write a file that no node can load; they are stored as plain values instead."""
    path = save_checkpoint(tmp_path / 'm.pt', _tiny(),
                           metrics={'mad': np.float32(0.5), 'epochs': np.int64(3),
                                    'loss': torch.tensor(0.25)},
                           provenance={'torch': torch.__version__, 'data': pathlib.Path('/d'),
                                       'scales': (2, 4)})
    _, metadata = load_checkpoint(path)
    assert metadata['metrics'] == {'mad': 0.5, 'epochs': 3, 'loss': 0.25}
    assert type(metadata['metrics']['mad']) is float and type(metadata['metrics']['epochs']) is int
    assert type(metadata['provenance']['torch']) is str
    assert metadata['provenance']['data'] == '/d' and metadata['provenance']['scales'] == [2, 4]


def _expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and caught.value.path == str(path)
    for fragment in fragments:
        assert fragment in message, message
    assert '\n' not in message  # the node prints it as one line
    return caught.value


def test_missing_file_and_directory(tmp_path):
    _expect_error(tmp_path / 'absent.pt', 'does not exist')
    _expect_error(tmp_path, 'not a regular file')


def test_not_a_torch_file(tmp_path):
    path = tmp_path / 'text.pt'
    path.write_text('hello')
    _expect_error(path, 'not a readable torch checkpoint')
    empty = tmp_path / 'empty.pt'
    empty.write_bytes(b'')
    _expect_error(empty, 'not a readable torch checkpoint')


def test_pickled_objects_are_never_executed(tmp_path):
    path = tmp_path / 'pickled.pt'
    torch.save({'format': CHECKPOINT_FORMAT, 'evil': pathlib.Path('/')}, path)
    error = _expect_error(path, 'not a readable torch checkpoint', 'Unsupported global')
    assert 'pathlib' in error.reason


def _payload(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.parametrize('mutate,fragment', [
    (lambda p: [1, 2, 3], 'expected a dictionary'),
    (lambda p: {k: v for k, v in p.items() if k != 'arch'}, "missing keys ['arch']"),
    (lambda p: {**p, 'format': 'other/9'}, "unknown format 'other/9'"),
    (lambda p: {**p, 'arch': {'scale': 4}}, 'arch must name'),
    (lambda p: {**p, 'scale': 3, 'arch': {**p['arch'], 'scale': 3}}, 'scale 3 is not one of'),
    (lambda p: {**p, 'scale': 8}, 'disagrees with arch'),
    (lambda p: {**p, 'normalization': {'mode': 'log'}}, 'bad normalization'),
    (lambda p: {**p, 'normalization': {'mode': 'fixed', 'max_value': 0}}, 'bad normalization'),
    (lambda p: {**p, 'state_dict': [1]}, 'state_dict is not a dictionary'),
    (lambda p: {**p, 'arch': {**p['arch'], 'num_channels': 0}}, 'outside [1, 256]'),
    (lambda p: {**p, 'arch': {**p['arch'], 'num_channels': 8}}, 'shape mismatch'),
    (lambda p: {**p, 'arch': {**p['arch'], 'num_blocks': 2}}, 'missing'),
    (lambda p: {**p, 'state_dict': {**p['state_dict'], 'extra.weight': torch.zeros(1)}},
     "unexpected ['extra.weight']"),
    (lambda p: {**p, 'state_dict': {**p['state_dict'], 'shallow.0.bias': [0.0]}},
     'is not a tensor'),
    (lambda p: {**p, 'state_dict': {**p['state_dict'],
                                    'shallow.0.bias': torch.full((4,), float('nan'))}},
     'non-finite'),
])
def test_refusals(saved, tmp_path, mutate, fragment):
    _, path = saved
    bad = tmp_path / 'bad.pt'
    torch.save(mutate(_payload(path)), bad)
    _expect_error(bad, fragment)


def test_a_nearest_residual_base_round_trips_and_old_arches_stay_bicubic(tmp_path):
    model = _tiny(residual_base='nearest').eval()
    for param in model.reconstruction[-1].parameters():
        torch.nn.init.zeros_(param)  # no correction: the output is the base itself
    x = torch.rand(1, 1, 5, 6)
    with torch.inference_mode():
        out = model(x)
    assert torch.equal(out, x.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3))
    loaded, metadata = load_checkpoint(save_checkpoint(tmp_path / 'n.pt', model))
    assert loaded.residual_base == 'nearest' and metadata['arch']['residual_base'] == 'nearest'
    old = save_checkpoint(tmp_path / 'old.pt', _tiny())
    payload = torch.load(old, map_location='cpu', weights_only=True)
    del payload['arch']['residual_base']  # written before the option existed
    torch.save(payload, old)
    assert load_checkpoint(old)[0].residual_base == 'bicubic'
    payload['arch']['residual_base'] = 'lanczos'
    torch.save(payload, old)
    with pytest.raises(CheckpointError, match='residual_base'):
        load_checkpoint(old)
    with pytest.raises(ValueError, match='residual_base'):
        _tiny(residual_base='area')


def test_update_metadata_rewrites_metadata_only(tmp_path):
    """The tools that annotate a checkpoint (fit_tile, point alignment, lineage) share it: the
    stored tensors come back byte for byte, an fp16 file stays fp16, the net is not editable."""
    path = save_checkpoint(tmp_path / 'w.pt', _tiny())
    payload = torch.load(path, weights_only=True)
    payload['state_dict'] = {k: v.half() for k, v in payload['state_dict'].items()}
    payload['weights_sha256'] = weights_sha256(payload['state_dict'])
    torch.save(payload, path)
    written = update_metadata(path, lambda meta: {'provenance': {'note': 'annotated'}})
    assert written == {'provenance': {'note': 'annotated'}}
    stored = torch.load(path, weights_only=True)
    assert stored['provenance'] == {'note': 'annotated'}
    assert stored['weights_sha256'] == payload['weights_sha256']
    for key, tensor in payload['state_dict'].items():
        assert stored['state_dict'][key].dtype == torch.float16
        assert torch.equal(stored['state_dict'][key], tensor), key
    with pytest.raises(ValueError, match=r"\['arch'\] cannot be updated"):
        update_metadata(path, lambda meta: {'arch': {}})
    assert torch.load(path, weights_only=True)['arch'] == stored['arch']


def test_a_revision_is_appended_and_the_metadata_left_alone():
    metadata = {'provenance': {'command': 'train', 'revisions': [{'changed': 'a'}]}}
    provenance = revised_provenance(metadata, 'sampling.point_alignment', None, [1, 1], 'measured')
    assert provenance['command'] == 'train'
    assert [r['changed'] for r in provenance['revisions']] == ['a', 'sampling.point_alignment']
    last = provenance['revisions'][-1]
    assert (last['from'], last['to'], last['why'], last['weights']) == (
        None, [1, 1], 'measured', 'unchanged')
    assert last['date'].endswith('+00:00')
    assert metadata['provenance']['revisions'] == [{'changed': 'a'}]
    assert revised_provenance({}, 'x', 0, 1, 'y')['revisions'][0]['changed'] == 'x'
