"""The paper's Table 1 on the shared pretrained CIFAR ResNets, with an unpruned control: docs/TABLE1.md.

Usage (from the repository root; about two hours on a 2-core CPU at the default budgets):

    .venv/bin/python examples/table1.py --data-dir ../shared/data --out results/table1

Per model: the full analysis (SPEC 2-7 defaults, vertex seed 0), then ``compare_pruning`` with the cuts by
M and by Lu et al.'s Q under ``plateau`` and ``delta``, the ``delta`` pair at equal unit counts, Lu et
al.'s published resnet56 cut as a reference row, and the unpruned control: every row gets the same head
epoch and the same fine-tuning budget and seed. For the models of ``--all-curves`` (default resnet20)
the cuts by the k-NN and probe accuracy and by CKA to the last point (SPEC 13-16) are trained too.
Reruns resume (finished rows are reused, an interrupted one continues from its last epoch); TABLE1.md is
rewritten after each model. The images are a lossy JPEG
export of CIFAR-10 (quality 75): results are stated as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from sepgraph import GraphSettings, RunSettings, load_dataset
from sepgraph.devices import resolve_device
from sepgraph.files import atomic_text
from sepgraph.pruning.criterion import CRITERIA, CURVE, PAPER_CURVES, recommend
from sepgraph.pruning.halves import analyse_selection
from sepgraph.pruning.options import PruningOptions
from sepgraph.pruning.rows import compare_pruning
from sepgraph.pruning.table import change_label, differences, rule_label
from sepgraph.report.html import ReportSettings, render_report
from sepgraph.results.folder import load_results, removable_units_of
from sepgraph.results.formats import FORMAT_VERSION
from sepgraph.results.layer_row import LayerRow
from sepgraph.training.recipe import Recipe

WEIGHTS = {"resnet20": "resnet20-12fca82f.th", "resnet56": "resnet56-4bfd9763.th"}
LU_RESNET56 = "resnet56+remove=" + ",".join(
    [f"layer1.{b}" for b in range(2, 9)] + [f"layer2.{b}" for b in range(3, 9)] + [f"layer3.{b}" for b in range(6, 9)])
"""Lu et al.'s resnet56: they keep 2, 3 and 6 blocks of its three stages (the first ones)."""
PUBLISHED = [
    ("resnet56, the paper's Table 1 (cut by M)", "93.27", "93.26", "60.76%"),
    ("resnet56, Lu et al. (ECCV 2022), as the paper quotes it", "-", "93.30", "41.24%"),
]
EPOCHS = {"resnet20": 3, "resnet56": 2}
ALL_CURVES = tuple(key for key, criterion in CRITERIA.items() if criterion.kind == CURVE)
TAUS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", help="the shared data folder")
    parser.add_argument("--out", default="results/table1")
    parser.add_argument("--models", nargs="+", default=list(WEIGHTS), choices=list(WEIGHTS))
    parser.add_argument("--epochs", nargs="+", type=int,
                        help="fine-tuning epochs per model, in --models order (default: 3 resnet20, 2 resnet56)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--table", default="docs/TABLE1.md")
    parser.add_argument("--all-curves", nargs="*", default=["resnet20"], choices=list(WEIGHTS),
                        help="models also cut by knn_acc, probe_acc and cka_last (default: resnet20)")
    args = parser.parse_args()
    epochs = args.epochs or [EPOCHS[name] for name in args.models]
    if len(epochs) != len(args.models):
        parser.error(f"--epochs needs one number per model ({len(args.models)}), got {len(epochs)}")
    data_dir, out = Path(args.data_dir), Path(args.out)
    test = load_dataset(f"npz:{data_dir}/cifar10-jpeg/cifar10_test.npz")
    train = load_dataset(f"npz:{data_dir}/cifar10-jpeg/cifar10_train.npz")
    sections = []
    for name, count in zip(args.models, epochs, strict=True):
        folder = out / name / "analysis"
        started = time.perf_counter()
        _set_aside(folder)  # its trained rows measured the whole test set: kept there, never reused here
        analyse_selection(name, test, GraphSettings(seed=0), out=folder, weights=data_dir / "weights" / WEIGHTS[name],
                          normalize="imagenet", run=RunSettings(device=args.device))  # SPEC 21: choices on one half
        analysed = time.perf_counter()
        rows_before = len(list((folder / "pruning").glob("*/row.json")))
        # the paper's recipe (SPEC 10) with the epochs scaled down and one lr step before the last epoch
        recipe = Recipe(epochs=count, milestones=(count - 1,) if count > 1 else ())
        curves = ALL_CURVES if name in args.all_curves else PAPER_CURVES
        options = PruningOptions(rules=("plateau", "delta"), curves=curves, equal_units=True,
                                 reference_cuts=[LU_RESNET56] if name == "resnet56" else [], head_epochs=1)
        table = compare_pruning(folder, train, options, test_data=test, recipe=recipe, device=args.device)
        finished = time.perf_counter()
        timings = folder.parent / "timings.json"
        logged = json.loads(timings.read_text()) if timings.is_file() else {}
        if analysed - started > 60:  # the analysis ran in this run, not only read back
            logged.update(analysis_seconds=analysed - started)
        if len(list((folder / "pruning").glob("*/row.json"))) > rows_before:  # rows were trained in this run
            logged.update(pruning_rows_seconds=logged.get("pruning_rows_seconds", 0) + finished - analysed,
                          pruning_runs=logged.get("pruning_runs", 0) + 1, machine=_machine(args.device))
        atomic_text(timings, json.dumps(logged, indent=1) + "\n")
        render_report(folder, ReportSettings(rule="delta"))
        sections.append(_section(name, folder, table, recipe, timings))
        atomic_text(Path(args.table), _document(sections, test.description))
        print(f"{name}: analysis {analysed - started:.0f} s, pruning rows {finished - analysed:.0f} s", flush=True)
    print(f"table: {args.table}")


