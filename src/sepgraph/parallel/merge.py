"""One layer point's scan shared by the ranks (SPEC 18): the ring's tiles folded on every rank, then merged on
rank 0 by each accumulator's own ``reduce`` through collective operations."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..graph.scan import PairScan, ScanRequest, fold_tiles
from ..graph.tiles import TilePlan
from .ring import ring_tiles
from .workers import Workers, gather_rows


class RankReducer:
    """The :class:`~sepgraph.graph.accumulators.Reducer` of the ranks of a torchrun job (one process: the
    identity)."""

    def __init__(self, workers: Workers):
        self.workers = workers
        self.leader = workers.leader

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.workers.world > 1:
            dist.reduce(tensor, 0)
        return tensor

    def gather(self, rows: torch.Tensor) -> list[torch.Tensor]:
        return gather_rows(rows, self.workers) if self.workers.world > 1 else [rows]


def scan_layer(own: torch.Tensor, request: ScanRequest, plan: TilePlan, workers: Workers) -> PairScan | None:
    """What :func:`~sepgraph.graph.scan.scan_pairs` gives in one process, from this rank's (n_rank, D) float32 unit
    rows of the plan's rows (:meth:`TilePlan.slice_of`, on its device): the scan on rank 0, None on the others."""
    accumulator = fold_tiles(ring_tiles(own, plan, workers), request, plan, own, plan.slice_of(workers.rank)[0])
    accumulator.reduce(RankReducer(workers))
    return accumulator.result() if workers.leader else None
