"""Exact cosine similarity in tiles of the upper triangle, full-set histograms and top-|E| subgraphs
(SPEC 3, 4, 5).

The N x N similarity matrix is never held: rows are normalised once, then one tile
``U[I] @ U[J].T`` of tile rows I <= J at a time is computed (one GEMM; on the diagonal, the
lower half of the square is computed too and left out) and folded into the histogram, the
running top-|E| set and the batches' matrices. The tiles are the same whatever the number of
processes sharing them (:mod:`sepgraph.distributed`), so every similarity is the same float.
Products run in full float32, never TF32 (see :func:`sepgraph.devices.ieee_float32_matmul`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .devices import ieee_float32_matmul, one_thread
from .errors import SepgraphError

BYTES_PER_BLOCK_ENTRY = 16
"""Working memory per similarity entry of a block: the float32 value plus bin indices and masks."""

SMALLEST_FLOAT32_NORM = 1e-12
"""Rows with a smaller (or non-finite) float32 norm are normalised in float64. Entries whose squares underflow
(below 1e-19) add at most D x 1.2e-38 to a squared norm of at least 1e-24: under 1e-7 relative for D <= 1e7."""

CPU_TILE_ROWS = 1024
"""Rows of a similarity tile on the CPU: smaller tiles repack their rows for more products (512: 5-11% slower on
the 2-core CPU), larger ones waste more of the diagonal squares."""

CUDA_TILE_ROWS = 4096
"""Rows of a similarity tile on CUDA, where larger products run faster."""


def unit_rows(features: torch.Tensor | np.ndarray, inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-normalise features for cosine similarity (SPEC 3).

    Args:
        features: (N, D) float32; with ``inplace`` a float32 tensor or array is overwritten.

    Returns:
        (N, D) float32 unit rows (zero rows stay zero, so their similarity to every
        vector is 0) and the (N,) bool mask of zero rows. Rows of any finite scale are
        normalised: rows below :data:`SMALLEST_FLOAT32_NORM` or with a non-finite float32 norm go
        through float64.
    """
    tensor = torch.as_tensor(features)
    if tensor.ndim != 2:
        raise SepgraphError(f"features must be a 2-D (samples x dims) array, got shape {tuple(tensor.shape)}")
    if not inplace or tensor.dtype != torch.float32:
        tensor = tensor.to(torch.float32, copy=True)
    if not all(bool(torch.isfinite(chunk).all()) for chunk in tensor.split(1024)):  # no N x D mask in memory
        raise SepgraphError("features contain NaN or Inf (did the model diverge, or the input overflow?)")
    norms, unsafe = float32_row_norms(tensor)
    norms = norms.unsqueeze(1)
    tensor.div_(norms.masked_fill_(unsafe.unsqueeze(1), 1.0))
    zero = torch.zeros(len(tensor), dtype=torch.bool, device=tensor.device)
    rows = torch.nonzero(unsafe).squeeze(1)
    if len(rows):
        exact = tensor[rows].double()
        exact_norms = torch.linalg.vector_norm(exact, dim=1, keepdim=True)
        zero[rows] = (exact_norms == 0).squeeze(1)
        tensor[rows] = exact.div_(exact_norms.masked_fill_(exact_norms == 0, 1.0)).float()
    return tensor, zero


def float32_row_norms(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) float32 norms of the rows of (N, D) float32 ``tensor`` and the (N,) bool mask of those not to trust.

    A float32 sum of squares overflows (inf) for entries near 1e19 and loses entries below 1e-19 (their squares
    are subnormal), which matters only when the norm itself is tiny: such rows (zero rows too) are marked, for
    float64 (:func:`unit_rows`, :func:`exact_row_norms`); every other norm is used as it is.
    """
    norms = torch.linalg.vector_norm(tensor, dim=1)
    return norms, ~torch.isfinite(norms) | (norms < SMALLEST_FLOAT32_NORM)


def exact_row_norms(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N,) float64 row norms of (N, D) float32 features: float32 where that is exact enough, float64 where not."""
    tensor = torch.as_tensor(features)
    norms, unsafe = float32_row_norms(tensor)
    norms = norms.double()
    rows = torch.nonzero(unsafe).squeeze(1)
    if len(rows):
        norms[rows] = torch.linalg.vector_norm(tensor[rows].double(), dim=1)
    return norms


