"""Save and load DSRNet checkpoints: weights plus everything needed to rebuild and use the net.

A checkpoint is a plain ``torch.save`` dictionary of tensors, numbers, strings, lists and dicts,
so it loads with ``torch.load(..., weights_only=True)``: loading never executes pickled code.
Every way a file can be unusable is refused with :class:`CheckpointError`, whose message names
the path and the reason, so the node can print one clear line and exit.

Layout (``format`` = ``dsr_ros.dsrnet/1``)::

    {'format': str, 'arch': {DSRNet constructor kwargs}, 'scale': int,
     'normalization': {'mode': 'fixed'|'minmax', 'max_value': float, 'unit': str},
     'state_dict': {name: tensor}, 'weights_sha256': str,
     'provenance': {...}, 'metrics': {...}, 'config': {...}}

A file cannot lie about itself: ``arch`` is checked against :data:`ARCH_BOUNDS` before any
tensor is allocated (the network is first built on torch's ``meta`` device, which allocates
nothing, to compare shapes); weights must be fp32, fp16 or bf16 and finite; and the SHA-256 of
the weights (:func:`weights_sha256`: names, dtypes, shapes and bytes), stored at save, must
match at load, so flipped bytes are refused instead of changing the output. Files written
before the hash existed load with a warning (``metadata['weights_verified']`` is False); re-save
them with :func:`save_checkpoint` to add it.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch

from dsr_ros.atomic_io import atomic_write
from dsr_ros.depth_scaling import SENSOR_SCALING, DepthScaling
from dsr_ros.networks import RESIDUAL_BASES, SUPPORTED_SCALES, DSRNet

__all__ = ['ARCH_BOUNDS', 'CHECKPOINT_FORMAT', 'CheckpointError', 'DEFAULT_NORMALIZATION',
           'WEIGHT_DTYPES', 'arch_problem', 'atomic_torch_save', 'build_model',
           'load_checkpoint', 'read_checkpoint', 'revised_provenance', 'save_checkpoint',
           'update_metadata', 'weights_sha256']

LOGGER = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 'dsr_ros.dsrnet/1'
REQUIRED_KEYS = ('format', 'arch', 'scale', 'normalization', 'state_dict')
ARCH_KEYS = ('scale', 'num_channels', 'num_blocks', 'in_channels', 'global_residual',
             'residual_base')
#: Integer ``arch`` values a sane DSRNet stays within (the paper's net is 64 channels, 5
#: blocks); larger ones are refused before anything is allocated (``num_channels: 1500`` took
#: 15 s and 5.3 GB to build, ``num_blocks: 20000`` 40 s).
ARCH_BOUNDS = {'num_channels': (1, 256), 'num_blocks': (1, 32), 'in_channels': (1, 8),
               'out_channels': (1, 8)}
#: Weight dtypes a checkpoint may hold (converted to fp32 at load).
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: Scaling recorded when a caller names none: metres / 10, what the node feeds sensor models.
DEFAULT_NORMALIZATION = SENSOR_SCALING.to_dict()

PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the path and the reason."""

    def __init__(self, path: PathLike, reason: str) -> None:
        super().__init__(f'cannot use checkpoint {os.fspath(path)!r}: {reason}')
        self.path = os.fspath(path)
        self.reason = reason


def build_model(arch: Dict[str, Any]) -> DSRNet:
    """Build a DSRNet from the ``arch`` dictionary a checkpoint stores."""
    return DSRNet(**{key: arch[key] for key in ARCH_KEYS if key in arch})


def arch_problem(arch: Dict[str, Any]) -> str:
    """Why ``arch`` is not a sane DSRNet (types and :data:`ARCH_BOUNDS`), or ''."""
    for key, (low, high) in ARCH_BOUNDS.items():
        if key not in arch:
            continue
        value = arch[key]
        if isinstance(value, bool) or not isinstance(value, int):
            return f'arch {key} must be an integer, got {value!r}'
        if not low <= value <= high:
            return f'arch {key} {value} is outside [{low}, {high}]'
    if 'global_residual' in arch and not isinstance(arch['global_residual'], bool):
        return f'arch global_residual must be true or false, got {arch["global_residual"]!r}'
    if 'residual_base' in arch and arch['residual_base'] not in RESIDUAL_BASES:
        return (f'arch residual_base must be one of {list(RESIDUAL_BASES)}, got '
                f'{arch["residual_base"]!r}')
    return ''


