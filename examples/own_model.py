"""A model from outside the zoo, pruned (SPEC 25): torchvision's resnet18 loses residual blocks by every criterion
at one target, beside its unpruned control, through the library's verbs alone.

Usage (from the repository root)::

    .venv/bin/python examples/own_model.py --data-dir ../shared/data --out results/own-resnet18

The model has random weights (the mechanics, not an accuracy claim); it is analysed on 2,000 images of the shared
CIFAR-10 test set (a lossy JPEG export, quality 75) and every row is fine-tuned for 1 epoch on 2,000 images of its
training set, at 32 x 32. The report (``OUT/report.html``) lists the blocks offered and why the others are not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sepgraph as sg

CRITERIA = "M,lu_q,knn_acc,probe_acc,cka_last,magnitude,ablation,block_influence,angular,random"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", default="results/own-resnet18")
    parser.add_argument("--model", default="torchvision:resnet18")
    parser.add_argument("--images", type=int, default=2000, help="images of each set used")
    parser.add_argument("--target-params", type=float, default=20.0)
    args = parser.parse_args()
    folder = Path(args.data_dir) / "cifar10-jpeg"
    train_set, test_set = (first(sg.load_dataset(f"npz:{folder / name}"), args.images)
                           for name in ("cifar10_train.npz", "cifar10_test.npz"))
    settings = sg.GraphSettings(vertices=500, edges=5000, lu_batch_size=100, lu_batches=3)
    pruned = sg.prune(args.out, train_set, model=args.model, data=test_set, test_data=test_set, settings=settings,
                      options=sg.PruningOptions(curves=CRITERIA.split(","), target_params=(args.target_params,),
                                                random_seeds=1, head_epochs=1),
                      recipe=sg.Recipe(epochs=1, batch_size=64, milestones=()))
    print(sg.pruning_markdown(pruned.rows, sg.Recipe(epochs=1, batch_size=64, milestones=())))
    print(f"report: {pruned.report}")


def first(dataset: sg.LabelledImages, count: int) -> sg.LabelledImages:
    """The first ``count`` images of each class in turn, as many per class as ``count`` allows."""
    per_class = count // dataset.num_classes
    chosen = np.sort(np.concatenate([np.flatnonzero(dataset.labels == label)[:per_class]
                                     for label in range(dataset.num_classes)]))
    return dataset.subset(chosen, f"{dataset.spec}[first {per_class} per class]")


if __name__ == "__main__":
    main()
