"""End to end against a float64 oracle: features from a plain forward hook, every metric
recomputed with numpy and networkx from the stored vertices and batches (SPEC 4-7).

On CUDA the same analysis runs with TF32 switched on globally: sepgraph must still match
float64 within 1e-4, because its similarity products force full float32.
"""

from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier

from oracles import oracle_cka, oracle_knn
from sepgraph import GraphSettings, RunSettings
from sepgraph.analysis.run import analyze
from sepgraph.data.dataset import to_tensor
from sepgraph.data.samples import lu_batch_indices, select_vertices
from sepgraph.data.sources import load_dataset
from sepgraph.graph.peers import stratified_folds
from sepgraph.models import build_model
from sepgraph.models.points import layer_points

SETTINGS = GraphSettings(vertices=120, edges=400, hist_samples=260, lu_batch_size=40, lu_batches=3, lu_k=3)


def oracle_features(indices: np.ndarray) -> dict[str, np.ndarray]:
    """float64 features of the same randomly initialised resnet20 (seed 0) at each point."""
    model = build_model("resnet20", 10, seed=0).model.eval()
    dataset = load_dataset("digits:all")
    images = to_tensor(dataset.read(indices), "cifar10")
    found = {}
    points = {p.name: p for p in layer_points(model, "lu2022", example_input=images[:1])}
    modules = dict(model.named_modules())
    handles = [modules[point.module].register_forward_hook(
        lambda _m, _i, output, name=name: found.__setitem__(name, output.flatten(1).double().numpy().copy()))
        for name, point in points.items()]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return found


def unit(features: np.ndarray) -> np.ndarray:
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def newman_q(graph: nx.Graph, labels: np.ndarray) -> float:
    communities = [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]
    return nx.community.modularity(graph, communities, weight="weight")


def expected_row(features: np.ndarray, hist: np.ndarray, vertices: np.ndarray, batches, labels) -> dict:
    u = unit(features)
    a, b = np.triu_indices(len(hist), 1)
    similarity = (u[hist] @ u[hist].T)[a, b]
    counts = np.bincount(np.clip(np.floor(similarity[similarity >= 0] * 10), 0, 9).astype(int), minlength=10)
    near_edge = int((np.abs(similarity * 10 - np.round(similarity * 10)) < 1e-4).sum())

    sv = u[vertices] @ u[vertices].T
    i, j = np.triu_indices(len(vertices), 1)
    order = np.lexsort((j, i, -sv[i, j]))[: SETTINGS.edges]
    i, j, w = i[order], j[order], sv[i, j][order]
    y = labels[vertices]
    graph = nx.Graph()
    graph.add_nodes_from(range(len(vertices)))
    graph.add_weighted_edges_from(zip(i.tolist(), j.tolist(), w.tolist(), strict=True))
    strength = np.array([graph.degree(v, weight="weight") for v in range(len(vertices))])
    total = strength.sum()
    terms = (w - strength[i] * strength[j] / (2 * total)) / (2 * total)
    same = y[i] == y[j]
    r, aq, eq = same.mean(), terms[same].sum(), terms[~same].sum()

    lu = []
    for batch in batches:
        s = u[batch] @ u[batch].T
        np.fill_diagonal(s, 0.0)
        knn = np.zeros_like(s)
        for row in range(len(batch)):
            keep = np.argsort(-s[row], kind="stable")[: SETTINGS.lu_k]
            knn[row, keep] = s[row, keep]
        lu.append(newman_q(nx.from_numpy_array((knn + knn.T) / 2), labels[batch]))
    edges = set(zip(i.tolist(), j.tolist(), strict=True))
    return {"counts": counts, "near_edge": near_edge, "mean_sim": similarity.mean(), "edges": edges,
            "r": r, "AQ": aq, "EQ": eq, "M": r * aq * (1 - eq), "newman_q": newman_q(graph, y), "lu_q": lu}


@pytest.mark.parametrize("device, hist_samples", [("cpu", 260), ("cpu", "all"), ("cuda", 260), ("cuda", "all")])
def test_analysis_matches_a_float64_oracle(tmp_path, device, hist_samples):
    """hist_samples 260: the histogram's samples are scanned apart from the vertices and batches; "all": one
    scan feeds the histogram, the subgraph and Lu et al.'s batches."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here: TF32 exactness is tested only where a GPU is present")
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32 on CUDA, a no-op on the CPU
    try:
        result = analyze("resnet20", "digits:all", replace(SETTINGS, hist_samples=hist_samples), points="lu2022",
                         run=RunSettings(device=device), out=tmp_path / "run", progress=False)
    finally:
        torch.set_float32_matmul_precision(saved)
    labels = load_dataset("digits:all").labels
    hist = np.arange(len(labels)) if hist_samples == "all" else select_vertices(labels, 260, "stratified", 0, 10)
    vertices = select_vertices(labels, 120, "stratified", 0, 10)
    batches = lu_batch_indices(labels, 40, 3, "stratified", 0, 10)
    everything = np.unique(np.concatenate([hist, vertices, *batches]))
    features = oracle_features(everything)
    position = {index: row for row, index in enumerate(everything)}

    def rows(indices):
        return np.array([position[i] for i in indices])

    for row in result.rows:
        expected = expected_row(features[row.name], rows(hist), rows(vertices), [rows(b) for b in batches],
                                labels[everything])
        assert np.abs(np.array(row.hist) - expected["counts"]).sum() <= expected["near_edge"], row.name
        with np.load(result.path / "edges" / f"{row.index:03d}_{row.name}.npz") as stored:
            assert np.array_equal(stored["vertices"], vertices)
            assert set(zip(stored["i"].tolist(), stored["j"].tolist(), strict=True)) == expected["edges"]
        for key in ("mean_sim", "r", "AQ", "EQ", "M", "newman_q"):
            assert getattr(row, key) == pytest.approx(expected[key], abs=1e-4), (row.name, key)
        assert row.lu_q_batches == pytest.approx(expected["lu_q"], abs=1e-4), row.name
        # SPEC 13-15 on the same vertices: scikit-learn's ridge classifier, the plain k-NN rule and CKA formula
        vertex_features = features[row.name][rows(vertices)]
        y = labels[vertices]
        assert row.knn_acc == pytest.approx((oracle_knn(vertex_features, y, SETTINGS.knn_k) == y).mean(),
                                            abs=2 / len(y)), row.name
        folds = stratified_folds(y, 5, SETTINGS.seed)
        predicted = np.empty(len(y), dtype=np.int64)
        for part in range(5):
            model = RidgeClassifier(alpha=SETTINGS.probe_ridge, fit_intercept=False)
            model.fit(unit(vertex_features)[folds != part], y[folds != part])
            predicted[folds == part] = model.predict(unit(vertex_features)[folds == part])
        assert row.probe_acc == pytest.approx((predicted == y).mean(), abs=2 / len(y)), row.name
        last = features[result.rows[-1].name][rows(vertices)]
        assert row.cka_last == pytest.approx(oracle_cka(vertex_features, last), abs=1e-5), row.name
        if row.index == 0:
            assert row.cka_prev is None
        else:
            previous = features[result.rows[row.index - 1].name][rows(vertices)]
            assert row.cka_prev == pytest.approx(oracle_cka(vertex_features, previous), abs=1e-5), row.name