def _set_aside(folder: Path) -> Path | None:
    """Rename an analysis of an older results format, or of the whole test set (before SPEC 21), to
    ``analysis-formatN[-whole]`` so a fresh one of the selection half can be made; returns its new path (None when
    there is nothing to set aside)."""
    manifest = folder / "manifest.json"
    version = json.loads(manifest.read_text()).get("format_version") if manifest.is_file() else FORMAT_VERSION
    if version == FORMAT_VERSION and (not manifest.is_file() or (folder / "halves.json").is_file()):
        return None
    older = folder.with_name(f"{folder.name}-format{version}" + ("" if version != FORMAT_VERSION else "-whole"))
    folder.rename(older)
    return older


def _machine(device: str) -> str:
    target = resolve_device(device)
    where = torch.cuda.get_device_name(target) if target.type == "cuda" else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {torch.get_num_threads()} torch threads, {where}, "
            f"torch {torch.__version__}")


def _section(name: str, folder: Path, table: list[dict], recipe: Recipe, timings: Path) -> str:
    manifest, rows = load_results(folder)
    lines = [f"## {name}", "",
             f"Original accuracy {table[0].accuracy_original:.2f}% on this data; {table[0].params_original:,} "
             f"parameters. Every row: 1 head-only epoch, then {recipe.epochs} fine-tuning epochs (SGD lr "
             f"{recipe.lr}, momentum {recipe.momentum}, weight decay {recipe.weight_decay}, batch "
             f"{recipe.batch_size}, lr x {recipe.gamma} after epoch {list(recipe.milestones)}, crop + flip), seed "
             f"{recipe.seed}, starting from the surviving weights.", "",
             "| row | rule (tau) | cut | units / points removed | parameters saved | FLOPs saved | accuracy (%): "
             "original / head refit / fine-tuned | vs control | training time |",
             "|---|---|---|---:|---:|---:|---|---:|---:|"]
    seen = set()
    for row in table:
        label = {"control": "**unpruned (control)**", "reference": "Lu et al.'s published cut"}.get(
            row.kind, row.curve + (" at equal units" if row.kind == "equal-units" else ""))
        rule, change = rule_label(row), change_label(row)
        trained = "same model as above" if row.weights in seen else f"{row.train_seconds / 60:.1f} min"
        seen.add(row.weights)
        lines.append(
            f"| {label} | {rule} | {_short(row.cut)} | {row.units_removed} / {row.points_removed} | "
            f"{row.params_saved_pct:.2f}% | {row.flops_saved_pct:.2f}% | {row.accuracy_original:.2f} / "
            f"{row.accuracy_head_refit:.2f} / {row.accuracy_finetuned:.2f} | {change} | {trained} |")
    distinct = {row.weights: row.train_seconds for row in table}
    logged = json.loads(timings.read_text())
    lines += ["", f"{len(distinct)} distinct models trained, {sum(distinct.values()) / 60:.1f} min of training "
              f"epochs in all. Wall time: the analysis {logged.get('analysis_seconds', 0) / 60:.1f} min, the rows "
              f"{logged.get('pruning_rows_seconds', 0) / 60:.1f} min (evaluations included{_runs(logged)}), on "
              f"{logged.get('machine', 'this machine')}."]
    lines += ["", "What differs (from the rows above):", ""] + [f"- {sentence}" for sentence in differences(table)]
    lines += ["", f"Results folder: `{folder}` (pruning.csv, report.html).", "",
              _sensitivity(manifest, rows, table[0].params_original)]
    return "\n".join(lines)


