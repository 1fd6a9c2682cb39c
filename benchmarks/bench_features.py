"""Time and peak memory of streaming feature extraction for every layer point of a model.

Usage (from the repository root, with the shared data beside it):

    .venv/bin/python benchmarks/bench_features.py --model resnet56 \
        --weights ../shared/data/weights/resnet56-4bfd9763.th \
        --data npz:../shared/data/cifar10-jpeg/cifar10_test.npz --normalize imagenet --samples 2000

Prints one summary table and writes it as JSON (``--json``). Peak RSS is the process's
high-water mark (``ru_maxrss``), so run one configuration per process.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

import torch
from common import add_model_options, model_and_data

from sepgraph import extract_features, layer_points, select_vertices
from sepgraph.devices import default_max_memory, parse_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--convention", default="paper")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--max-memory", type=parse_memory, default=default_max_memory())
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", help="write the summary to this file")
    args = parser.parse_args()

    model, dataset = model_and_data(args)
    points = layer_points(model, args.convention)
    indices = select_vertices(dataset.labels, args.samples, seed=0)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    total_bytes = largest = 0
    for item in extract_features(model, points, dataset, indices, normalize=args.normalize,
                                 batch_size=args.batch_size, max_memory=args.max_memory, progress=False):
        total_bytes += item.features.nbytes
        largest = max(largest, item.features.nbytes)
        del item  # released before the next group is extracted
    seconds = time.perf_counter() - start
    summary = {
        "model": args.model, "convention": args.convention, "points": len(points), "samples": args.samples,
        "data": dataset.description, "torch_threads": torch.get_num_threads(),
        "max_memory_gib": args.max_memory / 2**30, "features_all_points_gib": total_bytes / 2**30,
        "largest_point_gib": largest / 2**30, "seconds": seconds,
        "rss_before_gib": baseline_rss / 2**30,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30,
        "min_passes": math.ceil(total_bytes / args.max_memory),
    }
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=2)


if __name__ == "__main__":
    main()
