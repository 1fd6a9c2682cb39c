"""Independent oracles the tests of several folders share: plain numpy and scikit-learn versions of the field's
measures (SPEC 13, 15)."""

import numpy as np


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
