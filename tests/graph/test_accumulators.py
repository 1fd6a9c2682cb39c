"""Each accumulator's ``reduce`` (SPEC 18): ranks that fold their share of the tiles and merge give exactly what one
process folding every tile gives, here with 1 and 3 ranks simulated in one process."""

import numpy as np
import pytest
import torch

from engines import ENGINES
from oracles import near_edges, oracle_histogram
from sepgraph import SepgraphError
from sepgraph.graph.accumulators import Alone, _bincount, _mirror_upper
from sepgraph.graph.gemm import choose_engine
from sepgraph.graph.rows import unit_rows
from sepgraph.graph.scan import PairAccumulator, ScanRequest, fold_tiles, scan_pairs
from sepgraph.graph.tiles import TilePlan
from sepgraph.parallel.ring import ring_schedule


class Recording:
    """A rank other than 0: hands its states to the collective operations, which are recorded in call order."""

    leader = False

    def __init__(self):
        self.calls: list[torch.Tensor] = []

    def sum(self, tensor):
        self.calls.append(tensor.clone())
        return tensor

    def gather(self, rows):
        self.calls.append(rows.clone())
        return [rows]


class Replaying:
    """Rank 0: each collective operation combines its own state with the other ranks' recorded ones."""

    leader = True

    def __init__(self, others: list[Recording]):
        self.others, self.call = others, 0

    def _theirs(self) -> list[torch.Tensor]:
        theirs = [other.calls[self.call] for other in self.others]
        self.call += 1
        return theirs

    def sum(self, tensor):
        total = tensor.clone()
        for part in self._theirs():
            total += part
        return total

    def gather(self, rows):
        return [rows, *self._theirs()]


def rank_fold(normed: torch.Tensor, request: ScanRequest, plan: TilePlan, rank: int) -> PairAccumulator:
    """What one rank folds: its tiles of the ring and its own rows."""
    tiles = [tile for step in ring_schedule(plan, rank) for tile in step]
    products = ((tile, plan.product(tile, normed[tile[0]:tile[1]], normed[tile[2]:tile[3]])) for tile in tiles)
    start, stop = plan.slice_of(rank)
    return fold_tiles(products, request, plan, normed[start:stop], start)


def merged_over_ranks(normed: torch.Tensor, request: ScanRequest, plan: TilePlan):
    """The leader's result after every rank of ``plan`` folded its tiles and the ranks reduced."""
    others = [Recording() for _ in range(1, plan.world)]
    for rank, recording in enumerate(others, 1):
        rank_fold(normed, request, plan, rank).reduce(recording)
    leader = rank_fold(normed, request, plan, 0)
    leader.reduce(Replaying(others) if others else Alone())
    return leader.result()


REQUESTS = {
    "histogram": dict(bins=10),
    "histogram of a subset": dict(bins=7, hist_positions=np.arange(3, 50, 2)),
    "subgraph": dict(edges=40, vertices=30),
    "batches": dict(batches=(np.arange(0, 25), np.array([44, 3, 17, 60, 8]))),
    "everything": dict(bins=10, edges=60, vertices=40, batches=(np.arange(40), np.array([61, 2, 33, 9]))),
}


