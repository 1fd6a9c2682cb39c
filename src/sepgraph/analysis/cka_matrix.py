"""Linear CKA between every pair of points (SPEC 24), in bounded memory.

Each point's centred vertex Gram (SPEC 15; (N, N) float32, 64 MB at N = 4,000) goes to a :class:`GramStore` on disk
as the point is measured, and stays there until the matrix is written, so a resumed analysis reuses it. The matrix is
then computed in passes: a block of Grams that fits the memory budget is held while every other Gram is read once
from disk, so memory holds the block and one Gram, whatever the number of points. Each entry is
:meth:`CenteredGram.cka`, the same arithmetic as the rows' ``cka_prev`` and ``cka_last``, so those are the matrix's
entries to the bit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write
from ..graph.peers import CenteredGram, frobenius_inner

GRAMS_FOLDER = ".grams"
"""Where a results folder keeps its points' Grams until its CKA matrix is written."""


class GramStore:
    """Centred vertex Grams by point position, one ``.npy`` file each, under ``folder``."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder)

    def put(self, position: int, gram: CenteredGram) -> None:
        """Keep point ``position``'s Gram (written atomically)."""
        self.path.mkdir(exist_ok=True)
        matrix = gram.matrix.cpu().numpy()
        atomic_write(self._file(position), lambda handle: np.save(handle, matrix))

    def has(self, position: int) -> bool:
        return self._file(position).is_file()

    def get(self, position: int) -> CenteredGram:
        """Point ``position``'s Gram as it was measured, on the CPU where every Gram is made (its norm recomputed
        by the same arithmetic: the same float64 value)."""
        matrix = torch.from_numpy(np.load(self._file(position)))
        return CenteredGram(matrix, frobenius_inner(matrix, matrix) ** 0.5)

    def gram_bytes(self) -> int:
        """The size of one stored Gram (all have the same N)."""
        return next(self.path.glob("*.npy")).stat().st_size

    def remove(self) -> None:
        """Drop every stored Gram (once the matrix is written)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def _file(self, position: int) -> Path:
        return self.path / f"{position:04d}.npy"


def cka_matrix(rows: GramStore, count: int, columns: GramStore | None = None, column_count: int | None = None,
               max_memory: int = 2**30) -> np.ndarray:
    """(count, column_count) float64 linear CKA between ``rows``' points and ``columns``' (default: ``rows``'s own,
    a symmetric matrix computed once per pair), holding at most about ``max_memory`` bytes of Grams."""
    own = columns is None
    columns, column_count = (rows, count) if own else (columns, column_count)
    block = max(1, max_memory // max(rows.gram_bytes(), 1) - 1)
    result = np.empty((count, column_count), dtype=np.float64)
    for first in range(0, count, block):
        held = {position: rows.get(position) for position in range(first, min(first + block, count))}
        for column in range(min(column_count, first + block) if own else column_count):
            other = held[column] if own and column in held else columns.get(column)
            for position, gram in held.items():
                if own and column > position:
                    continue
                result[position, column] = gram.cka(other)
                if own:
                    result[column, position] = result[position, column]
            del other
    return result
