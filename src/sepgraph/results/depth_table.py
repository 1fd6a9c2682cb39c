"""``depth.csv`` of an analysis (SPEC 22): per run of consecutive same-shape units, how alike each sample's
representation is before and after it (a sample with itself across depth), and the block influence of each unit."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_text
from .layer_row import csv_cell

DEPTH_FILE = "depth.csv"
COLUMNS = ("units", "n_units", "input_point", "output_point", "samples", "mean_cosine", "angular_distance",
           "block_influence")
"""One row per run of units (SPEC 22); ``units`` space-separated; ``block_influence`` only on one-unit runs."""


@dataclass(frozen=True)
class DepthRow:
    """One run of consecutive same-shape units and its depth measures over the analysed samples (SPEC 22).

    Attributes:
        units: the run's units, in network order.
        input_point, output_point: the points compared (the first unit's input, the last unit's output).
        samples: how many samples were averaged over.
        mean_cosine: the mean over samples of cos(x_in, x_out), float64.
        angular_distance: the mean over samples of arccos(cos(x_in, x_out)) / pi (Gromov et al. 2024), in [0, 1].
    """

    units: tuple[str, ...]
    input_point: str
    output_point: str
    samples: int
    mean_cosine: float
    angular_distance: float

    @property
    def block_influence(self) -> float | None:
        """1 - the mean cosine (Men et al. 2025) for a run of one unit; None for longer runs."""
        return 1.0 - self.mean_cosine if len(self.units) == 1 else None


def write_depth(folder: Path, rows: list[DepthRow]) -> None:
    """``depth.csv`` in ``folder``, atomically, floats in shortest round-trip form (a header alone: no runs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([" ".join(row.units), len(row.units), row.input_point, row.output_point, row.samples,
                         csv_cell(row.mean_cosine), csv_cell(row.angular_distance), csv_cell(row.block_influence)])
    atomic_text(folder / DEPTH_FILE, buffer.getvalue())


def load_depth(folder: str | Path) -> list[DepthRow] | None:
    """The rows of an analysis's ``depth.csv``; None where the folder has none (written before SPEC 22)."""
    path = Path(folder) / DEPTH_FILE
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        return [DepthRow(tuple(r["units"].split()), r["input_point"], r["output_point"], int(r["samples"]),
                         float(r["mean_cosine"]), float(r["angular_distance"])) for r in csv.DictReader(handle)]
