"""The float32 GEMM engines of this machine on the scan's shapes (SPEC 3), and the rule ``--gemm auto`` follows.

Usage (from the repository root; as a user's machine runs, without the variables some build machines set)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gemm.py --json gemm.json

For each D: plain ``torch.mm`` and numpy's ``matmul`` (its OpenBLAS, all threads) of 1,024 x D rows against
10,240 x D rows, then sepgraph's two engines on what a scan computes, one 1,024 x 1,024 tile off the diagonal
and one on it (the diagonal counted as the whole square, what it stands for), GFLOP/s, best of ``--repeats``.
Prints the processor, the engine ``auto`` chooses here and one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sepgraph.devices import processor
from sepgraph.graph.gemm import DEFAULT_GEMM, choose_engine, numpy_openblas


def gflops(flop: float, function, repeats: int) -> float:
    """GFLOP/s of the best of ``repeats`` calls of ``function`` after one warm-up call."""
    function()
    best = min(_seconds(function) for _ in range(repeats))
    return flop / best / 1e9


def _seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(dims: int, engines: dict, repeats: int, generator: torch.Generator) -> dict:
    """One table row: GFLOP/s of the plain products and of each engine's tiles at ``dims``."""
    left, right = torch.randn(1024, dims, generator=generator), torch.randn(10240, dims, generator=generator)
    left_array, right_array = left.numpy(), right.numpy()
    wide, square = 2 * 1024 * 10240 * dims, 2 * 1024 * 1024 * dims
    row = {"D": dims, "torch_mm": gflops(wide, lambda: left @ right.T, repeats),
           "numpy": gflops(wide, lambda: left_array @ right_array.T, repeats)}
    tile = right[:1024]
    for name, engine in engines.items():
        row[f"{name}_tile"] = gflops(square, lambda e=engine: e.product(left, tile), repeats)
        row[f"{name}_diagonal"] = gflops(square, lambda e=engine: e.product(tile, tile, True), repeats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="1024,4096,16384", help="comma-separated D (default: 1024,4096,16384)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    cpu = processor()
    engines = {"torch": choose_engine("torch")}
    if numpy_openblas() is not None:
        engines["openblas"] = choose_engine("openblas")
    results = {"processor": cpu.model, "vendor": cpu.vendor, "family": cpu.family, "model": cpu.model_number,
               "avx512f": "avx512f" in cpu.flags, "avx512_bf16": "avx512_bf16" in cpu.flags,
               "amx_bf16": "amx_bf16" in cpu.flags, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "numpy_openblas": numpy_openblas(), "auto": choose_engine(DEFAULT_GEMM).library, "rows": []}
    print(f"{cpu.describe()}, {torch.get_num_threads()} threads; numpy's OpenBLAS {numpy_openblas()}; "
          f"--gemm auto -> {results['auto']}")
    print(f"{'D':>6} {'torch.mm':>9} {'numpy':>7} " + " ".join(f"{name + ' tile':>14} {name + ' diag':>14}"
                                                         for name in engines) + "   GFLOP/s")
    generator = torch.Generator().manual_seed(0)
    for dims in (int(d) for d in args.dims.split(",")):
        row = measure(dims, engines, args.repeats, generator)
        results["rows"].append(row)
        print(f"{dims:>6} {row['torch_mm']:>9.0f} {row['numpy']:>7.0f} " + " ".join(
            f"{row[name + '_tile']:>14.0f} {row[name + '_diagonal']:>14.0f}" for name in engines), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
