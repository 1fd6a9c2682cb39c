"""One full analysis, timed stage by stage against the machine's own matmul and forward pass.

Usage (from the repository root), the issue's two scale targets:

    .venv/bin/python benchmarks/bench_pipeline.py --model resnet56 \\
        --weights ../shared/data/weights/resnet56-4bfd9763.th \\
        --data npz:../shared/data/cifar10-jpeg/cifar10_test.npz --normalize imagenet --json resnet56.json
    .venv/bin/python benchmarks/bench_pipeline.py --model resnet18 \\
        --data npz:../shared/data/cifar10-jpeg/cifar10_test.npz --json resnet18.json

Runs ``sepgraph.analyze`` with the paper's settings (histograms over every image of
``--data``, N = 4000 vertices, |E| = 40000, Lu et al.'s Q on 5 x 500) and reports:

- similarity stage: the one scan per layer point (histogram, top-|E| set of the vertices and
  Lu et al.'s batch similarities from the same blocks), with GFLOP/s counting only the upper
  triangle's multiply-adds (pairs x D, two flops each), against the machine's best plain product
  of the same N x D unit matrix with its transpose (``torch.mm`` or numpy's OpenBLAS, whichever is
  faster), timed here at every (N, D) the analysis used. Ratio = time that product needs for those
  flops / time taken; target >= 0.85 on the CPU (``--gemm`` picks sepgraph's engine). Then the
  modularity stage (M, Newman Q, Lu et al.'s kNN graphs and Q), which does no GEMM, and the peer
  measures of the vertices (k-NN and probe accuracy, CKA; SPEC 13-15).
- forward passes: the feature-extraction time (one pass per group of points that fits the
  memory budget, each stopped after its group's last point; with ``--spill-dir`` one pass
  and the reading back of the files), beside one plain forward pass of the whole model
  over the same images, data loading included.
- everything else (model and data loading, sample choice, writing results): the rest of
  the wall time; target <= 15%.
- peak RSS of the process, read before the reference timings run.

It prints one table and writes the same numbers as JSON. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import time
from pathlib import Path

import torch
from common import add_model_options, model_and_data, synchronise

from sepgraph import GraphSettings, RunSettings, analyze
from sepgraph.analysis.features import plan_groups
from sepgraph.data.samples import SampleSets
from sepgraph.devices import ieee_float32_matmul, physical_memory, processor, resolve_device
from sepgraph.graph.gemm import DEFAULT_GEMM
from sepgraph.graph.rows import unit_rows


def mm_gflops(samples: int, dims: int, device: torch.device) -> dict[str, float]:
    """GFLOP/s of one plain product of a (samples x dims) float32 unit matrix with its transpose, per engine the
    machine has: ``torch.mm`` (torch's BLAS; on CUDA cuBLAS in full float32) and, on the CPU, numpy's
    ``matmul`` (its OpenBLAS, all threads)."""
    torch.manual_seed(0)
    unit, _ = unit_rows(torch.randn(samples, dims, device=device).relu_(), inplace=True)
    if device.type == "cuda":
        with ieee_float32_matmul():
            return {"torch": _best_rate(lambda: torch.mm(unit, unit.T), samples, dims, device)}
    # numpy takes ``a @ a.T`` as a symmetric rank-k update (half the flops), so it gets a copy: the reference is a
    # general product, like the scan's off-diagonal tiles
    array, copy = unit.numpy(), unit.numpy().copy()
    return {"torch": _best_rate(lambda: torch.mm(unit, unit.T), samples, dims, device),
            "numpy": _best_rate(lambda: array @ copy.T, samples, dims, device)}


def _best_rate(product, samples: int, dims: int, device: torch.device) -> float:
    """GFLOP/s of the best of a few runs of ``product`` (an N x N result from N x D rows), after a warm-up."""
    product()
    repeats = 1 if samples * samples * dims > 1e11 else 3
    seconds = math.inf
    for _ in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        product()
        synchronise(device)
        seconds = min(seconds, time.perf_counter() - start)
    return 2 * samples * samples * dims / seconds / 1e9


def forward_seconds(args: argparse.Namespace, model, dataset, order, device: torch.device) -> float:
    """One plain forward pass of the whole model over ``order``, batches read as the analysis reads them."""
    start = time.perf_counter()
    with torch.inference_mode():
        for images, _ in dataset.batches(order, args.batch_size, args.normalize):
            model(images.to(device))
    synchronise(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--vertices", type=int, default=4000)
    parser.add_argument("--edges", type=int, default=40000)
    parser.add_argument("--lu-batch-size", type=int, default=500)
    parser.add_argument("--lu-batches", type=int, default=5)
    parser.add_argument("--max-memory", type=int, help="feature budget in bytes (default: sepgraph's)")
    parser.add_argument("--spill-dir", help="sepgraph's --spill-dir: one forward pass, features via files there")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="keep the results folder here (default: a temporary folder)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--gemm", default=DEFAULT_GEMM, help="sepgraph's --gemm: auto, torch or openblas")
    parser.add_argument("--json", help="write the summary to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out) if args.out else Path(scratch) / "analysis"
        settings = GraphSettings(vertices=args.vertices, edges=args.edges, lu_batch_size=args.lu_batch_size,
                                 lu_batches=args.lu_batches, seed=args.seed)
        run = RunSettings(device=args.device, max_memory=args.max_memory, spill_dir=args.spill_dir,
                          batch_size=args.batch_size, gemm=args.gemm)
        result = analyze(args.model, args.data, settings, weights=args.weights, normalize=args.normalize, run=run,
                         out=out, overwrite=True, progress=False)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    manifest, rows = result.manifest, result.rows
    seconds = manifest.seconds

    device = resolve_device(args.device)
    model, dataset = model_and_data(args)
    model.to(device)
    sample_sets = SampleSets.choose(dataset.labels, dataset.num_classes, settings)
    groups = plan_groups([row.dim for row in rows], len(sample_sets.order), manifest.run.max_memory)
    passes = 1 if args.spill_dir else len(groups)
    one_pass = forward_seconds(args, model, dataset, sample_sets.order, device)

    hist = len(sample_sets.hist_indices)
    dims = sorted({row.dim for row in rows})
    engines = {(hist, d): mm_gflops(hist, d, device) for d in dims}
    mm = {key: max(rates.values()) for key, rates in engines.items()}  # the best engine at each shape
    flops = [2 * hist * (hist - 1) / 2 * row.dim for row in rows]  # one upper triangle: every pair once
    mm_time = sum(f / mm[hist, row.dim] / 1e9 for f, row in zip(flops, rows, strict=True))
    stages = [{"stage": "similarity", "N": hist, "seconds": seconds["similarity"],
               "gflops": sum(flops) / seconds["similarity"] / 1e9, "best_gemm_seconds": mm_time,
               "ratio": mm_time / seconds["similarity"]},
              {"stage": "modularity", "N": args.vertices, "seconds": seconds["modularity"], "gflops": None,
               "best_gemm_seconds": None, "ratio": None},
              {"stage": "peers", "N": args.vertices, "seconds": seconds["peers"], "gflops": None,
               "best_gemm_seconds": None, "ratio": None}]
    similarity = seconds["similarity"] + seconds["modularity"] + seconds["peers"]
    similarity_mm = mm_time
    total = seconds["total"]
    other = total - similarity - seconds["features"]
    summary = {
        "machine": {"cpu": processor().model, "threads": torch.get_num_threads(),
                    "ram_gib": physical_memory() / 2**30, "torch": torch.__version__,
                    "gemm": manifest.parameters.gemm},
        "analysis": {"model": args.model, "weights": args.weights, "data": manifest.data_description,
                     "points": len(rows), "hist_samples": len(sample_sets.hist_indices), "vertices": args.vertices,
                     "edges": args.edges, "max_memory": manifest.run.max_memory, "spill_dir": args.spill_dir},
        "stages": stages,
        "similarity": {"seconds": similarity, "best_gemm_seconds": similarity_mm,
                       "ratio": similarity_mm / seconds["similarity"], "target_ratio": 0.85},
        "forward": {"seconds": seconds["features"], "passes": passes, "one_plain_pass_seconds": one_pass},
        "other": {"seconds": other, "share": other / total, "target_share": 0.15},
        "total_seconds": total,
        "peak_rss_bytes": peak_rss,
        "gemm_gflops": [{"N": n, "D": d, **rates} for (n, d), rates in engines.items()],
    }
    print_table(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


def print_table(summary: dict) -> None:
    machine, analysis, total = summary["machine"], summary["analysis"], summary["total_seconds"]
    print(f"machine: {machine['cpu']}, {machine['threads']} threads, {machine['ram_gib']:.0f} GiB RAM, "
          f"torch {machine['torch']}")
    print(f"analysis: {analysis['model']} ({analysis['weights'] or 'random weights'}), {analysis['points']} points, "
          f"histograms over {analysis['hist_samples']} images, N = {analysis['vertices']}, |E| = {analysis['edges']}, "
          f"feature budget {analysis['max_memory'] / 2**30:.2f} GiB"
          f"{', spilled to ' + analysis['spill_dir'] if analysis['spill_dir'] else ''}; {analysis['data']}")
    print(f"{'stage':<24}{'seconds':>9}{'share':>7}{'GFLOP/s':>9}{'ratio to best GEMM':>19}   target")
    for stage in summary["stages"]:
        rates = f"{stage['gflops']:>9.1f}{stage['ratio']:>19.2f}" if stage["ratio"] is not None else ""
        print(f"{'  ' + stage['stage'] + ' (N=' + str(stage['N']) + ')':<24}{stage['seconds']:>9.1f}"
              f"{stage['seconds'] / total:>7.1%}{rates}")
    similarity, forward, other = summary["similarity"], summary["forward"], summary["other"]
    print(f"{'similarity stage':<24}{similarity['seconds']:>9.1f}{similarity['seconds'] / total:>7.1%}{'':>9}"
          f"{similarity['ratio']:>19.2f}   >= {similarity['target_ratio']}")
    print(f"{'forward passes':<24}{forward['seconds']:>9.1f}{forward['seconds'] / total:>7.1%}   "
          f"({forward['passes']} passes; one plain full pass {forward['one_plain_pass_seconds']:.1f} s)")
    print(f"{'everything else':<24}{other['seconds']:>9.1f}{other['share']:>7.1%}{'':>28}   "
          f"<= {other['target_share']:.0%}")
    print(f"{'total wall':<24}{total:>9.1f}   ({total / 60:.1f} min)")
    print(f"peak RSS {summary['peak_rss_bytes'] / 1e9:.2f} GB")
    print("plain products, GFLOP/s (torch / numpy): " + ", ".join(
        f"N={m['N']} D={m['D']}: {m['torch']:.0f} / {m.get('numpy', math.nan):.0f}" for m in summary["gemm_gflops"]))


if __name__ == "__main__":
    main()
