"""``python -m sepgraph``: the command line, also as ``torchrun ... -m sepgraph analyze ...`` (SPEC 18)."""

import sys

from .cli import main

sys.exit(main())
