"""The zero-training proxy table of the shared models (SPEC 19, 21) into docs/TABLE1.md, from ``prune --proxy-only``
runs, one results folder per model.

Usage (from the repository root), after for each MODEL of resnet20, resnet56 and vgg11_bn::

    sepgraph prune results/proxy/MODEL --model MODEL --weights ... --data npz:.../cifar10_test.npz --normalize ... \\
        --train-data npz:.../cifar10_train.npz --proxy-only --target-params 30 --target-params 50 \\
        --curves M,lu_q,knn_acc,probe_acc,cka_last,ablation,magnitude,block_influence,angular,random \\
        --random-seeds 10 > results/proxy/MODEL.log

(vgg11_bn without ``angular``: each of its runs is one unit, and none saves 30%; SPEC 22)

    .venv/bin/python examples/proxy_table.py --folder results/proxy --table docs/TABLE1.md

Per model and target: each criterion's cut (units removed, the parameters and FLOPs it reached), its proxy accuracy
on the report half, the random cuts of its size as mean [min, max], and which criteria cut the same units. The
section replaces the one of the same heading in the table file; wall times come from ``/usr/bin/time -v`` in the
logs when present.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from common import replace_section

from sepgraph.devices import processor
from sepgraph.pruning.table import PruningRow, first_seed, load_pruning

HEADING = "## Zero-training proxy at equal size, on the report half (no fine-tuning)"


def model_section(folder: Path, log: Path) -> list[str]:
    """The tables of one model's proxy run."""
    rows = first_seed(load_pruning(folder, "proxy") or [])
    if not rows:
        return [f"### {folder.name}", "", f"No `proxy.csv` in `{folder}` yet.", ""]
    halves = json.loads((folder / "halves.json").read_text())
    control = rows[0]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", log.read_text()) \
        if log.is_file() else None
    lines = [f"### {control.model}", "",
             f"{len(halves['selection']):,} selection-half images chose the cuts (analysis, ablation), "
             f"{len(halves['report']):,} report-half images measured every accuracy below. Unpruned: "
             f"{control.accuracy_original:.2f}% as trained, {control.accuracy_proxy:.2f}% after the same "
             f"batch-norm recalibration as every cut. Wall time of the run that last wrote it: "
             f"{wall.group(1) if wall else 'not logged'}.", ""]
    for rule, target in sorted({(row.rule, row.parameter) for row in rows if row.kind == "criterion"}):
        lines += _target_table([row for row in rows if (row.rule, row.parameter) == (rule, target)], rule, target)
    return lines


def _target_table(rows: list[PruningRow], rule: str, target: float) -> list[str]:
    what = "parameters" if rule == "target-params" else "FLOPs"
    lines = [f"Target: at least {target:g}% of the {what} saved.", "",
             "| criterion | units removed | parameters saved | FLOPs saved | proxy accuracy (%) | "
             "random cuts of the same size classes: proxy mean [min, max] | same units as |",
             "|---|---:|---:|---:|---:|---|---|"]
    criteria = [row for row in rows if row.kind == "criterion"]
    for row in criteria:
        randoms = list({other.pruned_model: other.accuracy_proxy for other in rows
                        if other.kind == "random" and other.matches == row.curve}.values())  # each cut once
        count = f"{len(randoms)} cut{'s' * (len(randoms) != 1)}"
        spread = (f"{sum(randoms) / len(randoms):.2f} [{min(randoms):.2f}, {max(randoms):.2f}] ({count})"
                  if randoms else "-")
        same = [other.curve for other in criteria
                if other.curve != row.curve and other.pruned_model == row.pruned_model]
        lines.append(f"| {row.curve} | {row.units_removed} | {row.params_saved_pct:.2f}% | {row.flops_saved_pct:.2f}% "
                     f"| {row.accuracy_proxy:.2f} | {spread} | {', '.join(same) or '-'} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="results/proxy", help="one results folder per model, and MODEL.log")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "vgg11_bn"])
    parser.add_argument("--table", default="docs/TABLE1.md")
    parser.add_argument("--note", default="", help="a sentence on how the runs went, printed under the heading")
    args = parser.parse_args()
    folder = Path(args.folder)
    lines = [HEADING, "",
             "No fine-tuning was done for this table. `sepgraph prune --proxy-only` (SPEC 19, 21) on CIFAR-10 test "
             "(JPEG q75 export), split into halves (stratified, seed 0): every cut at about 30% and 50% of the "
             "parameters by each criterion, its accuracy after batch-norm recalibration alone (2,048 unaugmented "
             "training images, seed 0), beside 10 random cuts of the same size classes (or all of them where "
             "fewer exist). A proxy, not a verdict: the Table 1 run fine-tunes these cuts. Machine: "
             f"{processor().describe()}, 2 cores.", *([args.note, ""] if args.note else [""])]
    for model in args.models:
        lines += model_section(folder / model, folder / f"{model}.log")
    replace_section(Path(args.table), HEADING, lines)
    print(f"{args.table}: {HEADING[3:]} for {', '.join(args.models)}")


if __name__ == "__main__":
    main()
