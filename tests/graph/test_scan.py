import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from oracles import near_edges, oracle_histogram
from sepgraph import SepgraphError
from sepgraph.graph.rows import unit_rows
from sepgraph.graph.scan import ScanRequest, scan_pairs, similarity_histogram, top_edges
from sepgraph.graph.tiles import TilePlan


def brute_force(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j and their cosine similarity in float64 (zero vectors: 0)."""
    x = features.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    i, j = np.triu_indices(len(x), 1)
    return i, j, (unit @ unit.T)[i, j]


features_strategy = st.tuples(st.integers(2, 60), st.integers(1, 12), st.integers(0, 2**31), st.integers(1, 9))


@settings(max_examples=60, deadline=None)
@given(features_strategy, st.sampled_from([1, 3, 10, 7, 255, 300]), st.booleans())  # 255: byte slots; 300: int32
def test_histogram_matches_brute_force(shape, bins, relu):
    samples, dims, seed, block = shape
    x = np.random.default_rng(seed).standard_normal((samples, dims)).astype(np.float32)
    if relu:
        x = np.maximum(x, 0)
    unit, zero = unit_rows(x)
    histogram = similarity_histogram(unit, bins, max_memory=block * samples * 64, zero_vectors=int(zero.sum()))
    _, _, values = brute_force(x)
    counts, below = oracle_histogram(values, bins)
    pairs = samples * (samples - 1) // 2
    assert histogram.pairs == pairs and histogram.counts.sum() + histogram.below_zero == pairs
    slack = near_edges(values, bins)
    assert np.abs(histogram.counts - counts).sum() <= 2 * slack
    assert abs(histogram.below_zero - below) <= slack
    assert histogram.mean == pytest.approx(values.mean(), abs=1e-6)
    assert abs(histogram.below_0_1 - int((values < 0.1).sum())) <= slack
    assert histogram.zero_vectors == int((np.abs(x).sum(1) == 0).sum())


def test_bin_edges_and_extremes():
    # unit vectors at exact angles: cos = 1, 0.5 (an edge), 0 and -1
    x = np.array([[1, 0], [1, 0], [0.5, np.sqrt(3) / 2], [0, 1], [-1, 0]], dtype=np.float32)
    histogram = similarity_histogram(unit_rows(x)[0], bins=2, max_memory=1 << 20)
    _, _, values = brute_force(x)
    # pairs: 1 (rows 0,1) -> last bin, closed; 0.5 (edge) -> upper bin; 0 -> first bin; negatives apart
    assert histogram.counts.tolist() == [int(((values >= -1e-7) & (values < 0.5 - 1e-6)).sum()),
                                         int((values >= 0.5 - 1e-6).sum())]
    assert histogram.below_zero == int((values < -1e-7).sum())


def test_zero_vectors_have_similarity_zero_and_are_counted():
    x = np.zeros((4, 3), dtype=np.float32)
    x[0] = [1, 2, 3]
    unit, zero = unit_rows(x)
    histogram = similarity_histogram(unit, 10, 1 << 20, int(zero.sum()))
    assert histogram.zero_vectors == 3
    assert histogram.counts[0] == 6 and histogram.mean == pytest.approx(0.0, abs=1e-7)


def test_vectors_of_very_different_norms():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    x[::2] *= 1e18
    x[1::2] *= 1e-18
    unit, _ = unit_rows(x)
    np.testing.assert_allclose(np.linalg.norm(unit.numpy(), axis=1), 1.0, rtol=1e-6)
    _, _, values = brute_force(x)
    histogram = similarity_histogram(unit, 10, 1 << 20)
    assert histogram.mean == pytest.approx(values.mean(), abs=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(bad):
    x = np.ones((3, 2), dtype=np.float32)
    x[1, 0] = bad
    with pytest.raises(SepgraphError, match="NaN or Inf"):
        unit_rows(x)


def test_mean_similarity_identity():
    x = np.random.default_rng(3).standard_normal((200, 30)).astype(np.float32)
    _, _, values = brute_force(x)
    assert similarity_histogram(unit_rows(x)[0]).mean == pytest.approx(values.mean(), abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(features_strategy, st.integers(1, 400))
def test_top_edges_match_brute_force(shape, edges):
    samples, dims, seed, block = shape
    pairs = samples * (samples - 1) // 2
    assume(edges <= pairs)
    x = np.random.default_rng(seed).standard_normal((samples, dims)).astype(np.float32)
    i, j, values = brute_force(x)
    order = np.lexsort((j, i, -values))
    if edges < pairs:  # a float32 near-tie at the threshold may fall either way
        assume(values[order[edges - 1]] - values[order[edges]] > 1e-5)
    subgraph = top_edges(unit_rows(x)[0], edges, max_memory=block * samples * 64)
    chosen = order[:edges]
    assert set(zip(subgraph.i.tolist(), subgraph.j.tolist(), strict=True)) == set(
        zip(i[chosen].tolist(), j[chosen].tolist(), strict=True))
    assert np.all(subgraph.i < subgraph.j)
    np.testing.assert_allclose(np.sort(subgraph.w)[::-1], values[chosen], atol=1e-6)
    assert np.all(np.diff(subgraph.w) <= 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 40), st.integers(0, 2**31), st.integers(1, 6), st.data())
def test_ties_go_to_the_smallest_pairs_whatever_the_blocks(samples, seed, block, data):
    """One-hot prototypes repeated: similarities are exactly 0 or 1, so ties are exact."""
    rng = np.random.default_rng(seed)
    x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, samples)] * rng.uniform(0.5, 2, (samples, 1)).astype(
        np.float32)
    pairs = samples * (samples - 1) // 2
    edges = data.draw(st.integers(1, pairs))
    i, j, values = brute_force(x)
    expected = np.lexsort((j, i, -np.round(values, 6)))[:edges]
    for memory in (block * samples * 64, 1 << 20):
        subgraph = top_edges(unit_rows(x)[0], edges, max_memory=memory)
        assert subgraph.i.tolist() == i[expected].tolist() and subgraph.j.tolist() == j[expected].tolist()


def test_edges_larger_than_pairs_and_tiny_budgets():
    unit = unit_rows(np.eye(5, dtype=np.float32))[0]
    with pytest.raises(SepgraphError, match="between 1 and the 10 pairs"):
        top_edges(unit, 11)
    with pytest.raises(SepgraphError, match="edges must be at least 1, got 0"):
        top_edges(unit, 0)
    with pytest.raises(SepgraphError, match="bins must be at least 1, got 0"):
        similarity_histogram(unit, 0)
    with pytest.raises(SepgraphError, match="too small for one similarity tile"):
        similarity_histogram(unit, 10, max_memory=10)
    assert TilePlan.create(10, 4 << 30).tile_rows == 1024
    assert TilePlan.create(10, 4 << 30, requested=256).tile_rows == 256
    assert TilePlan.create(10, 64 * 9).tile_rows == 3  # a tile takes a quarter of the budget, 16 bytes an entry
    assert TilePlan.create(10, 4 << 30, torch.device("cuda")).tile_rows == 4096


def test_symmetry_nothing_depends_on_row_order():
    x = np.random.default_rng(5).standard_normal((40, 6)).astype(np.float32)
    permutation = np.random.default_rng(6).permutation(40)
    a = similarity_histogram(unit_rows(x)[0], 10, 1 << 20)
    b = similarity_histogram(unit_rows(x[permutation])[0], 10, 1 << 20)
    assert a.counts.tolist() == b.counts.tolist() and a.below_zero == b.below_zero
    assert a.mean == pytest.approx(b.mean, abs=1e-7)  # float32 column sums within chunks


def test_similarity_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    x = np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)
    cpu = similarity_histogram(unit_rows(x)[0], 10, 1 << 20)
    gpu = similarity_histogram(unit_rows(x)[0].cuda(), 10, 1 << 20)
    assert np.abs(cpu.counts - gpu.counts).sum() <= 2 and gpu.mean == pytest.approx(cpu.mean, abs=1e-6)


@pytest.mark.parametrize("scale", [1e19, 1e-30, 1e-40])
def test_row_norms_of_any_finite_scale(scale):
    """float32 sums of squares overflow at 1e19 and vanish at 1e-30: such rows are normalised in float64."""
    x = np.random.default_rng(1).standard_normal((30, 50)).astype(np.float32)
    x[3] = 0
    reference, reference_zero = unit_rows(x)
    scaled = (x.astype(np.float64) * scale).astype(np.float32)
    assert np.isfinite(scaled).all() and (np.abs(scaled).sum(1) > 0).sum() == 29
    unit, zero = unit_rows(scaled)
    assert zero.tolist() == reference_zero.tolist()
    np.testing.assert_allclose(unit.numpy(), reference.numpy(), atol=1e-6 if scale > 1e-39 else 2e-2)
    ordinary = similarity_histogram(reference, 10, 1 << 20, 1)
    found = similarity_histogram(unit, 10, 1 << 20, int(zero.sum()))
    if scale > 1e-39:  # 1e-40 is subnormal in float32: the features themselves keep only a few digits
        assert found.counts.tolist() == ordinary.counts.tolist() and found.zero_vectors == 1


def test_rows_of_ordinary_scale_are_normalised_as_before():
    x = np.random.default_rng(2).standard_normal((40, 20)).astype(np.float32) * 3
    tensor = torch.from_numpy(x.copy())
    expected = tensor / torch.linalg.vector_norm(tensor, dim=1, keepdim=True)
    assert torch.equal(unit_rows(x)[0], expected)


def test_similarities_are_clamped_so_duplicates_tie_exactly():
    """Duplicates of a long vector give float32 dot products a hair above or below 1: clamped, every stored
    weight is at most 1 and duplicates that round above 1 tie at exactly 1, ordered by (i, j)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((9, 3000)).astype(np.float32)
    x = base[[2, 1, 2, 3, 2, 8, 4, 3, 5, 8]]  # rows 2, 3 and 8 have float32 self-similarity above 1 here
    unit = unit_rows(x)[0]
    raw = (unit @ unit.T).numpy()
    i, j = np.triu_indices(len(x), 1)
    assert raw[i, j].max() > 1.0  # the unclamped products do exceed 1 here
    subgraph = top_edges(unit, 8)
    assert subgraph.w.max() <= 1.0
    histogram = similarity_histogram(unit, 10)
    assert histogram.counts[-1] == int((raw[i, j] >= 0.9).sum())
    above = [(a, b) for a, b in zip(i, j, strict=True) if raw[a, b] >= 1.0]
    top = list(zip(subgraph.i.tolist(), subgraph.j.tolist(), strict=True))
    assert top[: len(above)] == sorted(above) and np.all(subgraph.w[: len(above)] == 1.0)


@settings(max_examples=30, deadline=None)
@given(features_strategy, st.integers(1, 200), st.data())
def test_one_scan_equals_the_separate_measurements(shape, edges, data):
    """scan_pairs (histogram, top-|E| of the leading vertices, batch similarities from the same blocks) gives
    what the histogram, top_edges and each batch's own similarity matrix give. The products are the same
    float32 dot products; BLAS may round a product differently for different matrix shapes (gemv for one
    row), so values agree to float32 rounding and the discrete results wherever no pair sits at a bin edge
    or at the top-|E| threshold. (On the shared resnet20 analysis the results are byte-identical.)"""
    samples, dims, seed, block = shape
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((samples, dims)), 0).astype(np.float32)
    vertices = data.draw(st.integers(2, samples))
    edges = min(edges, vertices * (vertices - 1) // 2)
    batches = [rng.choice(samples, size=min(samples, 5), replace=False) for _ in range(2)]  # any order
    start = data.draw(st.integers(0, samples - 2))
    batches.append(np.arange(start, data.draw(st.integers(start + 2, samples))))  # a run: copied by slices
    unit = unit_rows(x)[0]
    memory = block * samples * 64
    request = ScanRequest(bins=10, edges=edges, vertices=vertices, batches=batches)
    scan = scan_pairs(unit, request, max_memory=memory)
    histogram = similarity_histogram(unit, 10, memory)
    subgraph = top_edges(unit[:vertices], edges, memory)
    i, j, values = brute_force(x)
    slack = near_edges(values, 10)
    assert np.abs(scan.histogram.counts - histogram.counts).sum() <= 2 * slack
    assert scan.histogram.mean == histogram.mean  # from column sums, no pairwise product
    inside = (j < vertices)
    ranked = np.sort(values[inside])[::-1]
    if edges == len(ranked) or ranked[edges - 1] - ranked[edges] > 1e-5:
        assert np.array_equal(scan.subgraph.i, subgraph.i) and np.array_equal(scan.subgraph.j, subgraph.j)
    np.testing.assert_allclose(scan.subgraph.w, subgraph.w, atol=1e-6)
    for batch, similarity in zip(batches, scan.batch_similarities, strict=True):
        own = unit[torch.as_tensor(batch)]
        torch.testing.assert_close(similarity, (own @ own.T).fill_diagonal_(0).clamp_(-1, 1), atol=1e-6, rtol=0)
        assert torch.equal(similarity, similarity.T) and not similarity.diagonal().any()
