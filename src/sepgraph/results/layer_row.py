"""One layer point's measurements as one record: the columns of ``layers.csv`` and the row files
of a results folder (SPEC 4-7, 12).

Criterion I, the figures, the report and the paper's claims read these attributes; the column names
and the JSON form live here and nowhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..graph.accumulators import Histogram
from ..graph.modularity import PaperModularity

SCALAR_COLUMNS = ("below_zero", "mean_sim", "share_below_0_1", "r", "AQ", "EQ", "M", "newman_q", "lu_q_mean",
                  "lu_q_std", "knn_acc", "probe_acc", "cka_prev", "cka_last")
"""The columns of layers.csv after the histogram counts, in order."""

PEER_COLUMNS = ("knn_acc", "probe_acc", "cka_prev", "cka_last")
"""The field's measures beside M (SPEC 13-15), added in results format 3."""


def csv_cell(value: object) -> object:
    """A value as sepgraph's CSV files write it: floats in shortest round-trip form, None empty, others as they are."""
    return repr(value) if isinstance(value, float) else "" if value is None else value


@dataclass(frozen=True)
class LayerRow:
    """What one layer point measured.

    Attributes:
        index, name: the point's position (0-based) and name (SPEC 1).
        dim: flattened feature size C x H x W; ``shape`` is (C, H, W) or the point's own shape.
        hist: (bins,) counts of pair similarities in equal bins over [0, 1] (SPEC 4).
        below_zero: pairs with negative similarity.
        mean_sim: mean similarity over all histogram pairs.
        share_below_0_1: share of histogram pairs with similarity below 0.1.
        r, AQ, EQ, M: the paper's modularity of the top-|E| subgraph (SPEC 6).
        newman_q: Newman's weighted Q of the same subgraph.
        lu_q_mean, lu_q_std: mean and sample standard deviation of Lu et al.'s Q over the batches (SPEC 7).
        lu_q_batches: Lu et al.'s Q of each batch, in batch order.
        knn_acc: leave-one-out k-NN accuracy of the vertices (SPEC 13).
        probe_acc: cross-validated accuracy of a linear probe on the vertices (SPEC 14).
        cka_prev, cka_last: linear CKA with the previous and with the last layer point (SPEC 15); cka_prev
            is None at the first point. All four are None in folders written before they existed.
        zero_vectors: histogram samples whose feature vector is all zeros (SPEC 3).
        seconds: wall time per stage of this point.
    """

    index: int
    name: str
    dim: int
    hist: tuple[int, ...]
    below_zero: int
    mean_sim: float
    share_below_0_1: float
    r: float
    AQ: float
    EQ: float
    M: float
    newman_q: float
    lu_q_mean: float
    lu_q_std: float
    lu_q_batches: tuple[float, ...]
    knn_acc: float | None
    probe_acc: float | None
    cka_prev: float | None
    cka_last: float | None
    shape: tuple[int, ...]
    zero_vectors: int
    seconds: dict[str, float]

    @classmethod
    def measured(cls, index: int, name: str, shape: Sequence[int], histogram: Histogram, paper: PaperModularity,
                 newman_q: float, lu_q: Sequence[float], measures: Mapping[str, float], zero_vectors: int,
                 seconds: dict[str, float]) -> LayerRow:
        """A point's row from its scan (SPEC 4-7) and its vertex measures by attribute (SPEC 13-14); the CKAs
        (SPEC 15) stay None until the points they compare with are measured."""
        return cls(
            index=index, name=name, dim=math.prod(shape), hist=tuple(int(count) for count in histogram.counts),
            below_zero=histogram.below_zero, mean_sim=histogram.mean, share_below_0_1=histogram.share_below_0_1,
            r=paper.r, AQ=paper.AQ, EQ=paper.EQ, M=paper.M, newman_q=newman_q, lu_q_mean=float(np.mean(lu_q)),
            lu_q_std=float(np.std(lu_q, ddof=1)) if len(lu_q) > 1 else 0.0, lu_q_batches=tuple(map(float, lu_q)),
            **dict.fromkeys(PEER_COLUMNS) | dict(measures), shape=tuple(shape), zero_vectors=zero_vectors,
            seconds=seconds)

    @property
    def wrong_edge_share(self) -> float:
        """Share of the subgraph's edges that join two classes, 1 - r."""
        return 1.0 - self.r

    @staticmethod
    def csv_columns(bins: int) -> list[str]:
        """The header of layers.csv for ``bins`` histogram bins (SPEC 12)."""
        return ["index", "name", "dim", *(f"hist_{b}" for b in range(bins)), *SCALAR_COLUMNS]

    def csv_values(self) -> list[int | str]:
        """The row of layers.csv: integers as they are, floats in shortest round-trip form, None empty."""
        return [self.index, self.name, self.dim, *self.hist, *(csv_cell(getattr(self, c)) for c in SCALAR_COLUMNS)]

    def as_record(self) -> dict[str, object]:
        """The CSV columns by name, numbers as numbers (for pandas and tables)."""
        record = {"index": self.index, "name": self.name, "dim": self.dim}
        record.update({f"hist_{b}": count for b, count in enumerate(self.hist)})
        record.update({column: getattr(self, column) for column in SCALAR_COLUMNS})
        return record

    def to_json(self) -> dict[str, object]:
        """The row file's content: every attribute under its own name."""
        return asdict(self) | {"hist": list(self.hist), "lu_q_batches": list(self.lu_q_batches),
                               "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LayerRow:
        """Inverse of :meth:`to_json`; the peer measures (SPEC 13-15) are None where a row predates them."""
        values = {field.name: data.get(field.name) if field.name in PEER_COLUMNS else data[field.name]
                  for field in fields(cls)}
        return cls(**values | {"hist": tuple(values["hist"]), "lu_q_batches": tuple(values["lu_q_batches"]),
                               "shape": tuple(values["shape"])})
