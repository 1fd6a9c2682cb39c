"""The ``sepgraph`` command line, the top floor: :mod:`.options` (the argument tables), :mod:`sepgraph.verbs` (one
library call per command), :mod:`.demo` and :mod:`.main` (parse, call, print). Nothing imports it."""

from .main import main
from .options import build_parser

__all__ = ["build_parser", "main"]
