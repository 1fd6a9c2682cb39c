"""The Table-1 comparison (SPEC 8, 9): cut by M and by Lu et al.'s Q under one rule, refit the head,
fine-tune, and count accuracy, parameters and FLOPs before and after (``sepgraph prune``)."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import replace
from pathlib import Path

from torch import nn

from .checkpoints import load_weights, save_weights
from .criterion import Cut, recommend
from .data import ImageDataset, load_dataset
from .errors import SepgraphError
from .evaluation import evaluate
from .models import create_model, input_size, parameter_count
from .points import layer_points
from .pruning import apply_spec, flop_count, reinitialise, unit_of_point
from .results import atomic_text, load_results
from .training import Recipe, train

CURVES = {"M": "M (ours)", "lu_q": "Lu et al.'s Q"}
COLUMNS = ["model", "curve", "rule", "parameter", "cut", "pruned_model", "points_removed", "init",
           "accuracy_original", "accuracy_head_refit", "accuracy_finetuned", "finetune_epochs",
           "params_original", "params_pruned", "params_saved_pct", "flops_original", "flops_pruned",
           "flops_saved_pct"]


def compare_pruning(
    results: str | Path,
    train_data: str | ImageDataset,
    *,
    test_data: str | ImageDataset | None = None,
    rule: str = "plateau",
    parameter: float | None = None,
    init: str = "finetune",
    head_epochs: int = 1,
    recipe: Recipe | None = None,
    data_root: str | Path = "data",
    device: str = "auto",
    progress: bool = True,
) -> list[dict]:
    """Prune the analysed model where M and where Lu et al.'s Q say (same rule), train, and write
    ``pruning.csv`` and ``pruning.md`` into the results folder. Returns the table's rows.

    ``plateau`` and ``peak`` truncate after the cut point; ``delta`` removes units inside.
    ``recipe.epochs`` fine-tuning epochs follow ``head_epochs`` of head-only training (0 skips either).
    """
    if init not in ("finetune", "scratch"):
        raise SepgraphError(f"--init must be finetune or scratch, got {init!r}")
    results = Path(results)
    manifest, rows = load_results(results)
    parameters = manifest["parameters"]
    base, normalize, classes = parameters["model"], parameters["normalize"], parameters["num_classes"]
    recipe = recipe or Recipe()
    train_set = train_data if isinstance(train_data, ImageDataset) else load_dataset(train_data, data_root)
    test_set = test_data if isinstance(test_data, ImageDataset) else load_dataset(
        test_data or parameters["data"], data_root)
    original = create_model(base, num_classes=classes)
    if parameters["weights"]:
        load_weights(original, parameters["weights"])
    points = layer_points(original, parameters["convention"]) if parameters["convention"] != "explicit" else None
    if points is None or [p.name for p in points] != parameters["points"]:
        raise SepgraphError("pruning needs an analysis of a zoo model's convention points (not an explicit list)")
    size = input_size(base)
    accuracy = evaluate(original, test_set, normalize=normalize, device=device, progress=progress).accuracy
    before = {"params": parameter_count(original), "flops": flop_count(original, size)}
    table, done = [], {}
    removable = [unit_of_point(original, p) is not None for p in points] if rule == "delta" else None
    cuts = recommend(rows, rule, parameter, removable)
    for key, label in CURVES.items():
        cut = cuts[key]
        pruning = _pruning(original, points, cut)
        spec = f"{base}+{pruning}" if pruning else None
        row = {"model": base, "curve": label, "rule": cut.rule, "parameter": cut.parameter,
               "cut": _describe(cut, points), "pruned_model": spec or base, "points_removed": len(cut.removed),
               "init": init, "accuracy_original": accuracy, "params_original": before["params"],
               "flops_original": before["flops"]}
        if spec in done:
            row.update({k: v for k, v in done[spec].items() if k not in ("curve",)}, curve=label)
        elif spec is None:
            row.update(accuracy_head_refit=accuracy, accuracy_finetuned=accuracy, finetune_epochs=0,
                       params_pruned=before["params"], flops_pruned=before["flops"])
        else:
            pruned = apply_spec(original, pruning, classes, size)
            if init == "scratch":
                reinitialise(pruned)
            row.update(_train_pruned(pruned, train_set, test_set, normalize, recipe, head_epochs,
                                     results / f"pruned_{key}", device, progress))
            row.update(params_pruned=parameter_count(pruned), flops_pruned=flop_count(pruned, size))
        row["params_saved_pct"] = 100.0 * (1 - row["params_pruned"] / row["params_original"])
        row["flops_saved_pct"] = 100.0 * (1 - row["flops_pruned"] / row["flops_original"])
        done.setdefault(row["pruned_model"], row)
        table.append(row)
    _write(results, table)
    return table


def _pruning(original: nn.Module, points, cut: Cut) -> str | None:
    """The pruning a cut asks for, as a model-spec suffix (``truncate=POINT`` or ``remove=UNIT,...``)."""
    if not cut.removed:
        return None
    if cut.cut_index is not None:
        return f"truncate={points[cut.cut_index].name}"
    units = list(dict.fromkeys(u for u in (unit_of_point(original, points[k]) for k in cut.removed) if u))
    return f"remove={','.join(units)}" if units else None


def _describe(cut: Cut, points) -> str:
    if not cut.removed:
        return "no cut: the curve still rises"
    if cut.cut_index is not None:
        return f"keep up to {points[cut.cut_index].name}"
    return "remove " + ", ".join(points[k].name for k in cut.removed)


def _train_pruned(model, train_set, test_set, normalize, recipe, head_epochs, out, device, progress) -> dict:
    """Head-only training, then fine-tuning; ``out/model.pt`` gets the final weights."""
    head = _head(model)
    if out.exists():
        shutil.rmtree(out)
    result = {}
    if head_epochs > 0:
        train(model, train_set, normalize=normalize, recipe=replace(recipe, epochs=head_epochs,
                                                                   milestones=()),
              out=out / "head", parameters=list(head.parameters()), frozen_statistics=True, device=device,
              progress=progress)
    result["accuracy_head_refit"] = evaluate(model, test_set, normalize=normalize, device=device,
                                             progress=progress).accuracy
    if recipe.epochs > 0:
        train(model, train_set, normalize=normalize, recipe=recipe, out=out / "finetune", device=device,
              progress=progress)
    result["accuracy_finetuned"] = evaluate(model, test_set, normalize=normalize, device=device,
                                            progress=progress).accuracy
    result["finetune_epochs"] = recipe.epochs
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model, out / "model.pt")
    return result


def _head(model: nn.Module) -> nn.Module:
    for name in ("linear", "classifier", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return getattr(model, name)
    raise SepgraphError(f"cannot find the linear head of {type(model).__name__}")


def _write(results: Path, table: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: row[c] for c in COLUMNS} for row in table)
    atomic_text(results / "pruning.csv", buffer.getvalue())
    lines = ["| model | curve | cut | accuracy (%): original / head refit / fine-tuned | parameters saved | "
             "FLOPs saved | pruned model |", "|---|---|---|---|---:|---:|---|"]
    for row in table:
        lines.append(
            f"| {row['model']} | {row['curve']} | {row['cut']} | {row['accuracy_original']:.2f} / "
            f"{row['accuracy_head_refit']:.2f} / {row['accuracy_finetuned']:.2f} ({row['finetune_epochs']} epochs) | "
            f"{row['params_saved_pct']:.2f}% ({row['params_original']:,} -> {row['params_pruned']:,}) | "
            f"{row['flops_saved_pct']:.2f}% | `{row['pruned_model']}` |")
    rule = table[0]
    lines.append(f"\nCriterion I, {rule['rule']} rule, parameter {rule['parameter']}; init {rule['init']}.")
    atomic_text(results / "pruning.md", "\n".join(lines) + "\n")
