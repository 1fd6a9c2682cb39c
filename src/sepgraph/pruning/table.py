"""The pruning table (SPEC 8, 9, 16): :class:`PruningRow`, the one owner of ``pruning.csv``'s columns, and how
the table is written, read back and told (Markdown, sentences on where the curves differ).

Nothing here trains: the report draws the table without importing the training stack.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import SepgraphError
from ..files import atomic_text
from ..training.recipe import Recipe
from .criterion import CURVES, PAPER_CURVES

CONTROL = "unpruned"
"""The ``curve`` of the control row: the original model trained like every pruned row."""
REFERENCE = "reference"
"""The ``curve`` of a published or hand-picked cut."""


@dataclass(frozen=True)
class PruningRow:
    """One row of ``pruning.csv``: a cut, how it was chosen, and what training it alike gave (SPEC 8, 9).

    Attributes:
        model: the analysed model; curve: ``unpruned``, a curve's label or ``reference``.
        kind: ``control``, ``criterion``, ``equal-units`` or ``reference``.
        rule, parameter: Criterion I's rule and tau; cut: what was kept or removed; pruned_model: the spec that
            rebuilds it; points_removed, units_removed; init: ``finetune`` or ``scratch``.
        accuracy_original, accuracy_head_refit, accuracy_finetuned: percent, before, after head-only training,
            after fine-tuning; accuracy_vs_control: fine-tuned minus the control's.
        head_epochs, finetune_epochs, seed: the training every row shares.
        params_*, flops_*: sizes before and after, and the share saved (percent; FLOPs of one image).
        train_seconds: the row's training epochs; weights: its ``model.pt``, relative to the results folder.
    """

    model: str
    curve: str
    kind: str
    rule: str
    parameter: float | None
    cut: str
    pruned_model: str
    points_removed: int
    units_removed: int
    init: str
    accuracy_original: float
    accuracy_head_refit: float
    accuracy_finetuned: float
    accuracy_vs_control: float
    head_epochs: int
    finetune_epochs: int
    seed: int
    params_original: int
    params_pruned: int
    params_saved_pct: float
    flops_original: int
    flops_pruned: int
    flops_saved_pct: float
    train_seconds: float
    weights: str

    @staticmethod
    def columns() -> list[str]:
        """The header of pruning.csv."""
        return [field.name for field in fields(PruningRow)]

    def csv_values(self) -> list[object]:
        """The row of pruning.csv (floats as ``csv`` writes them: shortest round-trip form; None empty)."""
        return list(asdict(self).values())

    @classmethod
    def from_csv(cls, record: dict[str, str]) -> PruningRow:
        """A row read back from pruning.csv, numbers as numbers."""
        values = {}
        for field in fields(cls):
            text = record[field.name]
            values[field.name] = int(text) if field.type == "int" else \
                (float(text) if text else None) if field.type in ("float", "float | None") else text
        return cls(**values)


def write_pruning(results: Path, table: list[PruningRow], recipe: Recipe) -> None:
    """``pruning.csv`` and ``pruning.md`` of a results folder, atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PruningRow.columns())
    writer.writerows(row.csv_values() for row in table)
    atomic_text(results / "pruning.csv", buffer.getvalue())
    atomic_text(results / "pruning.md", pruning_markdown(table, recipe))


def load_pruning(results: str | Path) -> list[PruningRow] | None:
    """The rows of a folder's ``pruning.csv``, or None when there is none."""
    path = Path(results) / "pruning.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in PruningRow.columns() if column not in (reader.fieldnames or ())]
        if missing:
            raise SepgraphError(f"{str(path)!r} was written by an older sepgraph (it lacks {', '.join(missing)}); "
                                "run 'sepgraph prune' again to compare against the unpruned control")
        return [PruningRow.from_csv(record) for record in reader]


def curve_label(key: str) -> str:
    """How tables name the curve of a key of :data:`~sepgraph.pruning.criterion.CURVES`."""
    return CURVES[key].label


def rule_label(row: PruningRow) -> str:
    """A row's rule and its tau, ``delta (0.02)``; empty for the control and reference rows."""
    return row.rule + (f" ({row.parameter:.4g})" if row.parameter is not None else "")


def change_label(row: PruningRow) -> str:
    """A row's fine-tuned accuracy against the control, ``-2.24``; ``-`` for the control itself."""
    return "-" if row.kind == "control" else f"{row.accuracy_vs_control:+.2f}"