def _runs(logged: dict) -> str:
    runs = logged.get("pruning_runs", 1)
    return f", in {runs} runs as rows were added" if runs > 1 else ""


def _short(cut: str, limit: int = 90) -> str:
    return cut if len(cut) <= limit else cut[: limit - 3] + "..."


def _sensitivity(manifest: dict, rows: list[LayerRow], params: int) -> str:
    """Units removed and parameters saved by ``delta`` for several tau, and by ``delta-abs`` at 0.03 (no training)."""
    units = removable_units_of(manifest)
    lines = [f"`delta` sensitivity ({len(units)} removable units; no training involved):", "",
             "| tau | units removed by M | parameters saved by M | units removed by Q | parameters saved by Q |",
             "|---:|---:|---:|---:|---:|"]
    size = {unit.name: unit.parameters for unit in units}
    settings = [("delta", tau) for tau in TAUS] + [("delta-abs", 0.03)]
    for rule, tau in settings:
        cuts = recommend(rows, rule, tau, units)
        cells = [f"{len(cuts[k].units)} | {100 * sum(size[u] for u in cuts[k].units) / params:.2f}%"
                 for k in ("M", "lu_q")]
        label = f"{tau:g}" if rule == "delta" else f"{tau:g} absolute (`delta-abs`, Lu et al.)"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _document(sections: list[str], description: str) -> str:
    published = "\n".join(f"| {row} | {before} | {after} | {saved} |" for row, before, after, saved in PUBLISHED)
    return (
        "# Table 1 on real data: cutting by M against cutting by Lu et al.'s Q, beside an unpruned control\n\n"
        f"Measured by `examples/table1.py` on {description}: a lossy JPEG export (quality 75, 4:2:0 chroma), "
        "**CIFAR-10 (JPEG q75 export)**, not CIFAR-10. Fine-tuning uses the export's 50,000 training images. "
        "Criterion I (SPEC 8): `plateau` truncates after the point where the curve stops rising by more than "
        "tau x its range; `delta` removes each removable unit whose contribution (curve at its output point "
        "minus curve at its input point) is at most tau x the curve's range, so M and Q are judged on the same "
        "relative scale; *at equal units*, each curve's tau is chosen so all remove as many units as M does "
        "under `delta`, which compares which units each curve picks. For resnet20 the same rules also cut by "
        "the field's other per-layer measures on the same 4,000 vertices (SPEC 13-16): leave-one-out k-NN "
        "accuracy, a ridge linear probe's cross-validated accuracy, and linear CKA with the last point (where "
        "it stops rising, the later layers change the representation little). *vs control* is a row's fine-tuned "
        "accuracy minus the control's: the control is the unpruned model trained with the same budget, so the "
        "gain every row shows from training on the JPEG images is not credited to the cut. The fine-tuning "
        "budgets (2-3 epochs) are far below the paper's 150: the accuracies say what a cut costs after a short "
        "recovery, and a cut that removes most blocks may recover more with more epochs.\n\n"
        + "\n\n".join(sections)
        + "\n\n## Published figures (lossless CIFAR-10, 150-epoch training; not comparable in accuracy)\n\n"
        "| row | accuracy before (%) | after (%) | parameters saved |\n|---|---:|---:|---:|\n" + published + "\n")


if __name__ == "__main__":
    main()
