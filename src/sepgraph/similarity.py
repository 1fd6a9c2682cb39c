"""Exact cosine similarity in upper-triangle blocks, full-set histograms and top-|E| subgraphs
(SPEC 3, 4, 5).

The N x N similarity matrix is never held: rows are normalised once, then one
block row ``U[a:b] @ U[a:].T`` at a time is computed (one GEMM, the upper triangle
only, plus the lower half of its diagonal square) and folded into the histogram
and the running top-|E| set. Products run in full float32, never TF32 (see
:func:`sepgraph.devices.ieee_float32_matmul`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .devices import ieee_float32_matmul
from .errors import SepgraphError

BYTES_PER_BLOCK_ENTRY = 16
"""Working memory per similarity entry of a block: the float32 value plus bin indices and masks."""

SMALLEST_FLOAT32_NORM = 1e-12
"""Rows with a smaller (or non-finite) float32 norm are normalised in float64. Entries whose squares underflow
(below 1e-19) add at most D x 1.2e-38 to a squared norm of at least 1e-24: under 1e-7 relative for D <= 1e7."""

MAX_BLOCK_ROWS = 512
"""Rows per block at most: larger blocks waste more of the diagonal square and gain no GEMM speed."""


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


def block_rows(samples: int, max_memory: int, device: torch.device | None = None) -> int:
    """Rows per block so that one block row (rows x samples entries) fits ``max_memory``."""
    rows = max_memory // (samples * BYTES_PER_BLOCK_ENTRY)
    if rows < 1:
        raise SepgraphError(
            f"--max-memory {max_memory / 2**20:.1f} MiB is too small for one block row of {samples} similarities "
            f"(needs {samples * BYTES_PER_BLOCK_ENTRY / 2**20:.1f} MiB); raise --max-memory"
        )
    cap = samples if device is not None and device.type == "cuda" else MAX_BLOCK_ROWS
    return int(min(rows, cap, samples))


def upper_blocks(unit: torch.Tensor, rows: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, S)`` with ``S = unit[start:start+rows] @ unit[start:].T`` of shape (r, N - start).

    Entry (a, c) of S is the similarity of samples ``start + a`` and ``start + c``; only
    entries with c > a are pairs of the upper triangle.
    """
    samples = unit.shape[0]
    for start in range(0, samples, rows):
        yield start, unit[start:start + rows] @ unit[start:].T


