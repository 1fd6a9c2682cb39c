"""How the similarity stage scales with the number of samples N and the feature size D.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_scaling.py [--json scaling.json]

For synthetic non-negative (ReLU-like) float32 features, times sepgraph's full-set histogram
for N in 1000, 2000, 4000, 10000 at D = 4096, and for D in 1024, 4096, 16384, 65536 at N = 4000, and
prints seconds, nanoseconds per upper-triangle multiply-add (flat when the N^2 D law holds),
the memory the stage holds by construction (the unit rows, N x D x 4 bytes, plus one block
row) and the measured peak RSS of a fresh process that does only that (Python and torch
included). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time

import torch

from sepgraph.graph.rows import unit_rows
from sepgraph.graph.scan import similarity_histogram
from sepgraph.graph.tiles import BYTES_PER_BLOCK_ENTRY, TilePlan

BUDGET = 4 << 30
"""The scan's memory budget: tiles of up to 1 GiB of working memory (1,024 rows on the CPU)."""


def measure(samples: int, dims: int) -> dict:
    torch.manual_seed(0)
    unit, _ = unit_rows(torch.randn(samples, dims).relu_(), inplace=True)
    similarity_histogram(unit[:256], 10, BUDGET)  # warm-up
    start = time.perf_counter()
    similarity_histogram(unit, 10, BUDGET)
    seconds = time.perf_counter() - start
    rows = TilePlan.create(samples, BUDGET).tile_rows
    multiply_adds = samples * (samples - 1) / 2 * dims
    return {"N": samples, "D": dims, "seconds": seconds, "ns_per_multiply_add": 1e9 * seconds / multiply_adds,
            "held_mib": (samples * dims * 4 + rows * rows * BYTES_PER_BLOCK_ENTRY) / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the table to this file")
    args = parser.parse_args()
    sizes = [(n, 4096) for n in (1000, 2000, 4000, 10000)] + [(4000, d) for d in (1024, 16384, 65536)]
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:  # one fresh process per size
        rows = pool.starmap(measure, sizes, chunksize=1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'N':>7}{'D':>7}{'seconds':>10}{'ns/mult-add':>13}{'held MiB':>10}{'peak RSS MiB':>14}")
    for row in sorted(rows, key=lambda r: (r["D"], r["N"])):
        print(f"{row['N']:>7}{row['D']:>7}{row['seconds']:>10.3f}{row['ns_per_multiply_add']:>13.4f}"
              f"{row['held_mib']:>10.0f}{row['peak_rss_mib']:>14.0f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
