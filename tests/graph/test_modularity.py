import heapq
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepgraph.errors import SepgraphError
from sepgraph.graph.modularity import knn_graph, lu_modularity, newman_modularity, paper_modularity
from sepgraph.graph.rows import unit_rows


def test_paper_modularity_on_a_hand_computed_graph():
    """Two triangles of classes A = {0,1,2} and B = {3,4,5} joined by the wrong edge (2,3), weights 1.

    Strengths s = (2, 2, 3, 3, 2, 2), S = 14, 2S = 28; |AS| = 6 of |E| = 7 so r = 6/7.
    AQ = (6 - (4+6+6+6+6+4)/28) / 28 = (34/7) / 28 = 17/98.
    EQ = (1 - 9/28) / 28 = 19/784.  M = 6/7 * 17/98 * (1 - 19/784).
    Newman Q = 6/7 - (7/14)^2 - (7/14)^2 = 5/14.
    """
    i = np.array([0, 0, 1, 3, 3, 4, 2])
    j = np.array([1, 2, 2, 4, 5, 5, 3])
    w = np.ones(7)
    labels = np.array([0, 0, 0, 1, 1, 1])
    result = paper_modularity(i, j, w, labels)
    r, aq, eq = Fraction(6, 7), Fraction(17, 98), Fraction(19, 784)
    assert result.r == pytest.approx(float(r))
    assert result.AQ == pytest.approx(float(aq))
    assert result.EQ == pytest.approx(float(eq))
    assert result.M == pytest.approx(float(r * aq * (1 - eq)))
    assert newman_modularity(i, j, w, labels) == pytest.approx(5 / 14)


def random_graph(seed: int, vertices: int, edges: int, classes: int):
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(vertices, 1)
    chosen = rng.choice(len(i), size=min(edges, len(i)), replace=False)
    return i[chosen], j[chosen], rng.uniform(0.01, 1.0, len(chosen)), rng.integers(0, classes, vertices)


def networkx_modularity(i, j, w, labels) -> float:
    graph = nx.Graph()
    graph.add_nodes_from(range(len(labels)))
    graph.add_weighted_edges_from(zip(i.tolist(), j.tolist(), w.tolist(), strict=True))
    communities = [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]
    return nx.community.modularity(graph, communities, weight="weight")


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31), st.integers(3, 40), st.integers(1, 200), st.integers(1, 5))
def test_newman_q_equals_networkx(seed, vertices, edges, classes):
    i, j, w, labels = random_graph(seed, vertices, edges, classes)
    assert newman_modularity(i, j, w, labels) == pytest.approx(networkx_modularity(i, j, w, labels), abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31), st.integers(3, 40), st.integers(1, 200), st.integers(1, 5))
def test_metrics_ignore_vertex_numbering_and_edge_order(seed, vertices, edges, classes):
    i, j, w, labels = random_graph(seed, vertices, edges, classes)
    rng = np.random.default_rng(seed + 1)
    relabel = rng.permutation(vertices)
    order = rng.permutation(len(w))
    a, b = np.minimum(relabel[i], relabel[j])[order], np.maximum(relabel[i], relabel[j])[order]
    moved_labels = np.empty_like(labels)
    moved_labels[relabel] = labels
    before, after = paper_modularity(i, j, w, labels), paper_modularity(a, b, w[order], moved_labels)
    for field in ("r", "AQ", "EQ", "M"):
        assert getattr(after, field) == pytest.approx(getattr(before, field), abs=1e-12)
    assert newman_modularity(a, b, w[order], moved_labels) == pytest.approx(
        newman_modularity(i, j, w, labels), abs=1e-12)


def lu_reference(features: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Lu et al.'s algorithm written plainly: per-row heapq top-k, dense adjacency, a networkx graph."""
    x = features.astype(np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, 0.0)
    n = len(x)
    knn = np.zeros((n, n))
    for row in range(n):
        for neighbour in heapq.nlargest(k, range(n), key=lambda c, r=row: similarity[r, c]):
            knn[row, neighbour] = similarity[row, neighbour]
    adjacency = (knn + knn.T) / 2
    graph = nx.from_numpy_array(adjacency)
    communities = [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]
    return nx.community.modularity(graph, communities, weight="weight")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(6, 60), st.integers(1, 5), st.booleans())
def test_lu_q_equals_the_plain_algorithm(seed, samples, k, relu):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, 8)).astype(np.float32)
    if relu:
        x = np.abs(x)
    labels = rng.integers(0, 3, samples)
    if not knn_graph(unit_rows(x)[0], k)[2].sum() > 0:  # signed features: Q undefined, a clear error instead
        with pytest.raises(SepgraphError, match="modularity needs a positive total weight"):
            lu_modularity(unit_rows(x)[0], labels, k)
        return
    ours = lu_modularity(unit_rows(x)[0], labels, k)
    assert ours == pytest.approx(lu_reference(x, labels, k), abs=1e-6)


def test_knn_graph_symmetrises_one_sided_edges_at_half_weight():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    i, j, w = knn_graph(unit_rows(x)[0], 1)
    edges = {(a, b): c for a, b, c in zip(i.tolist(), j.tolist(), w.tolist(), strict=True)}
    assert set(edges) == {(0, 1), (2, 3)}
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert edges[(0, 1)] == pytest.approx(unit[0] @ unit[1], rel=1e-6)  # mutual: (w + w) / 2
    i, j, w = knn_graph(unit_rows(np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32))[0], 1)
    edges = {(a, b): c for a, b, c in zip(i.tolist(), j.tolist(), w.tolist(), strict=True)}
    assert edges[(1, 2)] == pytest.approx(0.6 / 2, rel=1e-5)  # only 2 chose 1: half weight


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(5, 30), st.integers(1, 4))
def test_lu_q_ties_go_to_the_lower_index_like_heapq(seed, samples, k):
    """Repeated one-hot prototypes make exact ties (similarity 0 or 1) among the neighbours."""
    rng = np.random.default_rng(seed)
    x = np.eye(3, dtype=np.float32)[rng.integers(0, 3, samples)]
    labels = rng.integers(0, 2, samples)
    assert lu_modularity(unit_rows(x)[0], labels, k) == pytest.approx(lu_reference(x, labels, k), abs=1e-9)


def test_zero_total_weight_is_a_clear_error():
    from sepgraph import SepgraphError

    i, j, w, labels = np.array([0, 1]), np.array([1, 2]), np.zeros(2), np.array([0, 0, 1])
    with pytest.raises(SepgraphError, match="weigh 0 in all"):
        paper_modularity(i, j, w, labels)
    with pytest.raises(SepgraphError, match="weigh 0 in all"):
        newman_modularity(i, j, w, labels)
