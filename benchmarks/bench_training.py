"""Training throughput: images per second of one SGD step (the recipe's, SPEC 10) per model, memory layout and
precision, on synthetic 32 x 32 images (the speed of a step does not depend on what the pixels show); beside it,
the float32 forward pass in evaluation mode per layout (what feature extraction runs, SPEC 3).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_training.py --models resnet20,vgg16_bn --json training.json

Each cell: ``--warmup`` steps, then the best of ``--repeats`` runs of ``--steps`` steps at ``--batch-size``
(forward, cross-entropy, backward, SGD update), plus the recipe's augmentation of one batch timed alone. bf16 is
measured only where the device computes it natively (:func:`sepgraph.training.precision.native_bf16`). Nothing
is asserted; it prints one table and writes the same numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from common import synchronise

from sepgraph import create_model
from sepgraph.devices import processor, resolve_device
from sepgraph.training.augmentation import augment_batch
from sepgraph.training.precision import MEMORY_FORMATS, autocast, native_bf16


def images_per_second(model_name: str, layout: str, precision: str, args: argparse.Namespace,
                      device: torch.device, training: bool = True) -> float:
    """Images/s of ``--steps`` SGD steps of ``model_name`` (best of ``--repeats``); with ``training`` False, of
    ``--steps`` forward passes in evaluation mode without gradients."""
    torch.manual_seed(0)
    model = create_model(model_name, 10).to(device).train(training)
    memory_format = MEMORY_FORMATS[layout]
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.005)
    images = torch.rand(args.batch_size, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)

    def step() -> None:
        with autocast(precision, device):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def forward() -> None:
        with torch.inference_mode():
            model(images)

    run = step if training else forward
    for _ in range(args.warmup):
        run()
    best = float("inf")
    for _ in range(args.repeats):
        synchronise(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            run()
        synchronise(device)
        best = min(best, time.perf_counter() - start)
    return args.steps * args.batch_size / best


def augmentation_seconds(batch_size: int) -> float:
    """Seconds to augment one batch of 32 x 32 images on the CPU (best of 5)."""
    images, generator = torch.rand(batch_size, 3, 32, 32), torch.Generator().manual_seed(0)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        augment_batch(images, generator, 4)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20", help="comma-separated zoo names (default: resnet20)")
    parser.add_argument("--layouts", default="contiguous,channels_last",
                        help=f"comma-separated memory formats among {', '.join(MEMORY_FORMATS)} (as sepgraph train's "
                             "--memory-format; default: both)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    models, layouts = args.models.split(","), args.layouts.split(",")
    unknown = [layout for layout in layouts if layout not in MEMORY_FORMATS]
    if unknown:
        parser.error(f"--layouts {', '.join(unknown)}: use {' and/or '.join(MEMORY_FORMATS)}")
    device = resolve_device(args.device)
    precisions = ["fp32", "bf16"] if native_bf16(device) else ["fp32"]
    results = {"device": str(device), "processor": processor().model,
               "threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": args.batch_size,
               "bf16_native": native_bf16(device), "augmentation_seconds_per_batch": augmentation_seconds(
                   args.batch_size), "images_per_second": {}, "inference_images_per_second": {}}
    print(f"{'model':<14} {'layout':<14} {'precision':<9} {'images/s':>9} {'s per epoch of 50,000':>22}")
    for model_name in models:
        for layout in layouts:
            for precision in precisions:
                rate = images_per_second(model_name, layout, precision, args, device)
                results["images_per_second"][f"{model_name}/{layout}/{precision}"] = rate
                print(f"{model_name:<14} {layout:<14} {precision:<9} {rate:9.0f} {50_000 / rate:22.1f}", flush=True)
    print(f"\n{'model':<14} {'layout':<14} {'float32 inference images/s':>27}")
    for model_name in models:
        for layout in layouts:
            rate = images_per_second(model_name, layout, "fp32", args, device, training=False)
            results["inference_images_per_second"][f"{model_name}/{layout}"] = rate
            print(f"{model_name:<14} {layout:<14} {rate:27.0f}", flush=True)
    print(f"augmentation of one batch of {args.batch_size}: {results['augmentation_seconds_per_batch'] * 1e3:.1f} ms")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
