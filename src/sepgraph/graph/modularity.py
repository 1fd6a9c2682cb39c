"""Modularity of similarity graphs: the paper's M, Newman's Q and Lu et al.'s Q (SPEC 6, 7).

Graphs are undirected edge lists, each edge once: ``i``, ``j`` (E,) int vertex
positions, ``w`` (E,) float weights, and ``labels`` (N,) int classes (the communities).
Everything is segment sums over edges; no Python loop touches an edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import SepgraphError
from .scan import pair_similarities


@dataclass(frozen=True)
class PaperModularity:
    """SPEC 6: r = |AS|/|E|, AQ and EQ (correct and wrong edges' modularity terms), M = r * AQ * (1 - EQ)."""

    r: float
    AQ: float
    EQ: float
    M: float


def _strengths(i: np.ndarray, j: np.ndarray, w: np.ndarray, vertices: int) -> np.ndarray:
    """s_v = sum of the weights of the edges at v, (N,) float64."""
    w = np.asarray(w, dtype=np.float64)
    return np.bincount(i, w, minlength=vertices) + np.bincount(j, w, minlength=vertices)


def _check_weight(total: float) -> None:
    if not total > 0:
        raise SepgraphError(
            f"the graph's edges weigh {total:g} in all; modularity needs a positive total weight "
            "(are the features of this layer point all zero or all orthogonal?)"
        )


def paper_modularity(i: np.ndarray, j: np.ndarray, w: np.ndarray, labels: np.ndarray) -> PaperModularity:
    """The paper's modularity M on a subgraph (SPEC 6, eq. 5 as printed).

    With s_v the strength of v and S = sum_v s_v:
    AQ = 1/(2S) sum_{(i,j) in AS} (w_ij - s_i s_j / (2S)), EQ likewise over ES,
    r = |AS| / |E| and M = r * AQ * (1 - EQ).
    """
    labels = np.asarray(labels)
    w = np.asarray(w, dtype=np.float64)
    strength = _strengths(i, j, w, len(labels))
    twice_total = 2.0 * strength.sum()
    _check_weight(twice_total / 4)
    terms = w - strength[i] * strength[j] / twice_total
    correct = labels[i] == labels[j]
    aq = float(terms[correct].sum() / twice_total)
    eq = float(terms[~correct].sum() / twice_total)
    r = float(correct.mean())
    return PaperModularity(r=r, AQ=aq, EQ=eq, M=r * aq * (1.0 - eq))


def newman_modularity(i: np.ndarray, j: np.ndarray, w: np.ndarray, labels: np.ndarray) -> float:
    """Weighted Newman modularity (resolution 1) with classes as communities (SPEC 6, 7).

    Q = sum_c [ W_c / W - (D_c / 2W)^2 ], W the total weight, W_c the weight inside
    class c, D_c the summed strength of its vertices; equals
    ``networkx.community.modularity(G, classes, weight="weight")``.
    """
    labels = np.asarray(labels)
    w = np.asarray(w, dtype=np.float64)
    total = w.sum()
    _check_weight(total)
    strength = _strengths(i, j, w, len(labels))
    class_strength = np.bincount(labels, strength, minlength=int(labels.max()) + 1)
    inside = w[labels[i] == labels[j]].sum()
    return float(inside / total - ((class_strength / (2.0 * total)) ** 2).sum())


def knn_graph(normed: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lu et al.'s graph on one batch (SPEC 7): each vertex keeps its k most similar others
    (cosine, diagonal set to 0; ties to the lower index), weight = similarity, then
    A = (K + K^T) / 2. Returns the upper-triangle edges (i, j, w) of A."""
    return knn_edges(pair_similarities(normed), k)


def knn_edges(similarity: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`knn_graph` from a batch's (n, n) similarity matrix (its diagonal is ignored)."""
    n_vertices = similarity.shape[0]
    similarity = similarity.to(torch.float64, copy=True)  # the caller's matrix stays as it was
    similarity.fill_diagonal_(0.0)
    kth = torch.topk(similarity, k, dim=1).values[:, -1:]
    above = similarity > kth
    ties = similarity == kth
    keep = above | (ties & (ties.cumsum(1) <= k - above.sum(1, keepdim=True)))
    knn = torch.where(keep, similarity, torch.zeros((), dtype=similarity.dtype, device=similarity.device))
    adjacency = (knn + knn.T) / 2
    i, j = torch.triu_indices(n_vertices, n_vertices, 1, device=similarity.device)
    w = adjacency[i, j]
    keep = w != 0  # a zero weight adds nothing to Q
    return i[keep].cpu().numpy(), j[keep].cpu().numpy(), w[keep].cpu().numpy()


def lu_modularity(normed: torch.Tensor, labels: np.ndarray, k: int = 3) -> float:
    """Lu et al.'s modularity of one batch: Newman Q of the symmetrised kNN graph (SPEC 7).

    Args:
        normed: (n, D) float32 unit rows of the batch.
        labels: (n,) int classes.
        k: neighbours kept per vertex.
    """
    return lu_modularity_of_similarity(pair_similarities(normed), labels, k)


def lu_modularity_of_similarity(similarity: torch.Tensor, labels: np.ndarray, k: int = 3) -> float:
    """:func:`lu_modularity` from the batch's (n, n) similarity matrix (its diagonal is ignored)."""
    i, j, w = knn_edges(similarity, k)
    return newman_modularity(i, j, w, labels)
