"""Independent oracles the tests of several folders share: plain numpy versions of the similarity histogram
(SPEC 4) and of the field's measures (SPEC 13, 15)."""

import numpy as np


def oracle_histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, int]:
    """SPEC 4 in numpy: counts of float64 similarities ``values`` in ``bins`` equal bins over [0, 1] (the last
    closed, 1 and above in it) and the number below zero."""
    counts, _ = np.histogram(np.minimum(values[values >= 0], 1.0), bins=np.linspace(0, 1, bins + 1))
    return counts, int((values < 0).sum())


def near_edges(values: np.ndarray, bins: int, tolerance: float = 1e-6) -> int:
    """Pairs so close to a bin edge that float32 rounding may put them on either side."""
    edges = np.linspace(0, 1, bins + 1)
    return int((np.abs(values[:, None] - edges[None, :]) < tolerance).any(axis=1).sum())


def oracle_knn(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """SPEC 13 written plainly: float64 cosine, neighbours by (-similarity, index), majority, then the largest
    summed similarity, then the smallest class."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = unit.astype(np.float64) @ unit.T.astype(np.float64)
    predictions = []
    for i in range(len(x)):
        others = [j for j in range(len(x)) if j != i]
        neighbours = sorted(others, key=lambda j: (-round(s[i, j], 6), j))[:k]
        count = np.bincount(labels[neighbours], minlength=labels.max() + 1)
        weight = np.bincount(labels[neighbours], weights=s[i, neighbours], minlength=labels.max() + 1)
        best = [c for c in range(len(count)) if count[c] == count.max()]
        predictions.append(min(best, key=lambda c: (-round(weight[c], 6), c)))
    return np.array(predictions)


def oracle_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) with the biased HSIC, in float64."""
    n = len(a)
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ (a @ a.T) @ h, h @ (b @ b.T) @ h
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))