def weights_sha256(state: Dict[str, torch.Tensor]) -> str:
    """SHA-256 over every weight's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f'{key}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: PathLike, model: DSRNet, *,
                    normalization: Optional[Dict[str, Any]] = None,
                    provenance: Optional[Dict[str, Any]] = None,
                    metrics: Optional[Dict[str, Any]] = None,
                    config: Optional[Dict[str, Any]] = None,
                    sampling: Optional[Dict[str, Any]] = None) -> Path:
    """Write a node-ready checkpoint atomically (temp file + rename) and return its path.

    ``normalization`` says how depth was scaled to the net's [0, 1] range in training;
    ``provenance`` (data, command, date, git revision) and ``metrics`` are free-form but must be
    plain Python data so the file stays loadable with ``weights_only=True``. ``sampling``
    (optional) records the net's measured ``point_alignment`` (:mod:`dsr_ros.sampling_phase`).
    """
    path = Path(path)
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    payload = {
        'format': CHECKPOINT_FORMAT,
        'arch': model.arch_kwargs(),
        'scale': model.scale,
        'normalization': _plain(dict(normalization or DEFAULT_NORMALIZATION)),
        'state_dict': state,
        'weights_sha256': weights_sha256(state),
        'provenance': _plain(dict(provenance or {})),
        'metrics': _plain(dict(metrics or {})),
        'config': _plain(dict(config or {})),
    }
    if sampling:
        payload['sampling'] = _plain(dict(sampling))
    atomic_torch_save(payload, path)
    return path


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temp file and rename (see :mod:`dsr_ros.atomic_io`): a crash
    mid-write keeps the old file, the new one gets the umask's mode."""
    atomic_write(path, lambda name: torch.save(obj, name))


#: What :func:`update_metadata` may replace: everything but the net and its weights.
EDITABLE_METADATA = ('normalization', 'provenance', 'sampling', 'metrics', 'config')


def update_metadata(path: PathLike,
                    update: Callable[[Dict[str, Any]], Dict[str, Any]]) -> Dict[str, Any]:
    """Change a checkpoint's metadata in place; its weights stay exactly as stored.

    ``update`` gets the metadata of :func:`load_checkpoint` (so every check of the node's loader
    has passed) and returns the entries of :data:`EDITABLE_METADATA` to replace. The tensors,
    their dtype and their SHA-256 are written back as they were read (an fp16 file stays fp16,
    which loading into a net and saving it would not do); the file is replaced atomically.
    Returns the entries written.
    """
    _, metadata = load_checkpoint(path)
    changes = update(metadata)
    unknown = sorted(set(changes) - set(EDITABLE_METADATA))
    if unknown:
        raise ValueError(f'{path}: {unknown} cannot be updated; only {list(EDITABLE_METADATA)}')
    # Read again for the tensors as stored: the loaded net holds them widened to fp32.
    payload = torch.load(path, map_location='cpu', weights_only=True)
    payload.update({key: _plain(dict(value)) for key, value in changes.items()})
    atomic_torch_save(payload, path)
    return changes


def revised_provenance(metadata: Dict[str, Any], changed: str, before: Any, after: Any,
                       why: str, weights: str = 'unchanged') -> Dict[str, Any]:
    """``metadata``'s provenance with one more revision: what :func:`update_metadata` changed.

    The revision says which entry changed, from and to what, why and when, and what became of
    the weights (``weights``: unchanged unless the caller says otherwise); earlier revisions
    are kept. The metadata itself is not modified.
    """
    provenance = dict(metadata.get('provenance') or {})
    provenance['revisions'] = list(provenance.get('revisions') or []) + [{
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'changed': changed, 'from': before, 'to': after, 'why': why, 'weights': weights}]
    return provenance


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read and validate a checkpoint dictionary without building the network."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, 'file does not exist')
    if not path.is_file():
        raise CheckpointError(path, 'not a regular file')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a bad file
        first_line = _informative_line(str(error))
        raise CheckpointError(
            path, f'not a readable torch checkpoint ({type(error).__name__}: {first_line})'
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(path, f'expected a dictionary, found {type(payload).__name__}')
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(path, f'not a dsr_ros checkpoint, missing keys {missing}')
    if payload['format'] != CHECKPOINT_FORMAT:
        raise CheckpointError(path, f'unknown format {payload["format"]!r}, '
                                    f'expected {CHECKPOINT_FORMAT!r}')
    arch = payload['arch']
    if not isinstance(arch, dict) or any(key not in arch for key in ARCH_KEYS[:3]):
        raise CheckpointError(path, f'arch must name {list(ARCH_KEYS[:3])}, found '
                                    f'{_short(arch)}')
    problem = arch_problem(arch)
    if problem:
        raise CheckpointError(path, problem)
    if payload['scale'] not in SUPPORTED_SCALES or payload['scale'] != arch['scale']:
        raise CheckpointError(path, f'scale {payload["scale"]!r} is not one of '
                                    f'{SUPPORTED_SCALES} or disagrees with arch')
    norm = payload['normalization']
    try:
        if not isinstance(norm, dict):
            raise ValueError('it is not a mapping')
        DepthScaling.from_dict(norm)
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f'bad normalization {norm!r}: {error}') from None
    if not isinstance(payload['state_dict'], dict):
        raise CheckpointError(path, 'state_dict is not a dictionary')
    problem = _sampling_problem(payload.get('sampling'), payload['scale'])
    if problem:
        raise CheckpointError(path, problem)
    return payload


