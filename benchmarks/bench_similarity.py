"""Similarity-stage throughput against the machine's own matmul, and Lu et al.'s Q against a plain version.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_similarity.py [--samples 10000] [--dims 4096 16384] [--json out.json]

(a) For each feature size D: GFLOP/s of sepgraph's full-set histogram (N samples) and
    top-|E| subgraph (4000 vertices), counting only the upper triangle's multiply-adds
    (N(N-1)/2 * D, two flops each), against one plain ``torch.mm`` of the same N x D
    matrix with its transpose (2 N^2 D flops). Target: ratio >= 0.6.
(b) Lu et al.'s Q over 5 batches of 500: sepgraph's vectorised version against their
    published algorithm written plainly (their ``calculate_similarity``: one
    ``torch.cosine_similarity`` call per pair i < j, then per-row ``heapq`` top-k; a
    dense adjacency (K + K^T) / 2, a networkx graph, ``networkx.community.modularity``)
    on the same features. Target: >= 20x. Also reported: the same plain algorithm with
    the pair loop replaced by one matrix product, to show where the time goes.

Features are random non-negative (ReLU-like) float32 with 10 classes; timings are the
best of ``--repeats`` runs. Nothing here is asserted: it prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import time

import networkx as nx
import numpy as np
import torch

from sepgraph.graph.modularity import lu_modularity
from sepgraph.graph.rows import unit_rows
from sepgraph.graph.scan import similarity_histogram, top_edges


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def pairwise_loop(features: np.ndarray) -> np.ndarray:
    """Their published similarity: one cosine call per pair i < j, diagonal 0."""
    feat = torch.from_numpy(features)
    n = len(feat)
    similarity = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            similarity[i, j] = similarity[j, i] = float(
                torch.cosine_similarity(feat[i].reshape(1, -1), feat[j].reshape(1, -1)))
    return similarity


def matrix_product(features: np.ndarray) -> np.ndarray:
    x = features.astype(np.float64)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, 0.0)
    return similarity


def lu_plain(features: np.ndarray, labels: np.ndarray, k: int, similarity_of=pairwise_loop) -> float:
    """Lu et al.'s modularity as their algorithm reads: per-row heapq, dense adjacency, networkx."""
    similarity = similarity_of(features)
    n = len(features)
    knn = np.zeros((n, n))
    for row in range(n):
        for neighbour in heapq.nlargest(k, range(n), key=lambda c, r=row: similarity[r, c]):
            knn[row, neighbour] = similarity[row, neighbour]
    graph = nx.from_numpy_array((knn + knn.T) / 2)
    communities = [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]
    return nx.community.modularity(graph, communities, weight="weight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000, help="histogram samples N (default: 10000)")
    parser.add_argument("--vertices", type=int, default=4000, help="subgraph vertices (default: 4000)")
    parser.add_argument("--edges", type=int, default=40000, help="subgraph edges (default: 40000)")
    parser.add_argument("--dims", type=int, nargs="+", default=[4096, 16384], help="feature sizes D")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--lu-dims", type=int, default=4096)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    memory = 4 << 30  # tiles of up to 1 GiB: 1,024 rows on the CPU
    rows = []
    for dims in args.dims:
        features = torch.relu(torch.randn(args.samples, dims))
        unit, _ = unit_rows(features, inplace=True)
        plain = best_of(args.repeats, lambda u=unit: torch.mm(u, u.T))
        histogram = best_of(args.repeats, lambda u=unit: similarity_histogram(u, 10, memory))
        vertex_unit = unit[: args.vertices].contiguous()
        plain_v = best_of(args.repeats, lambda u=vertex_unit: torch.mm(u, u.T))
        subgraph = best_of(args.repeats, lambda u=vertex_unit: top_edges(u, args.edges, memory))
        for stage, n, seconds, mm_seconds in (("histogram", args.samples, histogram, plain),
                                               ("subgraph", args.vertices, subgraph, plain_v)):
            upper = n * (n - 1) * dims / seconds / 1e9
            mm = 2 * n * n * dims / mm_seconds / 1e9
            rows.append({"stage": stage, "N": n, "D": dims, "seconds": seconds, "gflops": upper,
                         "torch_mm_gflops": mm, "ratio": upper / mm})
        del features, unit, vertex_unit

    rng = np.random.default_rng(0)
    batches = [np.abs(rng.standard_normal((500, args.lu_dims))).astype(np.float32) for _ in range(5)]
    labels = [np.repeat(np.arange(10), 50) for _ in range(5)]
    ours = best_of(args.repeats, lambda: [lu_modularity(unit_rows(b)[0], y, 3) for b, y in
                                          zip(batches, labels, strict=True)])
    plain_q = best_of(1, lambda: [lu_plain(b, y, 3) for b, y in zip(batches, labels, strict=True)])
    product_q = best_of(args.repeats, lambda: [lu_plain(b, y, 3, matrix_product) for b, y in
                                               zip(batches, labels, strict=True)])
    agree = abs(lu_modularity(unit_rows(batches[0])[0], labels[0], 3) - lu_plain(batches[0], labels[0], 3))

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'stage':<10}{'N':>7}{'D':>7}{'seconds':>9}{'GFLOP/s':>9}{'mm GFLOP/s':>12}{'ratio':>7}")
    for row in rows:
        print(f"{row['stage']:<10}{row['N']:>7}{row['D']:>7}{row['seconds']:>9.3f}{row['gflops']:>9.1f}"
              f"{row['torch_mm_gflops']:>12.1f}{row['ratio']:>7.2f}")
    print(f"Lu et al.'s Q, 5 x 500, D={args.lu_dims}: sepgraph {ours:.3f} s; their algorithm {plain_q:.2f} s "
          f"({plain_q / ours:.0f}x, |difference| {agree:.1e}); with one matrix product instead of the pair loop "
          f"{product_q:.3f} s ({product_q / ours:.1f}x)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"similarity": rows, "lu": {"sepgraph_seconds": ours, "published_seconds": plain_q,
                                                   "speedup": plain_q / ours, "difference": agree,
                                                   "matrix_product_seconds": product_q,
                                                   "speedup_vs_matrix_product": product_q / ours},
                       "threads": torch.get_num_threads(), "torch": torch.__version__}, handle, indent=2)


if __name__ == "__main__":
    main()
