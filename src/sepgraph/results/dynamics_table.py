"""``dynamics.csv`` of a training run (SPEC 17): one row per measured epoch and layer point, and the measures
it holds."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_text
from .layer_row import csv_cell

COLUMNS = ("epoch", "index", "name", "M", "lu_q_mean", "knn_acc")
"""The columns of dynamics.csv: one row per measured epoch and layer point (epoch 0: before training)."""
MEASURES = {"M": "the paper's M", "lu_q_mean": "Lu et al.'s Q", "knn_acc": "k-NN accuracy"}


@dataclass(frozen=True)
class DynamicsRow:
    """One layer point at one epoch."""

    epoch: int
    index: int
    name: str
    M: float
    lu_q_mean: float
    knn_acc: float


def write_dynamics(path: Path, rows: list[DynamicsRow]) -> None:
    """dynamics.csv, atomically, floats in shortest round-trip form."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([csv_cell(getattr(row, column)) for column in COLUMNS] for row in rows)
    atomic_text(path, buffer.getvalue())


def load_dynamics(path: str | Path) -> list[DynamicsRow]:
    """The rows of a dynamics.csv."""
    with open(path, newline="") as handle:
        return [DynamicsRow(int(r["epoch"]), int(r["index"]), r["name"], float(r["M"]), float(r["lu_q_mean"]),
                            float(r["knn_acc"])) for r in csv.DictReader(handle)]
