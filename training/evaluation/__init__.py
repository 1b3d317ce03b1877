"""Evaluation of depth super-resolution: the one home of every benchmark run and its pieces.

``python -m training.evaluation <paper|sensor|phase-study|rank> ...`` (:mod:`.cli`). Modules:

* :mod:`.frames`: benchmark frames (the paper's scenes, the sensor suite's metric frames, crops);
* :mod:`.protocols`: how each paper table scores its data set (Middlebury, NYUv2, Lu, ...);
* :mod:`.families`: the degradation families of the sensor suite, and how each is made;
* :mod:`.phases`: sampling phases and the phase-blind floor;
* :mod:`.methods`: what is evaluated (table rows; SR, bicubic and nearest of a frame);
* :mod:`.scores`: which pixels are scored, edge band, validity, holes, flicker, summaries
  (MAD/RMSE: :mod:`dsr_ros.depth_metrics`; baselines: :mod:`dsr_ros.baselines`);
* :mod:`.report`, :mod:`.figures`, :mod:`.ranking`: tables, figures, the choice of models;
* the runs: :mod:`.paper`, :mod:`.sensor`, :mod:`.phase_study`.
"""
