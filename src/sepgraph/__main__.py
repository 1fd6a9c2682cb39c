"""``python -m sepgraph``: the command line, also as ``torchrun ... -m sepgraph analyze ...`` (SPEC 18)."""

import sys

from .cli.main import main

sys.exit(main())
