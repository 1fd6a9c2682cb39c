"""``sepgraph demo``: the whole method on embedded data in minutes, no download, no GPU.

Trains resnet20 on scikit-learn's handwritten digits (upsampled to 32x32), analyses it on
the held-out digits, applies Criterion I to M and to Lu et al.'s Q (the ``plateau`` rule; when
neither curve has a plateau it says so and shows Lu et al.'s block rule, ``delta``), prunes,
refits the head, fine-tunes, and writes a results folder with report.html. Sizes are scaled to the data
(364 test images): N = 350 vertices (35 per class), |E| = 3,500 (the paper's 10 edges per
vertex), histograms over all test pairs, Lu et al.'s Q on 3 batches of 100.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import torch

from .analysis import analyze
from .checkpoints import save_weights
from .comparison import compare_pruning
from .criterion import recommend
from .data import load_dataset
from .evaluation import evaluate
from .models import create_model
from .report import render_report
from .training import Recipe, train

DEMO_RECIPE = Recipe(epochs=12, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=64, milestones=(7, 10))
"""SPEC 10's recipe scaled to 1,437 training digits: fewer, shorter epochs and a larger step."""


def run_demo(out: str | Path = "results/demo", *, model: str = "resnet20", recipe: Recipe = DEMO_RECIPE,
             device: str = "auto", progress: bool = True) -> Path:
    """Train, analyse, prune and report on the embedded digits; returns the path of report.html.

    ``out`` is replaced: it holds ``train/`` (the trained model) and ``analysis/`` (results folder).
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    train_set, test_set = load_dataset("digits:train"), load_dataset("digits:test")
    torch.manual_seed(recipe.seed)
    network = create_model(model, num_classes=10)
    print(f"1/4 training {model} on {len(train_set)} handwritten digits for {recipe.epochs} epochs")
    train(network, train_set, normalize="none", recipe=recipe, out=out / "train", device=device, progress=progress)
    accuracy = evaluate(network, test_set, normalize="none", device=device, progress=False).accuracy
    save_weights(network, out / "model.pt")
    print(f"    test accuracy {accuracy:.2f}% on {len(test_set)} held-out digits")
    print("2/4 analysing every layer point: similarity histograms, subgraphs, M, Lu et al.'s Q")
    analysis = analyze(model, weights=out / "model.pt", data=test_set, normalize="none", vertices=350,
                       edges=3500, lu_batch_size=100, lu_batches=3, device=device, out=out / "analysis",
                       progress=progress)
    print("3/4 cutting where M and where Lu et al.'s Q say (Criterion I), refitting the head, fine-tuning")
    rule = "plateau"
    if not any(cut.removed for cut in recommend(analysis.rows).values()):
        rule = "delta"
        print("    neither curve has a plateau, peak or decline (both still rise at the last point), so Criterion I "
              "truncates nothing; showing Lu et al.'s block rule (delta, SPEC 8) instead")
    table = compare_pruning(analysis.path, train_set, test_data=test_set, rule=rule, head_epochs=2,
                            recipe=replace(recipe, epochs=6, milestones=(4,)), device=device, progress=progress)
    for row in table:
        print(f"    {row['curve']}: {row['cut']}; accuracy {row['accuracy_original']:.2f}% -> "
              f"{row['accuracy_finetuned']:.2f}%, parameters saved {row['params_saved_pct']:.1f}%")
    print("4/4 drawing figures and the report")
    return render_report(analysis.path)