def tile_rows(max_memory: int, device: torch.device | None = None, requested: int | None = None) -> int:
    """Rows (and columns) of one similarity tile: ``requested``, else :data:`CPU_TILE_ROWS` on the CPU and
    :data:`CUDA_TILE_ROWS` on CUDA; fewer only when ``max_memory`` cannot hold one tile. Never depends on the
    number of processes."""
    cap = requested or (CUDA_TILE_ROWS if device is not None and device.type == "cuda" else CPU_TILE_ROWS)
    rows = min(cap, math.isqrt(max(max_memory, 0) // BYTES_PER_BLOCK_ENTRY))
    if rows < 1:
        raise SepgraphError(
            f"--max-memory {max_memory / 2**20:.1f} MiB is too small for one similarity tile "
            f"(needs {BYTES_PER_BLOCK_ENTRY / 2**20:.1f} MiB at least); raise --max-memory"
        )
    return rows


def own_tiles(starts: Sequence[int], samples: int) -> Iterator[tuple[int, int, int, int]]:
    """The tiles (row start, row stop, column start, column stop) of the upper triangle over ``samples`` rows cut at
    ``starts``: every pair of tile rows I <= J once, in row-major order (one process's whole schedule)."""
    bounds = [*starts, samples]
    for first in range(len(starts)):
        for second in range(first, len(starts)):
            yield bounds[first], bounds[first + 1], bounds[second], bounds[second + 1]


def _lower_mask(rows: int, device: torch.device) -> torch.Tensor:
    """(rows, rows) True on and below the diagonal: the entries of a diagonal tile that are not pairs."""
    return torch.ones(rows, rows, dtype=torch.bool, device=device).tril_()


@dataclass
class Histogram:
    """Similarity histogram of all unordered pairs (SPEC 4).

    Attributes:
        counts: (bins,) int64 counts over [0, 1] in equal bins, the last closed on the right.
        below_zero: pairs with negative similarity.
        pairs: N(N-1)/2; ``counts.sum() + below_zero == pairs``.
        mean: mean similarity over all pairs.
        below_0_1: pairs with similarity below 0.1 (negatives included).
        zero_vectors: samples whose feature vector is all zeros.
    """

    counts: np.ndarray
    below_zero: int
    pairs: int
    mean: float
    below_0_1: int
    zero_vectors: int

    @property
    def share_below_0_1(self) -> float:
        return self.below_0_1 / self.pairs


@dataclass
class Subgraph:
    """The |E| strongest pairs among N vertices (SPEC 5).

    Attributes:
        i, j: (E,) int64 vertex positions, i < j, sorted by weight descending then (i, j).
        w: (E,) float32 similarities.
        vertices: N.
    """

    i: np.ndarray
    j: np.ndarray
    w: np.ndarray
    vertices: int


class _TopPairs:
    """Running top-|E| set of (weight, i, j) under SPEC 5's order (weight descending, then (i, j) ascending):
    tiles may arrive in any order, so merges compare (i, j) explicitly."""

    def __init__(self, edges: int, vertices: int, device: torch.device):
        self.edges, self.vertices = edges, vertices
        self.w = torch.empty(0, dtype=torch.float32, device=device)
        self.i = torch.empty(0, dtype=torch.int64, device=device)
        self.j = torch.empty(0, dtype=torch.int64, device=device)

    def add(self, row_start: int, column_start: int, tile: torch.Tensor) -> None:
        """Fold in a tile whose entries that are not pairs are already -inf (row-major order is (i, j) order)."""
        flat = tile.reshape(-1)
        if len(self.w) < self.edges:
            valid = int(torch.isfinite(flat).sum())
            if valid == 0:
                return
            kth = torch.topk(flat, min(self.edges, valid), sorted=False).values.min()
        else:
            kth = self.w[-1]
        chosen = torch.cat([torch.nonzero(flat > kth).squeeze(1),
                            torch.nonzero(flat == kth).squeeze(1)[: self.edges]])  # the smallest (i, j) of the ties
        if len(chosen):
            columns = tile.shape[1]
            self.merge(flat[chosen], row_start + chosen // columns, column_start + chosen % columns)

    def merge(self, w: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> None:
        """Keep the top |E| of the current set and the candidates (w, i, j)."""
        w, i, j = torch.cat([self.w, w]), torch.cat([self.i, i]), torch.cat([self.j, j])
        by_pair = torch.argsort(i * self.vertices + j, stable=True)
        w, i, j = w[by_pair], i[by_pair], j[by_pair]
        order = torch.sort(w, descending=True, stable=True).indices[: self.edges]
        self.w, self.i, self.j = w[order], i[order], j[order]

    def subgraph(self) -> Subgraph:
        return Subgraph(self.i.cpu().numpy(), self.j.cpu().numpy(), self.w.cpu().numpy(), self.vertices)


def similarity_histogram(
    unit: torch.Tensor, bins: int = 10, max_memory: int = 1 << 30, zero_vectors: int = 0
) -> Histogram:
    """Histogram of cosine similarity over all N(N-1)/2 pairs of unit rows (SPEC 4).

    Args:
        unit: (N, D) float32 unit rows from :func:`unit_rows`, on the compute device.
        bins: equal bins over [0, 1]; similarities are clamped into [-1, 1] first.
        max_memory: bytes for one tile.
        zero_vectors: number of zero rows, recorded in the result.
    """
    if bins < 1:
        raise SepgraphError(f"--bins must be at least 1, got {bins}")
    return scan_pairs(unit, bins=bins, max_memory=max_memory, zero_vectors=zero_vectors).histogram


def top_edges(unit: torch.Tensor, edges: int, max_memory: int = 1 << 30) -> Subgraph:
    """The ``edges`` most similar pairs among the rows of ``unit`` (SPEC 5), in O(edges + tile) memory."""
    if edges < 1:
        raise SepgraphError(f"--edges must be at least 1, got {edges}")
    return scan_pairs(unit, bins=0, edges=edges, vertices=unit.shape[0], max_memory=max_memory).subgraph


def pair_similarities(unit: torch.Tensor, max_memory: int = 1 << 30) -> torch.Tensor:
    """(N, N) float32 similarity of all rows of ``unit``, from the same tiles as every other
    measurement (symmetric, diagonal 0); for small batches such as Lu et al.'s (SPEC 7)."""
    rows = np.arange(unit.shape[0], dtype=np.int64)
    return scan_pairs(unit, bins=0, batches=[rows], max_memory=max_memory).batch_similarities[0]


@dataclass
class PairScan:
    """What one pass over the pairs of a layer point's samples found (see :func:`scan_pairs`).

    Attributes:
        histogram: over all pairs of the histogram's rows; None when ``bins`` was 0.
        subgraph: the top-|E| pairs among the leading ``vertices`` rows; None when ``edges`` was 0.
        batch_similarities: per batch, its (n, n) float32 similarity matrix (symmetric, diagonal 0).
    """

    histogram: Histogram | None
    subgraph: Subgraph | None
    batch_similarities: list[torch.Tensor]


class PairAccumulator:
    """Folds similarity tiles into every measurement of a layer point (SPEC 4, 5, 7): the histogram's integer
    counts, the running top-|E| set of the vertices and Lu et al.'s batch matrices. Each pair is counted once,
    from the tile that holds it above the diagonal, whatever order the tiles come in; partial accumulators of
    several processes merge exactly (:mod:`sepgraph.distributed`).

    Args:
        samples: N, the rows of the whole scan.
        bins: histogram bins over [0, 1]; 0: no histogram.
        hist: (N,) bool, the rows whose pairs the histogram counts; None: all rows.
        edges: |E| among rows ``0..vertices-1`` (the vertices come first); 0: no subgraph.
        batches: Lu et al.'s batches as (n,) int64 row positions, in any order.
    """

    def __init__(self, samples: int, *, bins: int = 10, hist: torch.Tensor | None = None, edges: int = 0,
                 vertices: int = 0, batches: Sequence[np.ndarray] = (), device: torch.device):
        if samples < 2:
            raise SepgraphError(f"similarity needs at least 2 samples, got {samples}")
        if bins < 0 or edges < 0:
            raise SepgraphError(f"bins and edges must be 0 (not measured) or more, got {bins} and {edges}")
        if edges:
            pairs = vertices * (vertices - 1) // 2
            if not 2 <= vertices <= samples:
                raise SepgraphError(f"the subgraph needs between 2 and {samples} vertices, got {vertices}")
            if not 1 <= edges <= pairs:
                raise SepgraphError(
                    f"--edges {edges} must be between 1 and the {pairs} pairs among {vertices} vertices"
                )
        self.samples, self.vertices, self.hist = samples, vertices, hist
        self.tally = _Tally(bins, device) if bins else None
        self.top = _TopPairs(edges, vertices, device) if edges else None
        self.gathers = [_BatchGather(torch.as_tensor(batch, device=device)) for batch in batches]

    def add(self, rows: tuple[int, int], columns: tuple[int, int], tile: torch.Tensor) -> None:
        """Fold in tile ``U[rows] @ U[columns].T`` (clamped into [-1, 1]; overwritten here), rows[0] <= columns[0].
        On a diagonal tile (rows == columns) only the entries above the diagonal are pairs."""
        diagonal = rows == columns
        if self.tally is not None:
            counted = tile
            if self.hist is not None:
                counted = tile[self.hist[rows[0]:rows[1]]][:, self.hist[columns[0]:columns[1]]]
            self.tally.add(counted, sign=1)
            if diagonal:
                self.tally.add(counted[_lower_mask(counted.shape[0], tile.device)], sign=-1)
        for gather in self.gathers:
            gather.add(rows, columns, tile)
        if self.top is not None and columns[0] < self.vertices:
            block = tile[: self.vertices - rows[0], : self.vertices - columns[0]]
            if diagonal:
                block.masked_fill_(_lower_mask(block.shape[0], tile.device), float("-inf"))
            self.top.add(rows[0], columns[0], block)

    def result(self, mean: float, zero_vectors: int = 0) -> PairScan:
        """The finished scan; ``mean`` from :func:`pair_mean` over the same histogram rows."""
        histogram = None
        if self.tally is not None:
            counted = self.samples if self.hist is None else int(self.hist.sum())
            histogram = self.tally.result(counted * (counted - 1) // 2, mean, zero_vectors)
        return PairScan(histogram, self.top.subgraph() if self.top is not None else None,
                        [gather.result() for gather in self.gathers])


def scan_pairs(
    unit: torch.Tensor, *, bins: int = 10, hist: np.ndarray | None = None, edges: int = 0, vertices: int = 0,
    batches: Sequence[np.ndarray] = (), max_memory: int = 1 << 30, zero_vectors: int = 0,
) -> PairScan:
    """One pass over the upper triangle of ``unit @ unit.T`` feeding every measurement of a layer point
    (SPEC 3, 4, 5, 7) in one process: each similarity is computed once, in full float32, in the tiles of
    :func:`tile_rows` (the same tiles any number of processes computes), and clamped into [-1, 1].

    Args:
        unit: (N, D) float32 unit rows on the compute device.
        bins: histogram bins; 0: no histogram.
        hist: (H,) int64 row positions whose pairs the histogram counts; None: all N(N-1)/2 pairs.
        edges: |E| of the subgraph among rows ``0..vertices-1`` (the vertices come first); 0: no subgraph.
        vertices: how many leading rows are the subgraph's vertices.
        batches: Lu et al.'s batches as (n,) int64 row positions, in any order; their pairs are read from
            the same tiles.
        max_memory: bytes for one tile.
        zero_vectors: number of zero rows among the histogram's, recorded in the histogram.
    """
    samples = unit.shape[0]
    starts = list(range(0, samples, tile_rows(max_memory, unit.device)))
    tiles = (((a, b, c, d), unit[a:b] @ unit[c:d].T) for a, b, c, d in own_tiles(starts, samples))
    accumulator, sums, squares = fold_tiles(tiles, unit, 0, samples, starts, bins=bins, hist=hist, edges=edges,
                                            vertices=vertices, batches=batches)
    return accumulator.result(pair_mean(sums, squares) if bins else 0.0, zero_vectors)


def fold_tiles(
    tiles: Iterable[tuple[tuple[int, int, int, int], torch.Tensor]], own: torch.Tensor, own_start: int,
    samples: int, starts: Sequence[int], *, bins: int, hist: np.ndarray | None, edges: int, vertices: int,
    batches: Sequence[np.ndarray],
) -> tuple[PairAccumulator, list[torch.Tensor], torch.Tensor]:
    """Fold ``tiles`` (bounds and the product ``U[rows] @ U[columns].T``, computed as they are drawn, in full
    float32) into a :class:`PairAccumulator` over ``samples`` rows cut at ``starts``, and take
    :func:`mean_parts` of the rows ``own`` (rows ``own_start ..``) when a histogram is counted: the body of
    :func:`scan_pairs` (one process) and of :func:`sepgraph.distributed.scan_layer` (one rank).

    ``hist``: (H,) int64 rows whose pairs the histogram counts; None: all. Others as for :func:`scan_pairs`.
    """
    device = own.device
    mask = None
    if hist is not None:
        mask = torch.zeros(samples, dtype=torch.bool, device=device)
        mask[torch.as_tensor(hist, device=device)] = True
    accumulator = PairAccumulator(samples, bins=bins, hist=mask, edges=edges, vertices=vertices, batches=batches,
                                  device=device)
    with ieee_float32_matmul():
        for (row_start, row_stop, column_start, column_stop), tile in tiles:
            accumulator.add((row_start, row_stop), (column_start, column_stop), tile.clamp_(-1.0, 1.0))
    if not bins:
        return accumulator, [], own.new_zeros(0, dtype=torch.float64)
    stop = own_start + own.shape[0]
    local = [first - own_start for first in starts if own_start <= first < stop]
    sums, squares = mean_parts(own, local, mask[own_start:stop] if mask is not None else None)
    return accumulator, sums, squares


class _BatchGather:
    """Collects the pairs of one batch from the tiles. With the batch's rows in ascending order, entry (a, c),
    a < c, is written from the tile holding it above the diagonal; the matrix is mirrored and put back into the
    batch's own order at the end. Partial gathers of several processes add up exactly (each entry is written by
    one of them, the others hold 0 there)."""

    def __init__(self, batch: torch.Tensor):
        self.rows, self.order = torch.sort(batch)
        self.matrix = torch.zeros(len(batch), len(batch), dtype=torch.float32, device=batch.device)
        first = int(self.rows[0])
        contiguous = torch.equal(batch, torch.arange(first, first + len(batch), device=batch.device))
        self.offset = first if contiguous else None  # an ascending run of rows (the vertices): copied by slices

    def add(self, rows: tuple[int, int], columns: tuple[int, int], tile: torch.Tensor) -> None:
        if self.offset is not None:
            end = self.offset + len(self.rows)
            low, high = max(rows[0], self.offset), min(rows[1], end)
            left, right = max(columns[0], self.offset), min(columns[1], end)
            if low < high and left < right:
                self.matrix[low - self.offset:high - self.offset, left - self.offset:right - self.offset] = \
                    tile[low - rows[0]:high - rows[0], left - columns[0]:right - columns[0]]
            return
        down = torch.nonzero((self.rows >= rows[0]) & (self.rows < rows[1])).squeeze(1)
        across = torch.nonzero((self.rows >= columns[0]) & (self.rows < columns[1])).squeeze(1)
        if len(down) and len(across):
            values = tile[self.rows[down] - rows[0]][:, self.rows[across] - columns[0]]
            self.matrix[down.unsqueeze(1), across.unsqueeze(0)] = values

    def result(self) -> torch.Tensor:
        upper = self.matrix.triu_(1)  # entries below it came from the lower half of diagonal tiles: not pairs
        symmetric = upper.add_(upper.T.clone())
        if self.offset is not None:  # a run of rows is already in its own order
            return symmetric
        rank = torch.argsort(self.order)
        return symmetric[rank.unsqueeze(1), rank.unsqueeze(0)]


class _Tally:
    """Exact integer bin counts; entries that are not pairs are subtracted back out.

    A value v goes to bin ``floor(v * bins)`` computed in float32 (so a value equal to an
    edge k/bins opens bin k), values of 1 or more to the last bin, negatives to ``below_zero``.
    """

    def __init__(self, bins: int, device: torch.device):
        self.bins = bins
        self.counts = torch.zeros(bins + 1, dtype=torch.int64, device=device)
        self.below_0_1 = torch.zeros(1, dtype=torch.int64, device=device)

    def add(self, values: torch.Tensor, sign: int) -> None:
        slots = (values * self.bins).floor_().clamp_(-1, self.bins - 1).add_(1).to(torch.int64)
        self.counts += sign * torch.bincount(slots.reshape(-1), minlength=self.bins + 1)
        if self.bins % 10:
            self.below_0_1 += sign * (values < 0.1).sum()

    def result(self, pairs: int, mean: float, zero_vectors: int) -> Histogram:
        counts = self.counts.cpu().numpy()
        below_0_1 = int(counts[: 1 + self.bins // 10].sum()) if self.bins % 10 == 0 else int(self.below_0_1)
        histogram = Histogram(counts[1:], int(counts[0]), pairs, mean, below_0_1, zero_vectors)
        if int(counts.sum()) != pairs:
            raise AssertionError(f"histogram holds {int(counts.sum())} of {pairs} pairs")
        return histogram


def mean_parts(unit: torch.Tensor, starts: Sequence[int], hist: torch.Tensor | None = None
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The pieces of :func:`pair_mean` from rows ``unit`` cut at tile starts ``starts`` (relative to ``unit``):
    per tile row, the (D,) float32 column sum of its histogram rows as float64, and the (H,) float64 squared norms
    of those rows, in row order. ``hist``: (N,) bool, None: all. The sums run on one CPU thread, whose order of
    additions is fixed, so they are the same floats whatever the threads of the process."""
    bounds = [*starts, unit.shape[0]]
    sums, squares = [], []
    with one_thread():
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            rows = unit[start:stop] if hist is None else unit[start:stop][hist[start:stop]]
            sums.append(rows.sum(0).double())
            squares.append(torch.linalg.vector_norm(rows, dim=1).double().pow(2))
    return sums, torch.cat(squares) if squares else unit.new_zeros(0, dtype=torch.float64)


def pair_mean(sums: Sequence[torch.Tensor], squares: torch.Tensor) -> float:
    """Mean of u_i . u_j over pairs i < j from (|sum u|^2 - sum |u_i|^2) / 2, with no pairwise work (SPEC 4):
    the column sums of :func:`mean_parts` are added in tile-row order, the two sums of squares are exactly
    rounded (``math.fsum``), so the mean does not depend on how the rows were shared out."""
    samples = len(squares)
    column_sums = torch.zeros_like(sums[0])
    for part in sums:
        column_sums += part
    total = math.fsum(column_sums.square().cpu().numpy()) - math.fsum(squares.cpu().numpy())
    return total / 2 / (samples * (samples - 1) // 2)


def mean_pair_similarity(unit: torch.Tensor) -> float:
    """Mean similarity over all pairs of rows of ``unit`` (:func:`pair_mean` in CPU tiles)."""
    return pair_mean(*mean_parts(unit, list(range(0, unit.shape[0], CPU_TILE_ROWS))))
