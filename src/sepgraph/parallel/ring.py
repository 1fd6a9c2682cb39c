"""The ring that shares one scan's tiles among the ranks (SPEC 18).

Each rank holds its own slice of the :class:`~sepgraph.graph.tiles.TilePlan`'s rows plus the slice it
receives from its neighbour: the slices pass around a ring so that every pair of slices meets once, each rank
computing an equal share of the tiles. The tiles are those of one process (its one-rank case), so every
similarity is the same float.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist

from ..graph.tiles import Tile, TilePlan
from .workers import Workers


def ring_schedule(plan: TilePlan, rank: int) -> list[list[Tile]]:
    """The tiles ``rank`` computes at each step of the ring.

    Step 0: the tiles among its own tile rows. Step d = 1 .. K // 2: the tiles between its slice and slice
    (rank + d) mod K, which it then holds; at d = K / 2 (even K) both ranks of a pair hold each other's
    slice and split its tiles by the parity of I + J. Every tile I <= J is computed by one rank once.
    """
    own = plan.tile_rows_held(rank)
    steps = [list(plan.tiles_among(own))]
    for distance in range(1, plan.world // 2 + 1):
        partner = (rank + distance) % plan.world
        low, high = sorted((own, plan.tile_rows_held(partner)), key=lambda held: held.start)
        split = 2 * distance == plan.world
        parity = 0 if rank < partner else 1
        steps.append([plan.tile(first, second) for first in low for second in high
                      if not split or (first + second) % 2 == parity])
    return steps


def ring_tiles(own: torch.Tensor, plan: TilePlan, workers: Workers) -> Iterator[tuple[Tile, torch.Tensor]]:
    """Yield ``(tile, U[rows] @ U[columns].T)`` for this rank's tiles of :func:`ring_schedule`.

    ``own``: this rank's unit rows (:meth:`TilePlan.slice_of`), (n_rank, D) float32 on its device. The
    slice held from the ring goes on to the previous rank while the next one arrives from the following
    rank: at most three slices are held at once.
    """
    own_start = plan.slice_of(workers.rank)[0]
    held, held_start = own, own_start
    for step, tiles in enumerate(ring_schedule(plan, workers.rank)):
        if step:
            held, held_start = _pass_on(held, plan, workers, step)
        for tile in tiles:
            left = _rows(own, own_start, held, held_start, tile[0], tile[1])
            right = _rows(own, own_start, held, held_start, tile[2], tile[3])
            yield tile, plan.product(tile, left, right)


def _pass_on(held: torch.Tensor, plan: TilePlan, workers: Workers, step: int) -> tuple[torch.Tensor, int]:
    """Send the held slice to the previous rank and receive slice ``rank + step`` from the next one; returns it
    and its first row."""
    start, stop = plan.slice_of((workers.rank + step) % workers.world)
    incoming = held.new_empty((stop - start, held.shape[1]))
    operations = [dist.P2POp(dist.isend, held.contiguous(), (workers.rank - 1) % workers.world)] \
        if len(held) else []  # both ends know every slice's size: empty slices are not sent
    if len(incoming):
        operations.append(dist.P2POp(dist.irecv, incoming, (workers.rank + 1) % workers.world))
    for request in dist.batch_isend_irecv(operations) if operations else ():
        request.wait()
    return incoming, start


def _rows(own: torch.Tensor, own_start: int, held: torch.Tensor, held_start: int, start: int,
          stop: int) -> torch.Tensor:
    """Rows [start, stop) of the scan from whichever of the two slices holds them."""
    if own_start <= start and stop <= own_start + len(own):
        return own[start - own_start:stop - own_start]
    return held[start - held_start:stop - held_start]
