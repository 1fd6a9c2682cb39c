"""The field's per-layer measures beside M, from the vertices' exact similarity block (SPEC 13-15).

Every function takes the (N, N) float32 cosine similarity matrix of the N subgraph vertices (from the
same scan as everything else, :func:`sepgraph.graph.scan.scan_pairs`), so none of them needs another
pass over the features, and none grows with the feature size:

- :func:`knn_accuracy` (:func:`knn_predictions`): leave-one-out k-nearest-neighbour accuracy (SPEC 13);
- :func:`probe_accuracy`: a linear probe, ridge regression onto one-hot labels solved in the dual on
  the same Gram block, by stratified k-fold cross-validation (SPEC 14);
- :func:`centered_gram` and :func:`linear_cka`: linear CKA between two layer points (SPEC 15).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import one_thread
from ..errors import SepgraphError
from ..settings import GraphSettings


def knn_predictions(similarity: torch.Tensor, labels: np.ndarray, k: int = 10) -> torch.Tensor:
    """Each vertex's leave-one-out k-NN prediction on cosine similarity (SPEC 13), (N,) int64.

    The k most similar other vertices vote (never the vertex itself; among equally similar candidates
    for the last places, the smaller indices); the majority class wins, ties go to the class whose tied
    neighbours have the largest summed similarity, then to the smallest class index.

    Args:
        similarity: (N, N) float32, symmetric; its diagonal is ignored (overwritten while this runs, then restored).
        labels: (N,) int classes.
        k: neighbours, 1 <= k < N.
    """
    n_vertices = similarity.shape[0]
    if not 1 <= k < n_vertices:
        raise SepgraphError(f"k {k} must be between 1 and the vertices - 1 ({n_vertices - 1})", arguments=("k",))
    diagonal = similarity.diagonal().clone()
    similarity.fill_diagonal_(float("-inf"))  # never its own neighbour; put back below (no N x N copy)
    try:
        values, chosen = torch.topk(similarity, k + 1, dim=1)
        straddling = torch.nonzero(values[:, k] == values[:, k - 1]).squeeze(1)  # a tie across the k-th place
        values, chosen = values[:, :k].contiguous(), chosen[:, :k].contiguous()
        if len(straddling):  # the tied candidates with the smaller indices, as in SPEC 5
            rows = similarity[straddling]
            kth = values[straddling, -1:]
            above, ties = rows > kth, rows == kth
            keep = above | (ties & (ties.cumsum(1) <= k - above.sum(1, keepdim=True)))
            chosen[straddling] = torch.nonzero(keep)[:, 1].view(-1, k)
            values[straddling] = torch.gather(rows, 1, chosen[straddling])
    finally:
        similarity.diagonal().copy_(diagonal)
    target = torch.as_tensor(labels, dtype=torch.int64, device=similarity.device)
    classes = int(target.max()) + 1
    neighbour = target[chosen]                                         # (N, k)
    votes = torch.zeros(n_vertices, classes, dtype=torch.float64, device=similarity.device)
    votes.scatter_add_(1, neighbour, torch.ones_like(values, dtype=torch.float64))
    weight = torch.zeros_like(votes).scatter_add_(1, neighbour, values.double())
    best = votes == votes.max(1, keepdim=True).values
    no = torch.tensor(float("-inf"), dtype=torch.float64, device=weight.device)
    return torch.where(best, weight, no).argmax(1)  # argmax takes the first maximum: the smallest class


def knn_accuracy(similarity: torch.Tensor, labels: np.ndarray, k: int = 10) -> float:
    """Share of vertices whose :func:`knn_predictions` is their class (SPEC 13)."""
    target = torch.as_tensor(labels, dtype=torch.int64, device=similarity.device)
    return float((knn_predictions(similarity, labels, k) == target).double().mean())


def stratified_folds(labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(N,) int64 fold of every vertex: each class's members, shuffled with ``seed``, dealt round-robin."""
    labels = np.asarray(labels)
    assignment = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng([seed, 2])
    start = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (start + np.arange(len(members))) % folds
        start += len(members)  # the next class continues the deal, so folds differ in size by at most one
    return assignment