@pytest.mark.parametrize("gemm", ENGINES)
@pytest.mark.parametrize("world", [1, 3])
@pytest.mark.parametrize("what", list(REQUESTS))
def test_reduce_over_ranks_equals_one_process(world, what, gemm):
    """Both sides compute their products with the same engine: engines differ in the last bits (SPEC 3)."""
    rng = np.random.default_rng(7)
    features = np.maximum(rng.standard_normal((67, 9)), 0).astype(np.float32)
    features[5] = 0  # a zero row
    features[11] = features[12]  # a duplicate: an exact tie
    normed = unit_rows(features)[0]
    request = ScanRequest(**REQUESTS[what])
    plan = TilePlan(n_rows=len(normed), tile_rows=8, world=world, engine=choose_engine(gemm))
    alone = scan_pairs(normed, request, max_memory=4 * 16 * 8 * 8, gemm=gemm)  # the same 8-row tiles, one process
    merged = merged_over_ranks(normed, request, plan)
    if request.bins:
        assert np.array_equal(merged.histogram.counts, alone.histogram.counts)
        assert (merged.histogram.below_zero, merged.histogram.below_0_1, merged.histogram.pairs) == \
            (alone.histogram.below_zero, alone.histogram.below_0_1, alone.histogram.pairs)
        assert merged.histogram.mean == alone.histogram.mean  # bit for bit
    if request.edges:
        for name in ("i", "j", "w"):
            assert np.array_equal(getattr(merged.subgraph, name), getattr(alone.subgraph, name))
    for ours, theirs in zip(merged.batch_similarities, alone.batch_similarities, strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("n", [1, 511, 512, 1100])
def test_a_batch_matrix_is_mirrored_from_its_upper_entries_exactly(n):
    upper = torch.from_numpy(np.random.default_rng(n).standard_normal((n, n)).astype(np.float32)).triu(1)
    below = torch.ones(n, n, dtype=torch.bool).tril()
    matrix = upper.masked_fill(below, float("-inf"))  # what diagonal tiles leave on and below: not pairs
    assert torch.equal(_mirror_upper(matrix.clone()), upper + upper.T)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_slot_counts_do_not_depend_on_threads(threads):
    rng = np.random.default_rng(threads)
    skewed = np.minimum(np.abs(rng.standard_normal(300_001)) * 0.7 + 1, 10).astype(np.uint8)  # most slots equal
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        counts = _bincount(torch.from_numpy(skewed), 11)
    finally:
        torch.set_num_threads(saved)
    assert counts.dtype == torch.int64
    assert np.array_equal(counts.numpy(), np.bincount(skewed, minlength=11))


@pytest.mark.parametrize("world", [1, 3])
def test_diagonal_tiles_of_several_strips_reduce_to_one_process_and_match_the_oracle(world):
    """Tiles of 300 rows: diagonal tiles of two 256-row strips, the histogram of a subset, the subgraph and batches
    that cross the strips' and tiles' bounds, over 1 and 3 ranks, against brute force in float64."""
    rng = np.random.default_rng(11)
    features = np.maximum(rng.standard_normal((700, 6)), 0).astype(np.float32)
    features[[3, 290]] = 0  # zero rows
    features[260] = features[250]  # an exact tie across the strip bound
    normed = unit_rows(features)[0]
    hist = np.sort(rng.choice(700, 500, replace=False))
    request = ScanRequest(bins=10, hist_positions=hist, edges=900, vertices=520,
                          batches=(np.arange(240, 620), rng.choice(700, 90, replace=False)))
    plan = TilePlan(n_rows=700, tile_rows=300, world=world)
    merged = merged_over_ranks(normed, request, plan)
    exact = normed.double() @ normed.double().T
    i, j = np.triu_indices(len(hist), 1)
    values = exact[hist][:, hist].numpy()[i, j]
    wanted, _ = oracle_histogram(values, 10)
    near = near_edges(values, 10)
    assert merged.histogram.pairs == len(values) and merged.histogram.counts.sum() + merged.histogram.below_zero \
        == len(values)
    assert np.abs(merged.histogram.counts - wanted).sum() <= 2 * near
    top = np.triu(exact[:520, :520].numpy(), 1)
    top[np.tril_indices(520)] = -np.inf
    threshold = np.sort(top.ravel())[::-1][899]
    assert np.all(merged.subgraph.w >= threshold - 1e-6) and len(merged.subgraph.w) == 900
    assert np.all(merged.subgraph.i < merged.subgraph.j)
    for batch, similarity in zip(request.batches, merged.batch_similarities, strict=True):
        own = exact[torch.as_tensor(batch)][:, torch.as_tensor(batch)].float().fill_diagonal_(0).clamp_(-1, 1)
        torch.testing.assert_close(similarity, own, atol=1e-6, rtol=0)
        assert torch.equal(similarity, similarity.T)


def test_a_batch_that_repeats_a_row_is_refused_in_one_line():
    with pytest.raises(SepgraphError, match="repeats a row"):
        ScanRequest(batches=(np.array([3, 3, 5]),))


def test_int32_slots_are_counted_like_byte_slots():
    slots = torch.from_numpy(np.random.default_rng(0).integers(0, 301, 200_000).astype(np.int32))
    assert np.array_equal(_bincount(slots, 301).numpy(), np.bincount(slots.numpy(), minlength=301))
