"""Reproducing the paper: its claims judged on results folders (:mod:`.claims`) and the spread of the
curves over vertex samples (:mod:`.seed_bands`); used by ``examples/reproduce.py`` and ``examples/table1.py``."""
