"""The options of one analysis, as two small records that check themselves once (SPEC 2-7, 12).

:class:`GraphSettings` holds what decides the numbers (sample choice, graph sizes, bins, Lu et al.'s
batches) and is recorded in ``manifest.json`` field by field; :class:`RunSettings` holds how the
work runs (device, memory, batch size), which never changes a number.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from .errors import SepgraphError

VERTEX_CHOICES = ("stratified", "first")


@dataclass(frozen=True)
class GraphSettings:
    """The graph options of an analysis (SPEC 2-7); invalid values fail at construction.

    Attributes:
        vertices: subgraph vertices N (SPEC 5).
        edges: subgraph edges |E|, at most N(N-1)/2.
        hist_samples: samples whose pairs the histograms count: ``"all"`` or a number (SPEC 4).
        bins: histogram bins over [0, 1].
        vertex_choice: ``stratified`` (seeded, equal per class) or ``first`` (SPEC 2).
        seed: seed of the stratified choice and of a model built without weights.
        lu_k, lu_batch_size, lu_batches: Lu et al.'s kNN k, batch size and number of batches (SPEC 7).
        knn_k: neighbours of the vertices' leave-one-out k-NN accuracy (SPEC 13).
        probe_ridge: lambda of the vertices' linear probe (SPEC 14).
    """

    vertices: int = 4000
    edges: int = 40000
    hist_samples: int | str = "all"
    bins: int = 10
    vertex_choice: str = "stratified"
    seed: int = 0
    lu_k: int = 3
    lu_batch_size: int = 500
    lu_batches: int = 5
    knn_k: int = 10
    probe_ridge: float = 1.0

    def __post_init__(self) -> None:
        pairs = self.vertices * (self.vertices - 1) // 2
        if self.vertices < 2:
            raise SepgraphError(f"vertices must be at least 2, got {self.vertices}", arguments=("vertices",))
        if not 1 <= self.edges <= pairs:
            raise SepgraphError(f"edges {self.edges} must be between 1 and the {pairs} pairs among vertices "
                                f"{self.vertices}", arguments=("edges", "vertices"))
        if self.hist_samples != "all" and (not isinstance(self.hist_samples, int) or self.hist_samples < 2):
            raise SepgraphError(f"hist_samples must be 'all' or a number of at least 2, got {self.hist_samples!r}",
                                arguments=("hist_samples",))
        if self.bins < 1:
            raise SepgraphError(f"bins must be at least 1, got {self.bins}", arguments=("bins",))
        if self.vertex_choice not in VERTEX_CHOICES:
            raise SepgraphError(f"vertex_choice {self.vertex_choice!r} is unknown; choose one of "
                                f"{', '.join(VERTEX_CHOICES)}", arguments=("vertex_choice",))
        if self.seed < 0:
            raise SepgraphError(f"seed must be 0 or more, got {self.seed}", arguments=("seed",))
        if self.lu_batch_size < 2 or self.lu_batches < 1:
            raise SepgraphError(
                f"Lu et al.'s Q needs batches of at least 2 samples, got lu_batches {self.lu_batches} x "
                f"lu_batch_size {self.lu_batch_size}", arguments=("lu_batches", "lu_batch_size"))
        if not 1 <= self.lu_k < self.lu_batch_size:
            raise SepgraphError(f"lu_k {self.lu_k} must be between 1 and lu_batch_size - 1 ({self.lu_batch_size - 1})",
                                arguments=("lu_k", "lu_batch_size"))
        if not 1 <= self.knn_k < self.vertices:
            raise SepgraphError(f"knn_k {self.knn_k} must be between 1 and vertices - 1 ({self.vertices - 1})",
                                arguments=("knn_k", "vertices"))
        if not 0 < self.probe_ridge < float("inf"):
            raise SepgraphError(f"probe_ridge must be a positive number, got {self.probe_ridge}",
                                arguments=("probe_ridge",))

    @classmethod
    def from_parameters(cls, parameters: dict) -> GraphSettings:
        """The settings recorded in a manifest's ``parameters`` (which hold them field by field)."""
        return cls(**{field.name: parameters[field.name] for field in fields(cls)})


@dataclass(frozen=True)
class RunSettings:
    """How an analysis runs; recorded in the manifest's ``run`` entry, never part of its numbers.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        max_memory: bytes of features held at once; None: :func:`sepgraph.devices.default_max_memory`.
        spill_dir: one forward pass for all points, features streamed to files here (see
            :func:`sepgraph.analysis.features.extract_features`).
        batch_size: images per forward pass.
        tile_rows: rows of a similarity tile (SPEC 3); None: 1,024 on the CPU, 4,096 on CUDA. Runs with other
            numbers of processes give the same bytes at the same tile rows (SPEC 18).
        gemm: the engine of the tile products, ``auto``, ``torch`` or ``openblas`` (SPEC 3,
            :mod:`sepgraph.graph.gemm`); None: the default engine of every entry point (``auto``); recorded, and a
            resumed folder must use the same one.
    """

    device: str = "auto"
    max_memory: int | None = None
    spill_dir: str | Path | None = None
    batch_size: int = 256
    tile_rows: int | None = None
    gemm: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise SepgraphError(f"batch_size must be at least 1, got {self.batch_size}", arguments=("batch_size",))
        if self.tile_rows is not None and self.tile_rows < 1:
            raise SepgraphError(f"tile_rows must be at least 1, got {self.tile_rows}", arguments=("tile_rows",))
        if self.max_memory is not None and self.max_memory < 1:
            raise SepgraphError(f"max_memory must be a positive size such as 512M or 2G, got {self.max_memory}",
                                arguments=("max_memory",))