def _sampling_problem(sampling: Any, scale: int) -> str:
    """Why a checkpoint's optional ``sampling`` entry is unusable, or ''."""
    if sampling is None:
        return ''
    alignment = sampling.get('point_alignment') if isinstance(sampling, dict) else None
    if (not isinstance(alignment, (list, tuple)) or len(alignment) != 2
            or not all(isinstance(v, int) and 0 <= v < scale for v in alignment)):
        return (f'bad sampling entry {_short(sampling)}: point_alignment must be [row, col] '
                f'with each in 0..{scale - 1}')
    native = sampling.get('native_alignment')
    if native is not None and (
            not isinstance(native, (list, tuple)) or len(native) != 2
            or not all(isinstance(v, (int, float)) and -1 <= v <= scale for v in native)):
        return (f'bad sampling entry {_short(sampling)}: native_alignment must be [row, col] '
                f'HR pixels within the block (-1..{scale})')
    return ''


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[DSRNet, Dict[str, Any]]:
    """Load a checkpoint into a DSRNet in eval mode; return ``(model, metadata)``.

    ``metadata`` is the checkpoint dictionary without ``state_dict``. Raises
    :class:`CheckpointError` for a missing file, a file that is not a checkpoint, wrong or
    missing keys, shape mismatches and non-finite weights.
    """
    payload = read_checkpoint(path)
    try:
        with torch.device('meta'):  # shapes only: nothing is allocated before the checks
            model = build_model(payload['arch'])
    except (TypeError, ValueError) as error:
        raise CheckpointError(path, f'cannot build DSRNet from arch {_short(payload["arch"])}: '
                                    f'{error}') from error
    state = payload['state_dict']
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(path, f'weights do not match the architecture: missing '
                                    f'{missing[:5]}, unexpected {unexpected[:5]}')
    for key, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(path, f'weight {key!r} is not a tensor')
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(path, f'shape mismatch for {key!r}: checkpoint '
                                        f'{tuple(tensor.shape)}, model '
                                        f'{tuple(expected[key].shape)}')
        if tensor.dtype not in WEIGHT_DTYPES:
            raise CheckpointError(path, f'weight {key!r} has dtype {tensor.dtype}; only '
                                        'float32, float16 and bfloat16 are accepted')
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(path, f'weight {key!r} has non-finite values')
    verified = _verify_hash(path, payload, state)
    model.load_state_dict({key: tensor.float() for key, tensor in state.items()}, assign=True)
    model.eval().to(map_location)
    metadata = {key: value for key, value in payload.items() if key != 'state_dict'}
    metadata['path'] = os.fspath(path)
    metadata['weights_verified'] = verified
    return model, metadata


def _verify_hash(path: PathLike, payload: Dict[str, Any], state: Dict[str, torch.Tensor]
                 ) -> bool:
    """True when the stored SHA-256 matches; False (with a warning) for a file without one."""
    stored = payload.get('weights_sha256')
    if stored is None:
        LOGGER.warning('checkpoint %r has no weights_sha256 (written before dsr_ros stored '
                       'one): corruption cannot be detected; re-save it to add one',
                       os.fspath(path))
        return False
    if not isinstance(stored, str) or stored != weights_sha256(state):
        raise CheckpointError(path, 'the weights do not match their stored SHA-256 (the file '
                                    'is corrupted or was edited)')
    return True


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f'... ({len(text)} characters)'


#: Lines of torch's weights_only errors that give advice (never to be followed for a file we
#: refuse) rather than the reason.
_ADVICE = re.compile(r'weights_only|Weights only load failed|documentation of torch\.load|'
                     r'trust the source|allowlist')


def _informative_line(message: str) -> str:
    """The line of a torch.load error that says what is wrong: the refused global or opcode
    for the safe loader (whose message starts with advice to disable it), else the first."""
    message = re.sub(r'\x1b\[[0-9;]*m', '', message)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if 'WeightsUnpickler error:' in line or not _ADVICE.search(line):
            line = line.split('WeightsUnpickler error:')[-1].strip()
            return line.split(' was not an allowed global')[0]
    return lines[0] if lines else ''


def _plain(value: Any) -> Any:
    """Plain Python data only, so the file loads with ``weights_only=True``.

    Subclasses of str/int/float (``torch.__version__``, numpy scalars) would be pickled as
    their own classes, which the safe loader refuses.
    """
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None:
        return None
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, 'item'):  # numpy and torch scalars
        return _plain(value.item())
    return str(value)
