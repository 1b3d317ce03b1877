"""``python -m training.checkpoints``: see :mod:`training.checkpoints.cli`."""

import sys

from training.checkpoints.cli import main

sys.exit(main())
