"""``cka_matrix.csv`` (SPEC 24): linear CKA between every pair of layer points of one analysis, or between the points
of two models (``sepgraph compare``), one row per point of the first, one column per point of the second."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..files import atomic_text
from .layer_row import csv_cell

CKA_FILE = "cka_matrix.csv"


def write_cka_matrix(path: Path, rows: list[str], columns: list[str], matrix: np.ndarray) -> None:
    """The (len(rows), len(columns)) matrix as CSV at ``path``, atomically: a header ``point`` + the column names,
    then each row's name and its values in shortest round-trip form."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["point", *columns])
    for name, values in zip(rows, matrix, strict=True):
        writer.writerow([name, *(csv_cell(float(value)) for value in values)])
    atomic_text(path, buffer.getvalue())


def load_cka_matrix(path: str | Path) -> tuple[list[str], list[str], np.ndarray] | None:
    """(row names, column names, float64 matrix) of a CKA matrix file; a folder means its ``cka_matrix.csv``; None
    where there is none (an analysis written before SPEC 24: ``sepgraph analyze --resume`` adds it)."""
    path = Path(path)
    path = path / CKA_FILE if path.is_dir() else path
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        header, *lines = list(csv.reader(handle))
    return ([line[0] for line in lines], header[1:],
            np.array([[float(value) for value in line[1:]] for line in lines], dtype=np.float64).reshape(
                len(lines), len(header) - 1))
