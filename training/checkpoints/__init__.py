"""Checkpoint tools: one command, ``python -m training.checkpoints SUBCOMMAND``.

They edit or derive node-ready DSRNet checkpoints after training, each keeping the file's
history in its provenance (:mod:`dsr_ros.checkpoint`):

* ``average`` (:mod:`training.checkpoints.average`): the weight average of fine-tunings of one
  parent ("model soups").
* ``lineage`` (:mod:`training.checkpoints.lineage`): the chain of runs that made a checkpoint.
* ``fit-tile`` (:mod:`training.checkpoints.fit_tile`): an inference-time ``fit_tile`` in the
  depth scaling, weights untouched.
* ``half`` (:mod:`training.checkpoints.half`): the weights stored in fp16 (half the file).
* ``calibrate-phase`` (:mod:`training.checkpoints.phase_calibration`): the net's point and
  native alignment, measured on validation frames and optionally recorded.

:mod:`training.checkpoints.cli` is the command line; the modules above are its library code.
"""
