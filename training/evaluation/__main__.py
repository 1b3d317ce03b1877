"""``python -m training.evaluation <paper|sensor|phase-study|rank> ...`` (see :mod:`.cli`)."""

from training.evaluation.cli import main

raise SystemExit(main())
