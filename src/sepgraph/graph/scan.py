"""One scan of a layer point's pairs (SPEC 3, 4, 5, 7): exact cosine similarity in the tiles of a
:class:`~sepgraph.graph.tiles.TilePlan`, folded into the full-set histogram, the top-|E| subgraph and the
batches' similarity matrices.

The N x N similarity matrix is never held: one tile ``U[I] @ U[J].T`` at a time is computed by the plan's
:mod:`~sepgraph.graph.gemm` engine (on the diagonal, what lies below it is left out) and folded into a
:class:`PairAccumulator`. Products run in full float32, never TF32 (see
:func:`sepgraph.devices.ieee_float32_matmul`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import SepgraphError
from .accumulators import Alone, BatchGather, BinTally, Histogram, MeanParts, Reducer, Subgraph, TopPairs
from .tiles import Tile, TilePlan

DEFAULT_MAX_MEMORY = 4 << 30
"""The memory budget of a scan called on its own: tiles of up to 1 GiB of working memory."""


@dataclass(frozen=True, eq=False)
class ScanRequest:
    """What one scan measures (SPEC 4, 5, 7); the rows are those of the scan's :class:`TilePlan`.

    Attributes:
        bins: histogram bins over [0, 1]; 0: no histogram.
        hist_positions: (H,) int64 rows whose pairs the histogram counts; None: every row.
        edges: |E| of the subgraph among rows ``0..vertices-1`` (the vertices come first); 0: no subgraph.
        vertices: how many leading rows are the subgraph's vertices.
        batches: (n,) int64 row positions of each batch whose similarity matrix is wanted, in any order, each row once.
        zero_vectors: zero rows among the histogram's, recorded in the histogram.
    """

    bins: int = 0
    hist_positions: np.ndarray | None = None
    edges: int = 0
    vertices: int = 0
    batches: Sequence[np.ndarray] = field(default_factory=tuple)
    zero_vectors: int = 0

    def __post_init__(self) -> None:
        if self.bins < 0 or self.edges < 0:
            raise SepgraphError(f"bins and edges must be 0 (not measured) or more, got {self.bins} and {self.edges}",
                                arguments=("bins", "edges"))
        for batch in self.batches:  # a repeated row's "pair" with itself lies on a diagonal: not a pair
            if len(np.unique(batch)) != len(batch):
                raise SepgraphError(f"a batch of {len(batch)} rows repeats a row; give each row once",
                                    arguments=("batches",))
        pairs = self.vertices * (self.vertices - 1) // 2
        if self.edges and not 1 <= self.edges <= pairs:
            raise SepgraphError(f"edges {self.edges} must be between 1 and the {pairs} pairs among vertices "
                                f"{self.vertices}", arguments=("edges", "vertices"))


@dataclass
class PairScan:
    """What one scan found.

    Attributes:
        histogram: over all pairs of the histogram's rows; None when ``bins`` was 0.
        subgraph: the top-|E| pairs among the leading ``vertices`` rows; None when ``edges`` was 0.
        batch_similarities: per batch, its (n, n) float32 similarity matrix (symmetric, diagonal 0).
    """

    histogram: Histogram | None
    subgraph: Subgraph | None
    batch_similarities: list[torch.Tensor]


class PairAccumulator:
    """Folds the tiles of a scan over ``n_rows`` rows into everything ``request`` asks for. Each pair is counted
    once, from the tile that holds it above the diagonal, whatever order the tiles come in; :meth:`reduce` merges
    the partial accumulators of several ranks exactly."""

    def __init__(self, request: ScanRequest, n_rows: int, dims: int, device: torch.device):
        if n_rows < 2:
            raise SepgraphError(f"similarity needs at least 2 samples, got {n_rows}")
        if request.edges and not 2 <= request.vertices <= n_rows:
            raise SepgraphError(f"the subgraph needs between 2 and {n_rows} vertices, got {request.vertices}")
        self.request, self.n_rows = request, n_rows
        self.hist_mask = None
        if request.hist_positions is not None:
            self.hist_mask = torch.zeros(n_rows, dtype=torch.bool, device=device)
            self.hist_mask[torch.as_tensor(request.hist_positions, device=device)] = True
        self.tally = BinTally(request.bins, device) if request.bins else None
        self.mean = MeanParts(dims, device) if request.bins else None
        self.top = TopPairs(request.edges, request.vertices, device) if request.edges else None
        self.gathers = [BatchGather(torch.as_tensor(batch, device=device)) for batch in request.batches]

    def add(self, rows: tuple[int, int], columns: tuple[int, int], tile: torch.Tensor) -> None:
        """Fold in tile ``U[rows] @ U[columns].T`` (clamped into [-1, 1]; overwritten here), rows[0] <= columns[0].
        On a diagonal tile (rows == columns) only the entries above the diagonal are pairs: the others are set to
        -inf first, which the subgraph never takes, the batches drop and the histogram subtracts by their count."""
        diagonal = rows == columns
        if diagonal:
            tile.masked_fill_(_lower_mask(tile.shape[0], tile.device), float("-inf"))
        if self.tally is not None:
            counted = tile
            if self.hist_mask is not None:
                counted = tile[self.hist_mask[rows[0]:rows[1]]][:, self.hist_mask[columns[0]:columns[1]]]
            self.tally.add(counted, not_pairs=counted.shape[0] * (counted.shape[0] + 1) // 2 if diagonal else 0)
        for gather in self.gathers:
            gather.add(rows, columns, tile)
        vertices = self.request.vertices
        if self.top is not None and columns[0] < vertices:
            self.top.add(rows[0], columns[0], tile[: vertices - rows[0], : vertices - columns[0]])

    def add_rows(self, rows: torch.Tensor, first_row: int, plan: TilePlan) -> None:
        """The mean's pieces from this process's (n, D) unit rows, rows ``first_row ..`` of the scan."""
        if self.mean is None:
            return
        stop = first_row + rows.shape[0]
        local = [start - first_row for start in plan.starts if first_row <= start < stop]
        mask = self.hist_mask[first_row:stop] if self.hist_mask is not None else None
        self.mean.add(rows, local, mask)

    def parts(self) -> list[BinTally | MeanParts | TopPairs | BatchGather]:
        """Every accumulator this one holds, in a fixed order (every rank reduces them alike)."""
        return [part for part in (self.tally, self.mean, *self.gathers, self.top) if part is not None]

    def reduce(self, reducer: Reducer) -> None:
        """Merge the ranks' partial accumulators: each part by its own rule."""
        for part in self.parts():
            part.reduce(reducer)

    def result(self) -> PairScan:
        """The finished scan (after :meth:`reduce` when ranks share it)."""
        histogram = None
        if self.tally is not None:
            counted = self.n_rows if self.hist_mask is None else int(self.hist_mask.sum())
            histogram = self.tally.result(counted * (counted - 1) // 2, self.mean.mean(), self.request.zero_vectors)
        return PairScan(histogram, self.top.subgraph() if self.top is not None else None,
                        [gather.result() for gather in self.gathers])


def _lower_mask(rows: int, device: torch.device) -> torch.Tensor:
    """(rows, rows) True on and below the diagonal: the entries of a diagonal tile that are not pairs."""
    return torch.ones(rows, rows, dtype=torch.bool, device=device).tril_()


def fold_tiles(tiles: Iterable[tuple[Tile, torch.Tensor]], request: ScanRequest, plan: TilePlan,
               rows: torch.Tensor, first_row: int) -> PairAccumulator:
    """Fold ``tiles`` (bounds and the product ``U[rows] @ U[columns].T``, computed as they are drawn, in full
    float32) and this process's (n, D) unit ``rows`` (rows ``first_row ..`` of the scan, for the mean) into one
    :class:`PairAccumulator`: the body of :func:`scan_pairs` (one process) and of
    :func:`sepgraph.parallel.merge.scan_layer` (one rank)."""
    accumulator = PairAccumulator(request, plan.n_rows, rows.shape[1], rows.device)
    for (row_start, row_stop, column_start, column_stop), tile in tiles:
        accumulator.add((row_start, row_stop), (column_start, column_stop), tile.clamp_(-1.0, 1.0))
    accumulator.add_rows(rows, first_row, plan)
    return accumulator


def scan_pairs(normed: torch.Tensor, request: ScanRequest, *, max_memory: int = DEFAULT_MAX_MEMORY,
               reducer: Reducer | None = None, gemm: str | None = None) -> PairScan:
    """One pass over the upper triangle of ``normed @ normed.T`` feeding everything ``request`` asks for, in one
    process (SPEC 3, 4, 5, 7): each similarity is computed once, in full float32, in the tiles of
    :meth:`TilePlan.create` (the same tiles any number of processes computes), and clamped into [-1, 1].

    Args:
        normed: (N, D) float32 unit rows (:func:`~sepgraph.graph.rows.unit_rows`) on the compute device.
        max_memory: the memory budget (bytes) the tiles are sized from.
        gemm: the engine of the products (:func:`~sepgraph.graph.gemm.choose_engine`; None: the default engine).
    """
    plan = TilePlan.create(normed.shape[0], max_memory, normed.device, gemm=gemm)
    tiles = ((tile, plan.product(tile, normed[tile[0]:tile[1]], normed[tile[2]:tile[3]]))
             for tile in plan.tiles_among(range(len(plan.starts))))
    accumulator = fold_tiles(tiles, request, plan, normed, 0)
    accumulator.reduce(reducer or Alone())
    return accumulator.result()


def similarity_histogram(normed: torch.Tensor, bins: int = 10, max_memory: int = DEFAULT_MAX_MEMORY,
                         zero_vectors: int = 0) -> Histogram:
    """Histogram of cosine similarity over all N(N-1)/2 pairs of (N, D) unit rows ``normed`` (SPEC 4): ``bins``
    equal bins over [0, 1] (similarities clamped into [-1, 1] first), ``zero_vectors`` recorded."""
    if bins < 1:
        raise SepgraphError(f"bins must be at least 1, got {bins}", arguments=("bins",))
    return scan_pairs(normed, ScanRequest(bins=bins, zero_vectors=zero_vectors), max_memory=max_memory).histogram


def top_edges(normed: torch.Tensor, edges: int, max_memory: int = DEFAULT_MAX_MEMORY) -> Subgraph:
    """The ``edges`` most similar pairs among the rows of ``normed`` (SPEC 5), in O(edges + tile) memory."""
    if edges < 1:
        raise SepgraphError(f"edges must be at least 1, got {edges}", arguments=("edges",))
    request = ScanRequest(edges=edges, vertices=normed.shape[0])
    return scan_pairs(normed, request, max_memory=max_memory).subgraph


def pair_similarities(normed: torch.Tensor, max_memory: int = DEFAULT_MAX_MEMORY) -> torch.Tensor:
    """(N, N) float32 similarity of all rows of ``normed``, from the same tiles as every other
    measurement (symmetric, diagonal 0); for small batches such as Lu et al.'s (SPEC 7)."""
    request = ScanRequest(batches=(np.arange(normed.shape[0], dtype=np.int64),))
    return scan_pairs(normed, request, max_memory=max_memory).batch_similarities[0]
