"""k-NN accuracy, the linear probe and linear CKA (SPEC 13-15) against scikit-learn and plain numpy."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier

from oracles import oracle_cka, oracle_knn
from sepgraph import SepgraphError
from sepgraph.graph.peers import (
    centered_gram,
    knn_accuracy,
    knn_predictions,
    linear_cka,
    probe_accuracy,
    stratified_folds,
)
from sepgraph.graph.rows import unit_rows
from sepgraph.graph.scan import pair_similarities


def features(seed: int, samples: int = 120, dims: int = 12, classes: int = 4, ties: bool = False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, samples)
    x = (rng.standard_normal((samples, dims)) + labels[:, None] * 0.4).astype(np.float32)
    if ties:  # duplicates and exact prototypes: equal similarities and tied votes
        x[::3] = np.eye(dims, dtype=np.float32)[labels[::3] % dims]
        x[1::7] = x[0]
    return x, labels


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([1, 3, 10]), st.booleans())
def test_knn_follows_spec_13_and_agrees_with_scikit_learn(seed, k, ties):
    x, labels = features(seed, ties=ties)
    similarity = pair_similarities(unit_rows(x)[0])
    ours = knn_predictions(similarity, labels, k).numpy()
    assert np.array_equal(ours, oracle_knn(x, labels, k))
    assert knn_accuracy(similarity, labels, k) == pytest.approx((ours == labels).mean())
    if not ties:  # scikit-learn breaks tied votes by the smallest class: compare where the vote is clear
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            model = KNeighborsClassifier(k, metric="cosine").fit(x[keep], labels[keep])
            votes = np.bincount(labels[keep][model.kneighbors(x[i:i + 1])[1][0]])
            if (votes == votes.max()).sum() == 1:
                assert model.predict(x[i:i + 1])[0] == ours[i]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([0.1, 1.0, 10.0]), st.booleans())
def test_probe_equals_ridge_classifier_on_the_same_folds(seed, ridge, ties):
    x, labels = features(seed, ties=ties)
    unit, zero = unit_rows(x)
    folds = stratified_folds(labels, 5, seed % 7)
    predictions = np.empty(len(x), dtype=np.int64)
    for part in range(5):
        train, test = folds != part, folds == part
        model = RidgeClassifier(alpha=ridge, fit_intercept=False).fit(unit.numpy()[train].astype(np.float64),
                                                                      labels[train])
        predictions[test] = model.predict(unit.numpy()[test].astype(np.float64))
    found = probe_accuracy(pair_similarities(unit), labels, zero, ridge, 5, seed % 7)
    assert found == pytest.approx((predictions == labels).mean(), abs=1.5 / len(x))  # one near-tie at most


def test_folds_are_stratified_seeded_and_balanced():
    labels = np.repeat(np.arange(3), [10, 7, 13])
    folds = stratified_folds(labels, 5, 0)
    assert np.array_equal(folds, stratified_folds(labels, 5, 0)) and not np.array_equal(folds,
                                                                                      stratified_folds(labels, 5, 1))
    assert np.ptp(np.bincount(folds)) <= 1
    for label in range(3):
        assert np.ptp(np.bincount(folds[labels == label], minlength=5)) <= 1


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([1.0, 1e-3, 1e3, 1e19, 1e-25]))
def test_linear_cka_equals_the_plain_formula(seed, scale):
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.standard_normal((60, 9)), 0).astype(np.float32) * scale
    b = np.maximum(a @ rng.standard_normal((9, 15)).astype(np.float32), 0)
    b[5] = 0  # a zero vector: similarity 0, Gram row 0
    grams = [centered_gram(pair_similarities(unit_rows(x)[0]),
                           torch.linalg.vector_norm(torch.from_numpy(x).double(), dim=1)) for x in (a, b)]
    assert linear_cka(*grams) == pytest.approx(oracle_cka(a.astype(np.float64), b.astype(np.float64)), abs=1e-5)
    assert linear_cka(grams[0], grams[0]) == pytest.approx(1.0, abs=1e-6)


def test_bad_parameters():
    similarity = pair_similarities(unit_rows(np.eye(4, dtype=np.float32))[0])
    with pytest.raises(SepgraphError, match="k 4 must be between 1 and the vertices - 1"):
        knn_accuracy(similarity, np.arange(4), 4)
    with pytest.raises(SepgraphError, match="ridge must be positive"):
        probe_accuracy(similarity, np.arange(4), ridge=0.0)
