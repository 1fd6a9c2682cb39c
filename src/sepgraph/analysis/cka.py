"""The CKA bookkeeping of one analysis (SPEC 15).

Points are measured from the last to the first, so ``cka_last`` of every point compares with a Gram already
known, and a point's ``cka_prev`` needs the Gram of the point measured right after it. :class:`CkaLinks`
holds the Grams that later points compare with and the one row that waits for its previous point, and hands
out rows once both their CKAs are filled.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..errors import SepgraphError
from ..graph.peers import CenteredGram
from .point import MeasuredPoint

Reference = CenteredGram | SepgraphError
"""A Gram to compare with, or the error its point raised (raised where a row needs it)."""


class CkaLinks:
    """Completes measured rows with their CKAs (SPEC 15) as their reference Grams become known.

    Args:
        last: the position of the last point.
        references: Grams measured beforehand (a resumed analysis: the last point's and the point before each
            first missing one), by point position.
    """

    def __init__(self, last: int, references: dict[int, Reference]):
        self.last, self.references = last, dict(references)
        self.waiting: MeasuredPoint | None = None

    def complete(self, measured: MeasuredPoint) -> list[MeasuredPoint]:
        """Take one measured point (positions descending); return the points now complete, in measuring order."""
        index = measured.row.index
        if index == self.last:
            self.references[self.last] = measured.gram
        done = []
        if self.waiting is not None:  # this point is the waiting one's previous
            done.append(self._with_cka(self.waiting, measured.gram))
        previous = self.references.get(index - 1)
        self.waiting = measured if index > 0 and previous is None else None
        if self.waiting is None:
            done.append(self._with_cka(measured, previous))
        return done

    def _with_cka(self, measured: MeasuredPoint, previous: Reference | None) -> MeasuredPoint:
        """``measured`` with its CKA to the previous point (None at the first) and to the last point."""
        tick = time.perf_counter()
        last = self.references[self.last]
        for reference in (previous, last):
            if isinstance(reference, SepgraphError):
                raise reference
        row, gram = measured.row, measured.gram
        cka_prev = gram.cka(previous) if previous is not None else None
        seconds = row.seconds | {"peers": row.seconds["peers"] + time.perf_counter() - tick}
        return replace(measured, row=replace(row, cka_prev=cka_prev, cka_last=gram.cka(last), seconds=seconds))