def curve_pairs(table: list[PruningRow]) -> list[tuple[str, PruningRow, PruningRow]]:
    """(name, M's row, Q's row) for every rule setting and for the equal-units pair that has both, in table order."""
    groups: dict[str, dict[str, PruningRow]] = {}
    for row in table:
        if row.kind == "criterion":
            key = rule_label(row)
        elif row.kind == "equal-units":
            key = f"{row.rule} at equal units"
        else:
            continue
        groups.setdefault(key, {})[row.curve] = row
    m, q = curve_label("M"), curve_label("lu_q")
    return [(key, pair[m], pair[q]) for key, pair in groups.items() if m in pair and q in pair]


def differences(table: list[PruningRow]) -> list[str]:
    """One sentence per rule setting (and for the equal-units pair) on where the cuts by M and by Q differ,
    or why they agree, then one per row cut by another curve (SPEC 16)."""
    sentences = [_pair_sentence(name, m, q) for name, m, q in curve_pairs(table)]
    paper = {curve_label(key) for key in PAPER_CURVES}
    for row in table:
        if row.kind in ("criterion", "equal-units") and row.curve not in paper:
            setting = rule_label(row) + (" at equal units" if row.kind == "equal-units" else "")
            sentences.append(f"{setting}, cut by {row.curve}: {_outcome(row)}.")
    return sentences


def _pair_sentence(name: str, m: PruningRow, q: PruningRow) -> str:
    """Where the cuts by M and by Q of one rule setting differ, or why they agree."""
    if m.pruned_model != q.pruned_model:
        return (f"{name}: M {_outcome(m)}; Q {_outcome(q)}. M minus Q: "
                f"{m.params_saved_pct - q.params_saved_pct:+.1f} points of parameters saved, "
                f"{m.accuracy_vs_control - q.accuracy_vs_control:+.2f} points of accuracy.")
    nothing = ("both curves still rise at their last point" if m.rule in ("plateau", "peak")
               else "no unit's contribution is at or below the threshold on either curve")
    same = ("the same units contribute least to either curve" if m.kind == "equal-units" else
            "the same units add no more than the threshold to either curve" if m.units_removed else
            "both curves flatten at the same point")
    why = f"neither curve finds anything to cut: {nothing}" if m.pruned_model == m.model else f"both {m.cut}: {same}"
    return f"{name}: M and Q agree ({why}), so the two rows are one model trained once."


def _outcome(row: PruningRow) -> str:
    units, points = row.units_removed, row.points_removed
    removed = (f"removes {units} unit{'s' if units > 1 else ''}" if units else
               f"truncates {points} point{'s' if points > 1 else ''}" if points else "cuts nothing")
    return (f"{removed} ({row.params_saved_pct:.1f}% of parameters), {row.accuracy_finetuned:.2f}% "
            f"({row.accuracy_vs_control:+.2f} vs control)")


def pruning_markdown(table: list[PruningRow], recipe: Recipe | None = None) -> str:
    """The comparison as a Markdown table with the control marked and every row's change against it."""
    lines = ["| curve | rule (tau) | cut | accuracy (%): original / head refit / fine-tuned | vs control | "
             "parameters saved | FLOPs saved | pruned model |", "|---|---|---|---|---:|---:|---:|---|"]
    for row in table:
        curve = f"**{row.curve}** (control)" if row.kind == "control" else row.curve
        if row.kind == "equal-units":
            curve += " at equal units"
        lines.append(
            f"| {curve} | {rule_label(row)} | {row.cut} | {row.accuracy_original:.2f} / {row.accuracy_head_refit:.2f} "
            f"/ {row.accuracy_finetuned:.2f} | {change_label(row)} | {row.params_saved_pct:.2f}% "
            f"({row.params_original:,} -> {row.params_pruned:,}) | {row.flops_saved_pct:.2f}% | "
            f"`{row.pruned_model}` |")
    first = table[0]
    training = (f"{first.head_epochs} head-only epoch(s), then {first.finetune_epochs} fine-tuning epoch(s)"
                + (f" (lr {recipe.lr}, batch {recipe.batch_size}, milestones {list(recipe.milestones)})"
                   if recipe else "") + f", seed {first.seed}, init {first.init}")
    lines.append(f"\nEvery row, the control included, trained alike: {training}. The control (`{CONTROL}`) is the "
                 "original model trained with that same budget; *vs control* is each row's fine-tuned accuracy "
                 "minus the control's, so it shows what the cut did rather than what the extra training did.")
    return "\n".join(lines) + "\n"
