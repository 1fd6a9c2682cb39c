"""What a similarity scan folds its tiles into (SPEC 4, 5, 7), each piece saying how it merges across ranks.

Every accumulator takes tiles in any order and has a ``reduce(reducer)`` that combines the partial states
of the ranks sharing a scan through a :class:`Reducer` (``sum`` or ``gather``), as torchmetrics' states
name their ``dist_reduce_fx``: integer histogram counts are summed, the top-|E| sets merged under SPEC 5's
order, each batch-matrix entry comes from the one rank that computed it (the others hold 0 there), and the
mean's pieces are gathered in tile-row order. So K ranks give the bytes of one process (SPEC 18).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..devices import one_thread, thread_pool


class Reducer(Protocol):
    """How the ranks sharing a scan combine partial states; every rank makes the same calls in the same order."""

    leader: bool
    """Whether this is rank 0, which holds the merged result."""

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The elementwise sum of every rank's ``tensor`` (complete on the leader)."""

    def gather(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's (n_rank, C) ``rows``, in rank order."""


class Alone:
    """The :class:`Reducer` of a scan that one process computes whole."""

    leader = True

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def gather(self, rows: torch.Tensor) -> list[torch.Tensor]:
        return [rows]


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


class BinTally:
    """Exact integer bin counts of the pairs.

    A value v goes to bin ``floor(v * bins)`` computed in float32 (so a value equal to an
    edge k/bins opens bin k), values of 1 or more to the last bin, negatives to ``below_zero``.
    """

    def __init__(self, bins: int, device: torch.device):
        self.bins = bins
        self.counts = torch.zeros(bins + 1, dtype=torch.int64, device=device)
        self.below_0_1 = torch.zeros(1, dtype=torch.int64, device=device)
        # the narrowest integer that holds a slot: converting to and counting bytes is 2-3x faster than int64
        self.slot_dtype = torch.uint8 if bins < 256 else torch.int32

    def add(self, values: torch.Tensor, not_pairs: int = 0) -> None:
        """Count ``values``, of which ``not_pairs`` are -inf entries that are not pairs (taken back out)."""
        slots = (values * self.bins).floor_().clamp_(-1, self.bins - 1).add_(1).to(self.slot_dtype)
        self.counts += _bincount(slots.reshape(-1), self.bins + 1)
        self.counts[0] -= not_pairs
        if self.bins % 10:
            self.below_0_1 += (values < 0.1).sum() - not_pairs

    def reduce(self, reducer: Reducer) -> None:
        """Integer counts: summed."""
        self.counts = reducer.sum(self.counts)
        self.below_0_1 = reducer.sum(self.below_0_1)

    def result(self, pairs: int, mean: float, zero_vectors: int) -> Histogram:
        counts = self.counts.cpu().numpy()
        below_0_1 = int(counts[: 1 + self.bins // 10].sum()) if self.bins % 10 == 0 else int(self.below_0_1)
        histogram = Histogram(counts[1:], int(counts[0]), pairs, mean, below_0_1, zero_vectors)
        if int(counts.sum()) != pairs:
            raise AssertionError(f"histogram holds {int(counts.sum())} of {pairs} pairs")
        return histogram


BINCOUNT_PIECE = 1 << 15
"""Slots one bincount counts: under torch's grain for parallel work, so a counting thread never starts threads of
its own (a 1,024 x 1,024 tile is 32 pieces)."""


def _bincount(slots: torch.Tensor, length: int) -> torch.Tensor:
    """(length,) int64 counts of the 1-D ``slots``; on the CPU in pieces of :data:`BINCOUNT_PIECE` spread over one
    thread per torch thread (one bincount runs on one thread, and slowly when most slots are equal: each count
    waits on the one before). Integer counts: the same whatever the threads."""
    threads = torch.get_num_threads() if slots.device.type == "cpu" else 1
    if threads == 1 or len(slots) <= BINCOUNT_PIECE:
        return torch.bincount(slots, minlength=length)
    counts = thread_pool(threads).map(lambda piece: torch.bincount(piece, minlength=length),
                                      slots.split(BINCOUNT_PIECE))
    return torch.stack(list(counts)).sum(0)


class TopPairs:
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

    def reduce(self, reducer: Reducer) -> None:
        """The ranks' sets gathered; the leader merges the others' into its own."""
        parts = reducer.gather(torch.stack([self.w.double(), self.i.double(), self.j.double()], 1))
        if reducer.leader and len(parts) > 1:
            others = torch.cat(parts[1:]).to(self.w.device)
            self.merge(others[:, 0].float(), others[:, 1].long(), others[:, 2].long())

    def subgraph(self) -> Subgraph:
        return Subgraph(self.i.cpu().numpy(), self.j.cpu().numpy(), self.w.cpu().numpy(), self.vertices)


class BatchGather:
    """Collects the pairs of one batch from the tiles. With the batch's rows in ascending order, entry (a, c),
    a < c, is written from the tile holding it above the diagonal; the matrix is mirrored and put back into the
    batch's own order at the end."""

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

    def reduce(self, reducer: Reducer) -> None:
        """Each entry was written by one rank, the others hold 0 there: summed exactly."""
        self.matrix = reducer.sum(self.matrix)

    def result(self) -> torch.Tensor:
        symmetric = _mirror_upper(self.matrix)
        if self.offset is not None:  # a run of rows is already in its own order
            return symmetric
        rank = torch.argsort(self.order)
        return symmetric[rank.unsqueeze(1), rank.unsqueeze(0)]


MIRROR_BLOCK = 512
"""Rows of the blocks in which a batch matrix is mirrored: a block and its transpose stay in cache."""


def _mirror_upper(matrix: torch.Tensor) -> torch.Tensor:
    """(n, n) ``matrix`` made symmetric with diagonal 0 from the entries above its diagonal, in place (what lies on
    and below it came from the lower halves of diagonal tiles, which are not pairs): block by block, so each
    transposed copy reads and writes memory in cache-sized pieces, not with a stride of n across the whole."""
    n = matrix.shape[0]
    for low in range(0, n, MIRROR_BLOCK):
        rows = slice(low, low + MIRROR_BLOCK)
        upper = matrix[rows, rows].triu(1)
        matrix[rows, rows] = upper + upper.T
        for high in range(low + MIRROR_BLOCK, n, MIRROR_BLOCK):
            columns = slice(high, high + MIRROR_BLOCK)
            matrix[columns, rows] = matrix[rows, columns].T
    return matrix


class MeanParts:
    """The pieces of the mean similarity over the histogram's pairs (SPEC 4), from rows rather than tiles: per
    tile row, the (D,) float32 column sum of its histogram rows (as float64), and the float64 squared norms of
    those rows. The sums run on one CPU thread, whose order of additions is fixed, so they are the same floats
    whatever the threads of the process."""

    def __init__(self, dims: int, device: torch.device):
        self.dims = dims
        self.sums: list[torch.Tensor] = []
        self.squares = torch.zeros(0, dtype=torch.float64, device=device)

    def add(self, rows: torch.Tensor, starts: Sequence[int], mask: torch.Tensor | None = None) -> None:
        """(n, D) unit rows cut at tile-row ``starts`` (relative to ``rows``); ``mask``: (n,) bool, None: all."""
        bounds = [*starts, rows.shape[0]]
        squares = [self.squares]
        with one_thread():
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                counted = rows[start:stop] if mask is None else rows[start:stop][mask[start:stop]]
                self.sums.append(counted.sum(0).double())
                squares.append(torch.linalg.vector_norm(counted, dim=1).double().pow(2))
        self.squares = torch.cat(squares)

    def reduce(self, reducer: Reducer) -> None:
        """The ranks' pieces gathered in rank order, which is tile-row order."""
        stacked = torch.stack(self.sums) if self.sums else self.squares.new_zeros((0, self.dims))
        self.sums = [row for part in reducer.gather(stacked) for row in part]
        self.squares = torch.cat([part.reshape(-1) for part in reducer.gather(self.squares.unsqueeze(1))])

    def mean(self) -> float:
        """Mean of u_i . u_j over pairs i < j from (|sum u|^2 - sum |u_i|^2) / 2, with no pairwise work: the column
        sums are added in tile-row order, the two sums of squares exactly rounded (``math.fsum``), so the mean does
        not depend on how the rows were shared out."""
        n_rows = len(self.squares)
        column_sums = torch.zeros_like(self.sums[0])
        for part in self.sums:
            column_sums += part
        total = math.fsum(column_sums.square().cpu().numpy()) - math.fsum(self.squares.cpu().numpy())
        return total / 2 / (n_rows * (n_rows - 1) // 2)
