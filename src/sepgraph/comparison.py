"""The Table-1 comparison (SPEC 8, 9): cut by M and by Lu et al.'s Q under the same rules, beside an
unpruned control trained alike; refit the head, fine-tune, and count accuracy, parameters and FLOPs
(``sepgraph prune``).

Every row, the control included, gets the same head-only epochs and fine-tuning recipe, seed included,
so the accuracy change against the control is what the cut did. Each trained model lives in
``pruning/<unpruned|remove|truncate>-<key>/`` of the results folder; a rerun with the same settings
reuses finished rows and resumes an interrupted one from its last epoch.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .checkpoints import save_weights
from .criterion import PAPER_CURVES, Cut, check_curves, check_rule, curve_values, recommend, tau_for_count
from .data import DataSource, ImageDataset, as_dataset
from .errors import SepgraphError
from .evaluation import evaluate
from .files import atomic_text
from .layer_row import LayerRow
from .models import build_model, input_size, parameter_count
from .points import RemovableUnit, layer_points, removable_units
from .pruning import apply_spec, flop_count, reinitialise
from .results import load_results, removable_units_of
from .training import Recipe, train

CURVE_LABELS = {"M": "M (ours)", "lu_q": "Lu et al.'s Q", "knn_acc": "k-NN accuracy", "probe_acc": "linear probe",
                "cka_last": "CKA to the last point"}
CONTROL = "unpruned"
REFERENCE = "reference"
COLUMNS = ["model", "curve", "kind", "rule", "parameter", "cut", "pruned_model", "points_removed", "units_removed",
           "init", "accuracy_original", "accuracy_head_refit", "accuracy_finetuned", "accuracy_vs_control",
           "head_epochs", "finetune_epochs", "seed", "params_original", "params_pruned", "params_saved_pct",
           "flops_original", "flops_pruned", "flops_saved_pct", "train_seconds", "weights"]


@dataclass(frozen=True)
class Candidate:
    """One row to train: which curve and rule chose it and the pruning it asks for (None: nothing removed)."""

    curve: str
    kind: str
    rule: str
    parameter: float | None
    cut: str
    pruning: str | None
    points_removed: int
    units_removed: int


def compare_pruning(
    results: str | Path,
    train_data: str | DataSource | ImageDataset,
    *,
    test_data: str | DataSource | ImageDataset | None = None,
    rules: Sequence[str | tuple[str, float | None]] = ("plateau",),
    curves: Sequence[str] = PAPER_CURVES,
    equal_units: bool = False,
    reference_cuts: Sequence[str] = (),
    init: str = "finetune",
    head_epochs: int = 1,
    recipe: Recipe | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[dict]:
    """Prune the analysed model where each curve says under each rule (by default M and Lu et al.'s Q), train
    every row and the unpruned control alike, and write ``pruning.csv`` and ``pruning.md`` into the results folder.

    Args:
        rules: Criterion I rules, each a name or (name, parameter); ``plateau`` and ``peak`` truncate,
            ``delta`` and ``delta-abs`` remove units (SPEC 8).
        curves: keys of :data:`~sepgraph.criterion.CURVES` (SPEC 16): one pruned model per curve and rule.
        equal_units: add ``delta`` rows at equal unit counts: each curve's tau chosen so it removes as
            many units as the first curve does under the ``delta`` rule (the next curve's count if it removes
            none).
        reference_cuts: published or hand-picked prunings, ``MODEL+remove=...`` or ``remove=...``.
        head_epochs: head-only epochs (batch-norm statistics frozen) before ``recipe.epochs`` of fine-tuning.
        test_data: where accuracy is measured (default: the analysis's data, read like ``train_data``).

    Returns:
        the table's rows, the control first.
    """
    check_options(rules, init, head_epochs, curves)
    results = Path(results)
    manifest, rows = load_results(results)
    parameters = manifest["parameters"]
    base, normalize, classes = parameters["model"], parameters["normalize"], parameters["num_classes"]
    if parameters["convention"] == "explicit" or "+" in base:
        raise SepgraphError("pruning needs an analysis of an unpruned zoo model's convention points "
                            f"(got model {base!r}, convention {parameters['convention']!r})")
    recipe = recipe or Recipe()
    train_set = as_dataset(train_data)
    if test_data is None:
        test_data = replace(train_data, spec=parameters["data"]) if isinstance(train_data, DataSource) \
            else parameters["data"]
    test_set = as_dataset(test_data)
    # without weights: the random model the analysis measured
    original = build_model(base, classes, parameters["weights"], parameters["seed"]).model
    size = input_size(base)
    candidates = _candidates(rows, removable_units_of(manifest), rules, curves, equal_units)
    candidates += [_reference(original, spec, base, parameters["convention"], classes, size)
                   for spec in reference_cuts]  # checked before anything is trained
    accuracy = evaluate(original, test_set, normalize=normalize, device=device, progress=progress).accuracy
    before = {"params": parameter_count(original), "flops": flop_count(original, size)}
    settings = {"model": base, "weights_sha256": parameters["weights_sha256"], "train_data": train_set.spec,
                "train_sha256": train_set.sha256, "test_data": test_set.spec, "test_sha256": test_set.sha256,
                "normalize": normalize, "init": init, "head_epochs": head_epochs, "recipe": asdict(recipe)}
    if not parameters["weights"]:
        settings["analysis_seed"] = parameters["seed"]
    table, trained = [], {}
    for candidate in candidates:
        if candidate.pruning not in trained:
            trained[candidate.pruning] = _trained_row(original, candidate.pruning, settings, train_set, test_set,
                                                      recipe, classes, size, results, device, progress)
        outcome = trained[candidate.pruning]
        table.append({
            "model": base, "curve": candidate.curve, "kind": candidate.kind, "rule": candidate.rule,
            "parameter": candidate.parameter, "cut": candidate.cut,
            "pruned_model": f"{base}+{candidate.pruning}" if candidate.pruning else base,
            "points_removed": candidate.points_removed, "units_removed": candidate.units_removed, "init": init,
            "accuracy_original": accuracy, **outcome, "head_epochs": head_epochs, "finetune_epochs": recipe.epochs,
            "seed": recipe.seed, "params_original": before["params"], "flops_original": before["flops"],
            "params_saved_pct": 100.0 * (1 - outcome["params_pruned"] / before["params"]),
            "flops_saved_pct": 100.0 * (1 - outcome["flops_pruned"] / before["flops"]),
        })
    control = trained[None]["accuracy_finetuned"]
    for row in table:
        row["accuracy_vs_control"] = row["accuracy_finetuned"] - control
    _write(results, table, recipe)
    return table


def check_options(rules: Sequence[str | tuple[str, float | None]], init: str, head_epochs: int,
                  curves: Sequence[str] = PAPER_CURVES) -> None:
    """The comparison's own options, checked before anything is analysed or trained (the recipe checks itself)."""
    check_curves(curves)
    for item in rules:
        check_rule(*((item, None) if isinstance(item, str) else item))
    if init not in ("finetune", "scratch"):
        raise SepgraphError(f"--init must be finetune or scratch, got {init!r}")
    if head_epochs < 0:
        raise SepgraphError(f"--head-epochs must be 0 or more, got {head_epochs}")


def _candidates(rows: list[LayerRow], units: Sequence[RemovableUnit] | None,
                rules: Sequence[str | tuple[str, float | None]], curves: Sequence[str],
                equal_units: bool) -> list[Candidate]:
    """The control, each curve's cut under each rule, and the equal-units rows."""
    names = [row.name for row in rows]
    found = [Candidate(CONTROL, "control", "", None, "nothing removed (the control)", None, 0, 0)]
    rules = [(item, None) if isinstance(item, str) else tuple(item) for item in rules]
    for rule, parameter in rules:
        cuts = recommend(rows, rule, parameter, units, curves)
        found += [_candidate(CURVE_LABELS[key], "criterion", cut, names) for key, cut in cuts.items()]
    if equal_units:
        tau = next((parameter for rule, parameter in rules if rule == "delta"), None)
        delta = recommend(rows, "delta", tau, units, curves)
        count = next((len(cut.units) for cut in delta.values() if cut.units), 0)
        if count:
            taus = {key: delta[key].parameter if len(delta[key].units) == count
                    else tau_for_count(curve_values(rows, key), names, units, count)
                    for key in delta}
            cuts = recommend(rows, "delta", taus, units, curves)
            found += [_candidate(CURVE_LABELS[key], "equal-units", cut, names) for key, cut in cuts.items()]
    return found


def _reference(original: nn.Module, spec: str, base: str, convention: str, classes: int,
               size: tuple[int, int, int]) -> Candidate:
    """A published or hand-picked cut, checked by building it; ``remove=`` units in network order."""
    model, plus, pruning = spec.partition("+")
    pruning = pruning if plus else spec
    if plus and model != base:
        raise SepgraphError(f"--reference-cut {spec!r} names model {model!r}, but the analysis is of {base!r}")
    operation, _, argument = pruning.partition("=")
    if operation == "remove":
        given = [unit for unit in argument.split(",") if unit]
        known = [unit.name for unit in removable_units(original)]
        unknown = [unit for unit in given if unit not in known]
        if unknown or not given:
            raise SepgraphError(f"--reference-cut {spec!r}: cannot remove {', '.join(unknown) or 'nothing'}; the "
                                f"removable units are {', '.join(known) or 'none'}")
        pruning = "remove=" + ",".join(unit for unit in known if unit in given)
    elif operation != "truncate":
        raise SepgraphError(f"--reference-cut {spec!r}: write {base}+remove=UNIT,UNIT or {base}+truncate=POINT")
    pruned = apply_spec(original, pruning, classes, size)
    points = len(layer_points(original, convention)) - len(layer_points(pruned, convention))
    units = len(pruning.partition("=")[2].split(",")) if operation == "remove" else 0
    return Candidate(REFERENCE, "reference", "", None, pruning.replace("=", " ", 1).replace(",", ", "), pruning,
                     points, units)


def _candidate(curve: str, kind: str, cut: Cut, names: list[str]) -> Candidate:
    """The pruning a cut asks for: ``truncate=POINT``, ``remove=UNIT,...`` or nothing."""
    if not cut.removed:
        text = "no cut: the curve still rises" if cut.cut_index is not None else "no unit at or below the threshold"
        return Candidate(curve, kind, cut.rule, cut.parameter, text, None, 0, 0)
    if cut.cut_index is not None:
        return Candidate(curve, kind, cut.rule, cut.parameter, f"keep up to {names[cut.cut_index]}",
                         f"truncate={names[cut.cut_index]}", len(cut.removed), 0)
    return Candidate(curve, kind, cut.rule, cut.parameter, "remove " + ", ".join(cut.units),
                     "remove=" + ",".join(cut.units), len(cut.removed), len(cut.units))


def _trained_row(original: nn.Module, pruning: str | None, settings: dict, train_set: ImageDataset,
                 test_set: ImageDataset, recipe: Recipe, classes: int, size: tuple[int, int, int], results: Path,
                 device: str, progress: bool) -> dict:
    """Build (seeded), refit the head, fine-tune and measure one pruned model, or reuse a finished run.

    ``pruning/<unpruned|remove|truncate>-<key>/`` holds ``settings.json``, the training runs (``head/``,
    ``finetune/``, resumable), ``model.pt`` and, once complete, ``row.json``.
    """
    row_settings = {**settings, "pruning": pruning}
    key = hashlib.sha256(json.dumps(row_settings, sort_keys=True).encode()).hexdigest()[:12]
    out = results / "pruning" / f"{'unpruned' if pruning is None else pruning.partition('=')[0]}-{key}"
    if (out / "row.json").is_file():
        return json.loads((out / "row.json").read_text())
    if out.exists() and not (out / "settings.json").is_file():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_text(out / "settings.json", json.dumps(row_settings, indent=1) + "\n")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)  # a new head (truncation) or a scratch start draws the same weights each time
        model = apply_spec(original, pruning, classes, size) if pruning else copy.deepcopy(original)
        if settings["init"] == "scratch":
            reinitialise(model)
    normalize, seconds = settings["normalize"], 0.0
    head_epochs = settings["head_epochs"]
    if head_epochs > 0:
        run = train(model, train_set, normalize=normalize, out=out / "head", parameters=list(_head(model).parameters()),
                    recipe=replace(recipe, epochs=head_epochs, milestones=()), frozen_statistics=True,
                    resume=(out / "head" / "state.pt").is_file(), device=device, progress=progress)
        seconds += sum(epoch["seconds"] for epoch in run.metrics)
    head_refit = evaluate(model, test_set, normalize=normalize, device=device, progress=progress).accuracy
    if recipe.epochs > 0:
        run = train(model, train_set, normalize=normalize, recipe=recipe, out=out / "finetune",
                    resume=(out / "finetune" / "state.pt").is_file(), device=device, progress=progress)
        seconds += sum(epoch["seconds"] for epoch in run.metrics)
        finetuned = evaluate(model, test_set, normalize=normalize, device=device, progress=progress).accuracy
    else:
        finetuned = head_refit
    save_weights(model, out / "model.pt")
    row = {"accuracy_head_refit": head_refit, "accuracy_finetuned": finetuned, "params_pruned": parameter_count(model),
           "flops_pruned": flop_count(model, size), "train_seconds": seconds,
           "weights": str((out / "model.pt").relative_to(results))}
    atomic_text(out / "row.json", json.dumps(row, indent=1) + "\n")
    return row


def _head(model: nn.Module) -> nn.Module:
    for name in ("linear", "classifier", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return getattr(model, name)
    raise SepgraphError(f"cannot find the linear head of {type(model).__name__}")


def load_pruning(results: str | Path) -> list[dict] | None:
    """The rows of a folder's ``pruning.csv`` with numbers as numbers, or None when there is none."""
    path = Path(results) / "pruning.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for column, value in row.items():
            if column in _INTEGERS:
                row[column] = int(value)
            elif column in _FLOATS:
                row[column] = float(value) if value else None
    return rows


_INTEGERS = {"points_removed", "units_removed", "head_epochs", "finetune_epochs", "seed", "params_original",
             "params_pruned", "flops_original", "flops_pruned"}
_FLOATS = {"parameter", "accuracy_original", "accuracy_head_refit", "accuracy_finetuned", "accuracy_vs_control",
           "params_saved_pct", "flops_saved_pct", "train_seconds"}


def differences(table: list[dict]) -> list[str]:
    """One sentence per rule setting (and for the equal-units pair) on where the cuts by M and by Q differ,
    or why they agree, then one per row cut by another curve (SPEC 16), from the rows of :func:`compare_pruning`."""
    sentences = []
    for name, m, q in curve_pairs(table):
        if m["pruned_model"] == q["pruned_model"]:
            nothing = ("both curves still rise at their last point" if m["rule"] in ("plateau", "peak")
                       else "no unit's contribution is at or below the threshold on either curve")
            same = ("the same units contribute least to either curve" if m["kind"] == "equal-units" else
                    "the same units add no more than the threshold to either curve" if m["units_removed"] else
                    "both curves flatten at the same point")
            why = (f"neither curve finds anything to cut: {nothing}" if m["pruned_model"] == m["model"]
                   else f"both {m['cut']}: {same}")
            sentences.append(f"{name}: M and Q agree ({why}), so the two rows are one model trained once.")
            continue
        sentences.append(
            f"{name}: M {_outcome(m)}; Q {_outcome(q)}. M minus Q: "
            f"{m['params_saved_pct'] - q['params_saved_pct']:+.1f} points of parameters saved, "
            f"{m['accuracy_vs_control'] - q['accuracy_vs_control']:+.2f} points of accuracy.")
    paper = {CURVE_LABELS[key] for key in PAPER_CURVES}
    for row in table:
        if row["kind"] in ("criterion", "equal-units") and row["curve"] not in paper:
            setting = rule_label(row) + (" at equal units" if row["kind"] == "equal-units" else "")
            sentences.append(f"{setting}, cut by {row['curve']}: {_outcome(row)}.")
    return sentences


def curve_pairs(table: list[dict]) -> list[tuple[str, dict, dict]]:
    """(name, M's row, Q's row) for every rule setting and for the equal-units pair that has both, in table order."""
    groups: dict[tuple, dict[str, dict]] = {}
    for row in table:
        if row["kind"] == "criterion":
            key = (rule_label(row),)
        elif row["kind"] == "equal-units":
            key = (f"{row['rule']} at equal units",)
        else:
            continue
        groups.setdefault(key, {})[row["curve"]] = row
    m, q = CURVE_LABELS["M"], CURVE_LABELS["lu_q"]
    return [(key[0], pair[m], pair[q]) for key, pair in groups.items() if m in pair and q in pair]


def rule_label(row: dict) -> str:
    """A row's rule and its tau, ``delta (0.02)``; empty for the control and reference rows."""
    return row["rule"] + (f" ({row['parameter']:.4g})" if row["parameter"] is not None else "")


def change_label(row: dict) -> str:
    """A row's fine-tuned accuracy against the control, ``-2.24``; ``-`` for the control itself."""
    return "-" if row["kind"] == "control" else f"{row['accuracy_vs_control']:+.2f}"


def _outcome(row: dict) -> str:
    units, points = row["units_removed"], row["points_removed"]
    removed = (f"removes {units} unit{'s' if units > 1 else ''}" if units else
               f"truncates {points} point{'s' if points > 1 else ''}" if points else "cuts nothing")
    return (f"{removed} ({row['params_saved_pct']:.1f}% of parameters), {row['accuracy_finetuned']:.2f}% "
            f"({row['accuracy_vs_control']:+.2f} vs control)")


def _write(results: Path, table: list[dict], recipe: Recipe) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: row[c] for c in COLUMNS} for row in table)
    atomic_text(results / "pruning.csv", buffer.getvalue())
    atomic_text(results / "pruning.md", pruning_markdown(table, recipe))