def _lower_mask(rows: int, device: torch.device) -> torch.Tensor:
    """(rows, rows) True on and below the diagonal: the entries of a block's diagonal square that are not pairs."""
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
    """Running top-|E| set of (weight, i, j), ties to the smaller (i, j): blocks arrive in row order."""

    def __init__(self, edges: int, device: torch.device):
        self.edges = edges
        self.w = torch.empty(0, dtype=torch.float32, device=device)
        self.i = torch.empty(0, dtype=torch.int64, device=device)
        self.j = torch.empty(0, dtype=torch.int64, device=device)

    def add(self, start: int, block: torch.Tensor) -> None:
        """Fold in a block whose non-pair entries are already -inf."""
        flat = block.reshape(-1)
        if len(self.w) < self.edges:
            valid = int(torch.isfinite(flat).sum())
            if valid == 0:
                return
            k = min(self.edges, valid)
            kth = torch.topk(flat, k, sorted=False).values.min()
            above = torch.nonzero(flat > kth).squeeze(1)
            ties = torch.nonzero(flat == kth).squeeze(1)[: k - len(above)]
            chosen = torch.cat([above, ties]).sort().values
        else:
            chosen = torch.nonzero(flat > self.w[-1]).squeeze(1)
            if len(chosen) == 0:
                return
        columns = block.shape[1]
        w = torch.cat([self.w, flat[chosen]])
        i = torch.cat([self.i, start + chosen // columns])
        j = torch.cat([self.j, start + chosen % columns])
        order = torch.sort(w, descending=True, stable=True).indices[: self.edges]
        self.w, self.i, self.j = w[order], i[order], j[order]


def similarity_histogram(
    unit: torch.Tensor, bins: int = 10, max_memory: int = 1 << 30, zero_vectors: int = 0
) -> Histogram:
    """Histogram of cosine similarity over all N(N-1)/2 pairs of unit rows (SPEC 4).

    Args:
        unit: (N, D) float32 unit rows from :func:`unit_rows`, on the compute device.
        bins: equal bins over [0, 1]; similarities are clamped into [-1, 1] first.
        max_memory: bytes for one block row.
        zero_vectors: number of zero rows, recorded in the result.
    """
    if bins < 1:
        raise SepgraphError(f"--bins must be at least 1, got {bins}")
    return scan_pairs(unit, bins=bins, max_memory=max_memory, zero_vectors=zero_vectors).histogram


def top_edges(unit: torch.Tensor, edges: int, max_memory: int = 1 << 30) -> Subgraph:
    """The ``edges`` most similar pairs among the rows of ``unit`` (SPEC 5), in O(edges + block) memory."""
    if edges < 1:
        raise SepgraphError(f"--edges must be at least 1, got {edges}")
    return scan_pairs(unit, bins=0, edges=edges, vertices=unit.shape[0], max_memory=max_memory).subgraph


def pair_similarities(unit: torch.Tensor, max_memory: int = 1 << 30) -> torch.Tensor:
    """(N, N) float32 similarity of all rows of ``unit``, from the same upper-triangle scan as every other
    measurement (symmetric, diagonal 0); for small batches such as Lu et al.'s (SPEC 7)."""
    rows = np.arange(unit.shape[0], dtype=np.int64)
    return scan_pairs(unit, bins=0, batches=[rows], max_memory=max_memory).batch_similarities[0]


@dataclass
class PairScan:
    """What one pass over the pairs of a layer point's samples found (see :func:`scan_pairs`).

    Attributes:
        histogram: over all pairs of the scanned rows; None when ``bins`` was 0.
        subgraph: the top-|E| pairs among the leading ``vertices`` rows; None when ``edges`` was 0.
        batch_similarities: per batch, its (n, n) float32 similarity matrix (symmetric, diagonal 0).
    """

    histogram: Histogram | None
    subgraph: Subgraph | None
    batch_similarities: list[torch.Tensor]


def scan_pairs(
    unit: torch.Tensor, *, bins: int = 10, edges: int = 0, vertices: int = 0,
    batches: Sequence[np.ndarray] = (), max_memory: int = 1 << 30, zero_vectors: int = 0,
) -> PairScan:
    """One pass over the upper triangle of ``unit @ unit.T`` feeding every measurement of a layer point
    (SPEC 4, 5, 7): each similarity is computed once, in full float32, and clamped into [-1, 1].

    Args:
        unit: (N, D) float32 unit rows on the compute device.
        bins: histogram bins over all N(N-1)/2 pairs; 0: no histogram.
        edges: |E| of the subgraph among rows ``0..vertices-1`` (the vertices come first); 0: no subgraph.
        vertices: how many leading rows are the subgraph's vertices.
        batches: Lu et al.'s batches as (n,) int64 row positions, in any order; their pairs are read from
            the same blocks.
        max_memory: bytes for one block row.
        zero_vectors: number of zero rows, recorded in the histogram.
    """
    samples = unit.shape[0]
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
    device = unit.device
    rows = block_rows(samples, max_memory, device)
    lower = _lower_mask(rows, device)
    tally = _Tally(bins, device) if bins else None
    top = _TopPairs(edges, device) if edges else None
    gathers = [_BatchGather(torch.as_tensor(batch, device=device)) for batch in batches]
    with ieee_float32_matmul():
        for start, block in upper_blocks(unit, rows):
            block.clamp_(-1.0, 1.0)
            height = block.shape[0]
            not_pairs = lower[:height, :height]
            if tally is not None:
                tally.add(block, sign=1)
                tally.add(block[:, :height][not_pairs], sign=-1)
            for gather in gathers:
                gather.add(start, block)
            if top is not None and start < vertices:
                block[:, :height].masked_fill_(not_pairs, float("-inf"))
                top.add(start, block[: vertices - start, : vertices - start])
    histogram = tally.result(samples * (samples - 1) // 2, mean_pair_similarity(unit), zero_vectors) if tally else None
    subgraph = None
    if top is not None:
        subgraph = Subgraph(top.i.cpu().numpy(), top.j.cpu().numpy(), top.w.cpu().numpy(), vertices)
    return PairScan(histogram, subgraph, [gather.result() for gather in gathers])


class _BatchGather:
    """Collects the pairs of one batch from the block rows. With the batch's rows in ascending order, entry
    (a, c), a < c, is written once, from the block holding the row of a; the matrix is mirrored and put back
    into the batch's own order at the end."""

    def __init__(self, batch: torch.Tensor):
        self.rows, self.order = torch.sort(batch)
        self.matrix = torch.zeros(len(batch), len(batch), dtype=torch.float32, device=batch.device)
        first = int(self.rows[0])
        contiguous = torch.equal(batch, torch.arange(first, first + len(batch), device=batch.device))
        self.offset = first if contiguous else None  # an ascending run of rows (the vertices): copied by slices

    def add(self, start: int, block: torch.Tensor) -> None:
        if self.offset is not None:
            end = self.offset + len(self.rows)
            low, high = max(start, self.offset), min(start + block.shape[0], end)
            if low < high:
                self.matrix[low - self.offset:high - self.offset, low - self.offset:] = \
                    block[low - start:high - start, low - start:end - start]
            return
        members = torch.nonzero((self.rows >= start) & (self.rows < start + block.shape[0])).squeeze(1)
        if len(members) == 0:
            return
        later = torch.arange(int(members[0]), len(self.rows), device=self.rows.device)
        values = block[self.rows[members] - start][:, self.rows[later] - start]
        self.matrix[members.unsqueeze(1), later.unsqueeze(0)] = values

    def result(self) -> torch.Tensor:
        upper = self.matrix.triu_(1)
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
        self.below_0_1 = torch.zeros((), dtype=torch.int64, device=device)

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


def mean_pair_similarity(unit: torch.Tensor) -> float:
    """Mean of u_i . u_j over pairs i < j from (|sum u|^2 - sum |u_i|^2) / 2, with no pairwise work.

    Sums run in float32 over chunks of 1024 rows and in float64 across chunks.
    """
    samples = unit.shape[0]
    column_sums = sum(chunk.sum(0).double() for chunk in unit.split(1024))
    squares = torch.linalg.vector_norm(unit, dim=1).double().pow(2).sum()
    return float((column_sums @ column_sums - squares) / 2) / (samples * (samples - 1) // 2)
