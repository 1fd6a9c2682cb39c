"""One analysis across processes, GPUs and nodes on torch.distributed (SPEC 18).

``torchrun --nproc-per-node K -m sepgraph analyze ...`` starts K ranks. Each rank extracts the
features of its own slice of the samples and holds only that slice's unit rows plus the slice it
receives from its neighbour: the slices pass around a ring (:func:`ring_tiles`) so that every pair of
slices meets once, each rank computing an equal share of the tiles of :mod:`sepgraph.similarity`.
The tiles are the same for any K (a single process is the one-rank case of the same schedule), so
every similarity is the same float, and :func:`merge_scan` combines the ranks' partial results
exactly: integer histogram counts are summed, the top-|E| sets merged under SPEC 5's order, each
batch matrix entry taken from the one rank that computed it. Rank 0 alone writes the results.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .errors import SepgraphError
from .similarity import PairAccumulator, PairScan, fold_tiles, own_tiles, pair_mean

Value = TypeVar("Value")

Tile = tuple[int, int, int, int]
"""A tile's row start, row stop, column start and column stop (rows of the whole scan)."""


@dataclass(frozen=True)
class Workers:
    """This process's place in the job: rank ``rank`` of ``world`` (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    """Where tensors for collective operations live: the rank's CUDA device under ``nccl``, else the CPU."""

    @classmethod
    def current(cls) -> Workers:
        """The initialised process group's rank and size, or a single process."""
        if dist.is_available() and dist.is_initialized():
            nccl = dist.get_backend() == "nccl"
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
            return cls(dist.get_rank(), dist.get_world_size(), device)
        return cls()

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes the results and shows progress."""
        return self.rank == 0

    def agree(self, action: Callable[[], Value], who: str = "every rank", defer: bool = False
              ) -> Value | SepgraphError | None:
        """Run ``action`` (on rank 0 alone when ``who`` is ``"leader"``) and raise its SepgraphError on every
        rank when it fails on any (the first failing rank's, named), so no rank waits for one that stopped;
        with ``defer`` the error is returned instead. Returns this rank's result (with ``who="leader"``: rank
        0's, on every rank)."""
        result, error = None, None
        if who != "leader" or self.leader:
            try:
                result = action()
            except SepgraphError as failure:
                error = str(failure)
        outcomes = [(error, result)]
        if self.world > 1:
            outcomes = [None] * self.world
            dist.all_gather_object(outcomes, (error, result if who == "leader" and self.leader else None))
        failed = [(rank, message) for rank, (message, _) in enumerate(outcomes) if message is not None]
        if failed:
            rank, message = failed[0]
            failure = SepgraphError(message if rank == self.rank else f"rank {rank}: {message}")
            if defer:
                return failure
            raise failure
        return outcomes[0][1] if who == "leader" else result


    @contextmanager
    def watch(self) -> Iterator[None]:
        """Turn the error of a collective operation whose partner stopped (or did not answer within the
        timeout) into one clear line naming this rank; torchrun's summary names the process that stopped."""
        try:
            yield
        except RuntimeError as error:
            text = str(error)
            if self.world == 1 or not any(word in text for word in ("gloo", "NCCL", "Connection", "Timed out")):
                raise
            reason = re.sub(r"^\[[^\]]*\] ", "", text.splitlines()[0]).split(". This is typically")[0]
            raise SepgraphError(
                f"rank {self.rank}: another process of the job stopped or did not answer within --timeout ({reason}); "
                "torchrun's summary names it; the finished points are kept: rerun with --resume"
            ) from error


def start(device: str = "auto", timeout: float = 600.0) -> tuple[Workers, str]:
    """Join the job that ``torchrun`` started (its RANK, WORLD_SIZE, LOCAL_RANK, MASTER_* variables).

    Backend ``nccl`` with one CUDA device per local rank when ``device`` asks for CUDA (``auto``: when CUDA
    is there), else ``gloo`` on the CPU. Collective operations give up after ``timeout`` seconds, so a rank
    that stops never leaves the others waiting. Returns the workers and the device each rank uses.
    """
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return Workers(), device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise SepgraphError(f"--device {device} asks for CUDA, but CUDA is not available here; use --device cpu")
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout))
    return Workers.current(), f"cuda:{local}" if cuda else "cpu"


