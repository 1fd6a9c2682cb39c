"""``sepgraph demo``: the whole method on embedded data in minutes, no download, no GPU.

Trains resnet20 on scikit-learn's handwritten digits (upsampled to 32x32), analyses it on the selection half of
the held-out digits (SPEC 21), applies Criterion I to M and to Lu et al.'s Q under the ``plateau`` and ``delta``
rules, prunes, refits the head and fine-tunes every cut and an unpruned control with the same budget, reports their
accuracies on the other half, says where M and Q differ, and writes a results folder with report.html. Sizes are
scaled to the data (180 of the 364 test images in the selection half): N = 180 vertices (18 per class), |E| = 1,800
(the paper's 10 edges per vertex), histograms over all its pairs, Lu et al.'s Q on 3 batches of 60.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from .. import (
    GraphSettings,
    PruningOptions,
    Recipe,
    ReportSettings,
    RunSettings,
    build_model,
    evaluate,
    load_dataset,
    prune,
    train,
)
from ..pruning.criterion import recommend
from ..pruning.table import differences
from ..results.dynamics_table import MEASURES, DynamicsRow, load_dynamics

DEMO_RECIPE = Recipe(epochs=12, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=64, milestones=(7, 10))
"""SPEC 10's recipe scaled to 1,437 training digits: fewer, shorter epochs and a larger step."""

TRACK_EVERY = 2
"""Epochs between the measurements of the demo's training dynamics (SPEC 17)."""

DEMO_GRAPH = GraphSettings(vertices=180, edges=1800, lu_batch_size=60, lu_batches=3)
"""The paper's graph sizes scaled to the 180 test digits of the selection half: 18 vertices per class, 10 edges per
vertex."""


def run_demo(out: str | Path = "results/demo", *, model: str = "resnet20", recipe: Recipe = DEMO_RECIPE,
             device: str = "auto", progress: bool = True) -> Path:
    """Train, analyse, prune and report on the embedded digits; returns the path of report.html.

    ``out`` is replaced: it holds ``train/`` (the trained model, ``dynamics.csv`` and ``dynamics.png``) and
    ``analysis/`` (results folder).
    """
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    train_set, test_set = load_dataset("digits:train"), load_dataset("digits:test")
    print(f"1/4 training {model} on {len(train_set)} handwritten digits for {recipe.epochs} epochs, measuring M, "
          f"Lu et al.'s Q and k-NN accuracy at every layer point every {TRACK_EVERY} epochs on the held-out digits")
    train(model, train_set, out=out / "train", recipe=recipe, normalize="none", device=device,
                track_every=TRACK_EVERY, track_data=test_set, track_vertices=DEMO_GRAPH.vertices, progress=progress)
    weights = out / "train" / "model.pt"
    network = build_model(model, 10, weights).model
    accuracy = evaluate(network, test_set, normalize="none", device=device, progress=False).accuracy
    print(f"    test accuracy {accuracy:.2f}% on {len(test_set)} held-out digits")
    _print_dynamics(load_dynamics(out / "train" / "dynamics.csv"))
    print("2/4 analysing every layer point: similarity histograms, subgraphs, M, Lu et al.'s Q, k-NN and probe "
          "accuracy, CKA; then")
    print("3/4 cutting where M and where Lu et al.'s Q say (Criterion I: plateau, then delta), training every "
          "row and an unpruned control alike, and drawing figures and the report")
    epochs = max(1, recipe.epochs // 2)  # fine-tuning: half the training epochs, lr step two thirds in
    finetune = replace(recipe, epochs=epochs, milestones=(2 * epochs // 3,) if epochs >= 3 else ())
    pruned = prune(out / "analysis", train_set, model=model, data=test_set, weights=weights, normalize="none",
                   settings=DEMO_GRAPH, run=RunSettings(device=device), test_data=test_set,  # its report half
                   options=PruningOptions(rules=("plateau", "delta"), head_epochs=2), recipe=finetune, device=device,
                   report=ReportSettings(rule="delta"), progress=progress)
    analysis, table = pruned.analysis, pruned.rows
    for row in table:
        label = "unpruned (control)" if row.kind == "control" else f"{row.curve}, {row.rule}"
        change = "" if row.kind == "control" else f" ({row.accuracy_vs_control:+.2f} vs control)"
        print(f"    {label}: {row.cut}; accuracy {row.accuracy_original:.2f}% -> "
              f"{row.accuracy_finetuned:.2f}%{change}, parameters saved {row.params_saved_pct:.1f}%")
    for sentence in differences(table):
        print(f"    {sentence}")
    delta = recommend(analysis.rows, "delta", units=analysis.manifest.removable_units)
    print(f"    why, under delta: each removable unit's contribution (curve at its output minus at its input) against "
          f"the threshold, M {delta['M'].threshold:.4f} and Q {delta['lu_q'].threshold:.4f} (tau x each curve's range)")
    for by_m, by_q in zip(delta["M"].contributions, delta["lu_q"].contributions, strict=True):
        verdicts = [("not judged" if c.value is None else f"{c.value:+.4f}") + (" removed" if c.removed else "")
                    for c in (by_m, by_q)]
        print(f"      {by_m.unit:<10} M {verdicts[0]:<16} Q {verdicts[1]}")
    print(f"4/4 the report: {pruned.report}")
    return pruned.report


def _print_dynamics(rows: list[DynamicsRow]) -> None:
    """Each measure at the last layer point, epoch by epoch."""
    last = max(row.index for row in rows)
    epochs = sorted({row.epoch for row in rows})
    print(f"    during training (dynamics.csv, {len(epochs)} measurements), at the last layer point:")
    for key, label in MEASURES.items():
        values = [getattr(row, key) for epoch in epochs for row in rows if row.epoch == epoch and row.index == last]
        print(f"      {label:<14} " + ", ".join(f"epoch {e}: {v:.3f}" for e, v in zip(epochs, values, strict=True)))