def pruning_markdown(table: list[dict], recipe: Recipe | None = None) -> str:
    """The comparison as a Markdown table with the control marked and every row's change against it."""
    lines = ["| curve | rule (tau) | cut | accuracy (%): original / head refit / fine-tuned | vs control | "
             "parameters saved | FLOPs saved | pruned model |", "|---|---|---|---|---:|---:|---:|---|"]
    for row in table:
        curve = f"**{row['curve']}** (control)" if row["kind"] == "control" else row["curve"]
        if row["kind"] == "equal-units":
            curve += " at equal units"
        rule, change = rule_label(row), change_label(row)
        lines.append(
            f"| {curve} | {rule} | {row['cut']} | {row['accuracy_original']:.2f} / {row['accuracy_head_refit']:.2f} / "
            f"{row['accuracy_finetuned']:.2f} | {change} | {row['params_saved_pct']:.2f}% "
            f"({row['params_original']:,} -> {row['params_pruned']:,}) | {row['flops_saved_pct']:.2f}% | "
            f"`{row['pruned_model']}` |")
    first = table[0]
    training = (f"{first['head_epochs']} head-only epoch(s), then {first['finetune_epochs']} fine-tuning epoch(s)"
                + (f" (lr {recipe.lr}, batch {recipe.batch_size}, milestones {list(recipe.milestones)})"
                   if recipe else "") + f", seed {first['seed']}, init {first['init']}")
    lines.append(f"\nEvery row, the control included, trained alike: {training}. The control (`{CONTROL}`) is the "
                 "original model trained with that same budget; *vs control* is each row's fine-tuned accuracy "
                 "minus the control's, so it shows what the cut did rather than what the extra training did.")
    return "\n".join(lines) + "\n"