def check_layout(layout: TileLayout, what: str) -> None:
    """Every rank must hold at least one tile row of the scan."""
    tiles = len(layout.starts)
    if tiles < layout.world:
        raise SepgraphError(
            f"{what}: {layout.samples} samples make {tiles} tile row{'s' * (tiles != 1)} of {layout.rows}, "
            f"fewer than the {layout.world} processes; run fewer processes"
        )


def stop() -> None:
    """Leave the job (after the last collective operation)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class TileLayout:
    """The tile rows of a scan over ``samples`` rows (``rows`` each, the last one shorter) and each rank's
    slice of them: ``world`` contiguous runs of whole tile rows, as equal as the tile count allows."""

    samples: int
    rows: int
    world: int = 1

    @property
    def starts(self) -> list[int]:
        return list(range(0, self.samples, self.rows))

    def tile_rows_of(self, rank: int) -> range:
        """Tile rows held by ``rank``."""
        count = len(self.starts)
        return range(round(rank * count / self.world), round((rank + 1) * count / self.world))

    def slice_of(self, rank: int) -> tuple[int, int]:
        """The rows [start, stop) held by ``rank``."""
        held = self.tile_rows_of(rank)
        return min(held.start * self.rows, self.samples), min(held.stop * self.rows, self.samples)


def ring_schedule(layout: TileLayout, rank: int) -> list[list[Tile]]:
    """The tiles ``rank`` computes at each step of the ring (SPEC 18).

    Step 0: the tiles among its own tile rows. Step d = 1 .. K // 2: the tiles between its slice and slice
    (rank + d) mod K, which it then holds; at d = K / 2 (even K) both ranks of a pair hold each other's
    slice and split its tiles by the parity of I + J. Every tile I <= J is computed by one rank once.
    """
    bounds = [*layout.starts, layout.samples]

    def tile(first: int, second: int) -> Tile:
        return bounds[first], bounds[first + 1], bounds[second], bounds[second + 1]

    own = layout.tile_rows_of(rank)
    steps = [[(a, b, c, d) for a, b, c, d in own_tiles(bounds[own.start:own.stop], bounds[own.stop])]]
    for distance in range(1, layout.world // 2 + 1):
        partner = (rank + distance) % layout.world
        low, high = sorted((own, layout.tile_rows_of(partner)), key=lambda held: held.start)
        split = 2 * distance == layout.world
        parity = 0 if rank < partner else 1
        steps.append([tile(first, second) for first in low for second in high
                      if not split or (first + second) % 2 == parity])
    return steps


def ring_tiles(own: torch.Tensor, layout: TileLayout, workers: Workers) -> Iterator[tuple[Tile, torch.Tensor]]:
    """Yield ``(tile, U[rows] @ U[columns].T)`` for this rank's tiles of :func:`ring_schedule`.

    ``own``: this rank's unit rows (:meth:`TileLayout.slice_of`), (n_rank, D) float32 on its device. The
    slice held from the ring goes on to the previous rank while the next one arrives from the following
    rank: at most three slices are held at once.
    """
    schedule = ring_schedule(layout, workers.rank)
    held, held_start = own, layout.slice_of(workers.rank)[0]
    for step, tiles in enumerate(schedule):
        if step:
            partner = (workers.rank + step) % workers.world
            start, stop = layout.slice_of(partner)
            incoming = own.new_empty((stop - start, own.shape[1]))
            operations = [dist.P2POp(dist.isend, held.contiguous(), (workers.rank - 1) % workers.world)] \
                if len(held) else []  # both ends know every slice's size: empty slices are not sent
            if len(incoming):
                operations.append(dist.P2POp(dist.irecv, incoming, (workers.rank + 1) % workers.world))
            for request in dist.batch_isend_irecv(operations) if operations else ():
                request.wait()
            held, held_start = incoming, start
        own_start = layout.slice_of(workers.rank)[0]
        for row_start, row_stop, column_start, column_stop in tiles:
            left = _rows(own, own_start, held, held_start, row_start, row_stop)
            right = _rows(own, own_start, held, held_start, column_start, column_stop)
            yield (row_start, row_stop, column_start, column_stop), left @ right.T


def _rows(own: torch.Tensor, own_start: int, held: torch.Tensor, held_start: int, start: int,
          stop: int) -> torch.Tensor:
    """Rows [start, stop) of the scan from whichever of the two slices holds them."""
    if own_start <= start and stop <= own_start + len(own):
        return own[start - own_start:stop - own_start]
    return held[start - held_start:stop - held_start]


def scan_layer(own: torch.Tensor, layout: TileLayout, workers: Workers, *, bins: int = 10,
               hist: np.ndarray | None = None, edges: int = 0, vertices: int = 0, batches: Sequence[np.ndarray] = (),
               zero_vectors: int = 0) -> PairScan | None:
    """One layer point's pair scan (SPEC 4, 5, 7), shared by the ranks: what
    :func:`~sepgraph.similarity.scan_pairs` gives in one process, on rank 0 (None on the others).

    Args:
        own: this rank's (n_rank, D) float32 unit rows of the ``layout.samples`` rows, on its device.
        hist: (H,) int64 rows whose pairs the histogram counts; None: all.
        Others as for :func:`~sepgraph.similarity.scan_pairs`.
    """
    accumulator, sums, squares = fold_tiles(ring_tiles(own, layout, workers), own, layout.slice_of(workers.rank)[0],
                                            layout.samples, layout.starts, bins=bins, hist=hist, edges=edges,
                                            vertices=vertices, batches=batches)
    return merge_scan(accumulator, sums, squares, zero_vectors, workers, own.shape[1])


def merge_scan(accumulator: PairAccumulator, sums: list[torch.Tensor], squares: torch.Tensor,
               zero_vectors: int, workers: Workers, dims: int) -> PairScan | None:
    """Rank 0's exact whole-scan result from every rank's partial ``accumulator`` and mean pieces
    (:func:`~sepgraph.similarity.mean_parts` of its own rows of ``dims`` features); None on the other ranks."""
    if workers.world > 1:
        if accumulator.tally is not None:
            dist.reduce(accumulator.tally.counts, 0)
            dist.reduce(accumulator.tally.below_0_1, 0)
        for gather in accumulator.gathers:
            dist.reduce(gather.matrix, 0)
        if accumulator.top is not None:
            top = accumulator.top
            found = _gather_rows(torch.stack([top.w.double(), top.i.double(), top.j.double()], 1), workers)
            if workers.leader:
                others = torch.cat([part for rank, part in enumerate(found) if rank != 0])
                top.merge(others[:, 0].float(), others[:, 1].long(), others[:, 2].long())
        if accumulator.tally is not None:
            stacked = torch.stack(sums) if sums else squares.new_zeros((0, dims))
            sums = [row for part in _gather_rows(stacked, workers) for row in part]
            squares = torch.cat([part.reshape(-1) for part in _gather_rows(squares.unsqueeze(1), workers)])
    if not workers.leader:
        return None
    mean = pair_mean(sums, squares) if accumulator.tally is not None else 0.0
    return accumulator.result(mean, zero_vectors)


def _gather_rows(rows: torch.Tensor, workers: Workers) -> list[torch.Tensor]:
    """Every rank's (n_rank, C) float64 ``rows``, in rank order, on every rank (padded for the transfer)."""
    rows = rows.to(workers.device)
    counts = [torch.zeros(1, dtype=torch.int64, device=workers.device) for _ in range(workers.world)]
    dist.all_gather(counts, torch.tensor([len(rows)], device=workers.device))
    counts = [int(count) for count in counts]
    padded = rows.new_zeros((max(counts), rows.shape[1]))
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(workers.world)]
    dist.all_gather(parts, padded)
    return [part[:count] for part, count in zip(parts, counts, strict=True)]


def sum_over_ranks(value: int, workers: Workers) -> int:
    """An integer summed over the ranks (exact)."""
    if workers.world == 1:
        return value
    total = torch.tensor([value], dtype=torch.int64, device=workers.device)
    dist.all_reduce(total)
    return int(total)


def gather_leading(values: np.ndarray, workers: Workers) -> np.ndarray:
    """The ranks' (n_rank,) float64 ``values`` concatenated in rank order (every rank gets all)."""
    if workers.world == 1:
        return values
    parts = _gather_rows(torch.as_tensor(values, dtype=torch.float64).reshape(-1, 1), workers)
    return torch.cat(parts).reshape(-1).numpy()
