"""Progress that suits where it goes: a live bar on a terminal; on a file or a pipe, one line as each stage (an
epoch, the layer points, a pass over the data) ends, with the bar's figures, and a line a minute while a long one
runs; nothing when quiet (``sepgraph --quiet``, :func:`set_quiet`).

Every loop of the package that shows progress goes through :func:`progress_bar`, so a CI log or ``make demo > log``
holds lines a person can read instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

LINE_EVERY = 60.0
"""Seconds between the lines a long stage writes to a file before it ends."""
_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """Show no progress at all (errors and results are still printed)."""
    global _quiet
    _quiet = quiet


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, leave: bool = True) -> Any:
    """A progress bar over ``iterable`` (or updated by hand up to ``total``): tqdm's live bar on a terminal, a
    :class:`LineProgress` on anything else. ``leave=False``: a terminal's bar is cleared when it ends."""
    if disable or _quiet:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(iterable, total, desc, unit)


class LineProgress:
    """tqdm's interface, written as whole lines: ``desc: n/total units in S s (postfix)`` when the stage ends."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix = 0, ""
        self.started = self.last_line = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *_exception: object) -> None:
        self.close()

    def update(self, count: int = 1) -> None:
        self.n += count
        if time.perf_counter() - self.last_line >= LINE_EVERY and self.n != self.total:
            self._line("so far")

    def set_postfix(self, **values: object) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if not self.closed and self.n:
            self._line("")
        self.closed = True

    def _line(self, note: str) -> None:
        self.last_line = time.perf_counter()
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        figures = f" ({self.postfix})" if self.postfix else ""
        unit = self.unit if self.n == 1 else self.unit + ("es" if self.unit.endswith(("ch", "s")) else "s")
        print(f"{self.desc}: {count} {unit} in {self.last_line - self.started:.1f} s"
              f"{figures}{' ' + note if note else ''}", file=sys.stderr, flush=True)