def probe_accuracy(similarity: torch.Tensor, labels: np.ndarray, zero: torch.Tensor | None = None,
                   ridge: float = 1.0, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a linear probe on the unit rows (SPEC 14).

    Ridge regression onto one-hot labels without intercept, W = U_T^T (K_TT + ridge I)^-1 Y_T with
    K = U U^T the unit rows' Gram (the cosine matrix, diagonal 1; 0 for zero vectors), evaluated on each
    held-out fold of :func:`stratified_folds`; a vertex counts when its largest score is its class. Every
    fold's residuals Y_H - scores_H come from :func:`held_out_residuals` on K + ridge I.

    Args:
        similarity: (N, N) float32 cosine similarity of the vertices (diagonal ignored).
        labels: (N,) int classes.
        zero: (N,) bool, the vertices whose feature vector is zero (their Gram diagonal is 0).
        ridge: lambda > 0.
    """
    if not ridge > 0:
        raise SepgraphError(f"ridge must be positive, got {ridge}", arguments=("ridge",))
    n_vertices = similarity.shape[0]
    fold = stratified_folds(labels, folds, seed)
    order = torch.as_tensor(np.argsort(fold, kind="stable"), device=similarity.device)  # the folds, contiguous
    bounds = [int(bound) for bound in np.searchsorted(np.sort(fold), np.arange(folds + 1))]
    bounds = [bound for position, bound in enumerate(bounds) if position == 0 or bound > bounds[position - 1]]
    gram = similarity[order.unsqueeze(1), order.unsqueeze(0)]
    diagonal = torch.ones(n_vertices, dtype=gram.dtype, device=gram.device)
    if zero is not None:
        diagonal[zero.to(gram.device)[order]] = 0.0
    gram.diagonal().copy_(diagonal + ridge)
    target = torch.as_tensor(labels, dtype=torch.int64, device=similarity.device)[order]
    one_hot = torch.nn.functional.one_hot(target, int(target.max()) + 1).to(gram.dtype)
    residuals = torch.cat(held_out_residuals(gram, one_hot, bounds))
    return int(((one_hot - residuals).argmax(1) == target).sum()) / n_vertices


def held_out_residuals(matrix: torch.Tensor, targets: torch.Tensor, bounds: list[int]) -> list[torch.Tensor]:
    """Y_H - A_HT A_TT^-1 Y_T for every fold H, T the other folds: kernel ridge's held-out residuals (SPEC 14).

    Gaussian elimination of T from A x = Y leaves exactly that right-hand side on H, so the folds are
    eliminated along a binary tree: each half's Schur complement S = A_HH - A_HT A_TT^-1 A_TH (and its
    right-hand side) comes from one Cholesky factorisation of the other half, and is split again. No inverse
    is formed; about 0.45 N^3 flops for 5 folds, mostly matrix products.

    Args:
        matrix: (n, n) symmetric positive definite A = K + ridge I, rows in fold order.
        targets: (n, C) one-hot Y in the same order.
        bounds: fold boundaries, 0 = bounds[0] < ... < bounds[-1] = n.

    Returns:
        One (|H|, C) residual block per fold, in fold order.
    """
    if len(bounds) == 2:
        return [targets]
    middle = (len(bounds) - 1) // 2
    cut = bounds[middle] - bounds[0]
    first, second = slice(0, cut), slice(cut, None)
    residuals = []
    for keep, other, inner in ((first, second, bounds[:middle + 1]), (second, first, bounds[middle:])):
        with one_thread():  # MKL's factorisation is the one step here whose floats depend on the threads
            factor, info = torch.linalg.cholesky_ex(matrix[other, other])
        if int(info):
            raise SepgraphError("the probe's kernel matrix is not positive definite; raise probe_ridge",
                                arguments=("probe_ridge",))
        if len(inner) == 2:  # one fold: its right-hand side is all it needs
            residuals.append(targets[keep] - matrix[keep, other] @ torch.cholesky_solve(targets[other], factor))
            continue
        coupling = torch.linalg.solve_triangular(factor, matrix[other, keep], upper=False)
        projected = torch.linalg.solve_triangular(factor, targets[other], upper=False)
        schur = torch.addmm(matrix[keep, keep], coupling.T, coupling, alpha=-1)
        residuals += held_out_residuals(schur, torch.addmm(targets[keep], coupling.T, projected, alpha=-1),
                                        [bound - inner[0] for bound in inner])
    return residuals


def centered_gram(similarity: torch.Tensor, norms: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """H K H for the raw features' Gram K_ij = |h_i| |h_j| cos_ij (diagonal |h_i|^2), H = I - 11^T/N (SPEC 15).

    Args:
        similarity: (N, N) float32 cosine similarity (diagonal ignored); with ``inplace`` it becomes the result.
        norms: (N,) row norms of the raw features.

    Returns:
        (N, N) float32, for features rescaled so that the largest row norm is 1 (CKA is scale-free).
    """
    norms = norms.to(similarity.device, torch.float64)
    norms = (norms / norms.max()).float()  # CKA ignores the scale: K in [-1, 1] whatever the features' scale
    gram = similarity if inplace else similarity.clone()
    gram.mul_(norms.unsqueeze(0)).mul_(norms.unsqueeze(1)).diagonal().copy_(norms * norms)
    means = gram.sum(1).double() / len(gram)  # K is symmetric: row and column means agree
    gram.sub_(means.float().unsqueeze(0)).sub_(means.float().unsqueeze(1)).add_(float(means.mean()))
    return gram


def frobenius_inner(first: torch.Tensor, second: torch.Tensor, rows: int = 256) -> float:
    """<A, B> = sum_ij A_ij B_ij of two (N, N) float32 matrices: float32 row sums of products, summed in float64,
    ``rows`` rows at a time (no N x N temporary)."""
    products = torch.empty(min(rows, len(first)), first.shape[1], dtype=first.dtype, device=first.device)
    total = torch.zeros((), dtype=torch.float64, device=first.device)
    for a, b in zip(first.split(rows), second.split(rows), strict=True):
        total += torch.mul(a, b, out=products[:len(a)]).sum(1).double().sum()
    return float(total)


def linear_cka(first: torch.Tensor, second: torch.Tensor, norms: tuple[float, float] | None = None) -> float:
    """Linear CKA of two centered Grams (biased HSIC; its 1/(N-1)^2 cancels): <A, B> / (|A| |B|), in [0, 1].

    ``norms``: |A| and |B| when already known (:func:`frobenius_inner` of each with itself, square-rooted).
    """
    first_norm, second_norm = norms or (frobenius_inner(first, first) ** 0.5, frobenius_inner(second, second) ** 0.5)
    return frobenius_inner(first, second) / (first_norm * second_norm) if first_norm * second_norm > 0 else 0.0


@dataclass(frozen=True)
class CenteredGram:
    """A point's centered vertex Gram with its Frobenius norm, computed once (SPEC 15)."""

    matrix: torch.Tensor
    norm: float

    @classmethod
    def of(cls, similarity: torch.Tensor, norms: torch.Tensor, inplace: bool = False) -> CenteredGram:
        """From a cosine block and the raw row norms (:func:`centered_gram`; ``inplace`` reuses the block)."""
        matrix = centered_gram(similarity, norms, inplace)
        return cls(matrix, frobenius_inner(matrix, matrix) ** 0.5)

    def cka(self, other: CenteredGram) -> float:
        """Linear CKA with another point's Gram."""
        return linear_cka(self.matrix, other.matrix, (self.norm, other.norm))


@dataclass(frozen=True)
class VertexBlock:
    """What the per-layer measures of SPEC 13-14 read: the vertices' exact similarity block and their classes.

    Attributes:
        similarity: (N, N) float32 cosine similarity of the vertices (diagonal ignored).
        labels: (N,) int classes.
        zero: (N,) bool, the vertices whose feature vector is zero.
    """

    similarity: torch.Tensor
    labels: np.ndarray
    zero: torch.Tensor


VERTEX_MEASURES: dict[str, Callable[[VertexBlock, GraphSettings], float]] = {
    "knn_acc": lambda block, settings: knn_accuracy(block.similarity, block.labels, settings.knn_k),
    "probe_acc": lambda block, settings: probe_accuracy(block.similarity, block.labels, block.zero,
                                                        settings.probe_ridge, seed=settings.seed),
}
"""The measures on the vertex block, by the :class:`~sepgraph.results.layer_row.LayerRow` attribute each fills, in
the order they run (each leaves the block as it found it). A new measure is a function here, one entry in this
table, a row attribute and, to cut by it, an entry of :data:`~sepgraph.pruning.criterion.CRITERIA`."""
