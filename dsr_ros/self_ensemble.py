"""Test-time self-ensemble: average the net over mirror images of its input.

Why: a net's errors on an image and on its mirror image are partly independent, so running it
on flipped (and transposed) copies of the frame, undoing each flip on the output and averaging
lowers the error, at the price of one forward pass per member (the "+" models of EDSR). It is
opt-in (the node's ``ensemble_passes``): on a CPU it halves the frame rate or worse, on a GPU
it is often affordable. Members, in the order ``passes`` takes them: 1 = the frame itself,
2 = + its 180-degree rotation, 4 = + the two single flips, 8 = + the transposes of those four.

Flips move the *phase* of a point-sampled frame (a sample at row ``p`` of its ``s x s`` block
sits at row ``s - 1 - p`` once the rows are reversed), and a net trained on a mix of phases puts
a point sample where its own *point alignment* ``a`` says (:mod:`dsr_ros.sampling_phase`). A
flipped member's output therefore lands at ``s - 1 - a``, not at ``a``:

* with the sampling phase known (the node's ``sampling_phase``), each member is moved back to
  ``a`` by whole HR pixels before the average, so the result is placed exactly where a single
  pass is and the node's shift to the true phase stays exact;
* with the phase unknown, members are averaged as they come. For area-averaged input (ToF,
  ``area`` in the sensor suite) that is right: the net centres such output on the block, which
  a flip maps to itself. For point-sampled input it averages two placements, ``a`` and
  ``s - 1 - a``: lower RMSE at a random phase, but a larger error on frames decimated at phase
  ``(0, 0)`` (the ``real`` family), so with such a camera give the node its phase.

Measured numbers: docs/evaluation.md, "Self-ensemble".
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from dsr_ros.sampling_phase import shift_output

__all__ = ['ENSEMBLE_PASSES', 'FlipOps', 'MEMBERS', 'NUMPY_FLIPS', 'average_over_flips',
           'check_passes', 'placement']

#: (transpose, reverse rows, reverse columns), applied to the input in that order.
Member = Tuple[bool, bool, bool]

#: Every member in the order ``passes`` takes them.
MEMBERS: Tuple[Member, ...] = (
    (False, False, False), (False, True, True),
    (False, True, False), (False, False, True),
    (True, False, False), (True, True, True), (True, True, False), (True, False, True))
#: The allowed numbers of forward passes (1 = no ensemble).
ENSEMBLE_PASSES = (1, 2, 4, 8)


def check_passes(passes: int) -> int:
    """``passes`` as an int, refused unless it is one of :data:`ENSEMBLE_PASSES`."""
    if isinstance(passes, bool) or int(passes) != passes or int(passes) not in ENSEMBLE_PASSES:
        raise ValueError(f'ensemble_passes must be one of {ENSEMBLE_PASSES}, got {passes!r}')
    return int(passes)


def _to_member(batch: np.ndarray, member: Member) -> np.ndarray:
    """``(N, C, h, w)`` input as the member sees it."""
    transpose, rows, cols = member
    if transpose:
        batch = batch.swapaxes(-1, -2)
    if rows:
        batch = batch[..., ::-1, :]
    if cols:
        batch = batch[..., :, ::-1]
    return np.ascontiguousarray(batch)


def _from_member(output: np.ndarray, member: Member) -> np.ndarray:
    """A member's ``(N, H, W)`` output back in the frame's orientation."""
    transpose, rows, cols = member
    if rows:
        output = output[..., ::-1, :]
    if cols:
        output = output[..., :, ::-1]
    if transpose:
        output = output.swapaxes(-1, -2)
    return output


def placement(member: Member, alignment: Tuple[int, int], scale: int) -> Tuple[int, int]:
    """Where a member's output puts a point sample, in the frame's orientation.

    The net puts it at ``alignment`` of the member's own rows and columns; a reversed axis
    maps offset ``q`` to ``s - 1 - q``; a transposed member's rows are the frame's columns.
    """
    transpose, rows, cols = member
    row, col = alignment
    row = scale - 1 - row if rows else row
    col = scale - 1 - col if cols else col
    return (col, row) if transpose else (row, col)


class FlipOps(NamedTuple):
    """How :func:`average_over_flips` handles one kind of array (numpy here; torch tensors in
    :mod:`dsr_ros.placement_torch`), so the ensemble's order of work is written once."""

    to_member: Callable[[Any, Member], Any]
    from_member: Callable[[Any, Member], Any]
    shift: Callable[[Any, int, int], Any]
    #: The first member's output as a fresh float32 sum.
    start: Callable[[Any], Any]
    #: ``total += output``, returning ``total``.
    add: Callable[[Any, Any], Any]
    #: ``total /= passes``, returning ``total``.
    divide: Callable[[Any, int], Any]


def _add(total: np.ndarray, output: np.ndarray) -> np.ndarray:
    total += output
    return total


def _divide(total: np.ndarray, passes: int) -> np.ndarray:
    total /= np.float32(passes)
    return total


#: :class:`FlipOps` of numpy arrays.
NUMPY_FLIPS = FlipOps(_to_member, _from_member, shift_output,
                      lambda output: np.array(output, dtype=np.float32, copy=True),
                      _add, _divide)


def average_over_flips(forward: Callable[[Any], Any], batch: Any, passes: int, scale: int,
                       alignment: Optional[Sequence[int]] = None,
                       ops: FlipOps = NUMPY_FLIPS) -> Any:
    """Mean of ``forward`` over the first ``passes`` members of :data:`MEMBERS`.

    ``forward`` maps ``(N, C, h, w)`` to ``(N, h*s, w*s)``. ``alignment``: the net's point
    alignment, given only when the input's sampling phase is known; each member's output is
    then moved back to it (see the module docstring). ``passes == 1`` calls ``forward`` once.
    ``ops``: numpy arrays by default, or another kind's :class:`FlipOps`.
    """
    passes = check_passes(passes)
    if passes == 1:
        return forward(batch)
    target = None if alignment is None else (int(alignment[0]), int(alignment[1]))
    total: Any = None
    for member in MEMBERS[:passes]:
        output = ops.from_member(forward(ops.to_member(batch, member)), member)
        if target is not None:
            row, col = placement(member, target, scale)
            output = ops.shift(output, target[0] - row, target[1] - col)
        total = ops.start(output) if total is None else ops.add(total, output)
    return ops.divide(total, passes)
