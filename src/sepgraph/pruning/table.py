"""The pruning table (SPEC 8, 9, 16): :class:`PruningRow`, the one owner of ``pruning.csv``'s columns, and how
the table is written, read back and told (Markdown, sentences on where the curves differ).

Nothing here trains: the report draws the table without importing the training stack.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import SepgraphError
from ..files import atomic_text
from ..training.recipe import Recipe
from .criterion import CRITERIA, PAPER_CURVES
from .verdict import row_verdict

CONTROL = "unpruned"
"""The ``curve`` of the control row: the original model trained like every pruned row."""
REFERENCE = "reference"
"""The ``curve`` of a published or hand-picked cut."""


@dataclass(frozen=True)
class PruningRow:
    """One row of ``pruning.csv``: a cut, how it was chosen, and what training it alike gave (SPEC 8, 9).

    Attributes:
        model: the analysed model; curve: ``unpruned``, a criterion's label or ``reference``.
        kind: ``control``, ``criterion``, ``equal-units``, ``random`` or ``reference``.
        rule, parameter: the rule and its tau (a target rule: the percentage to save); cut: what was kept or
            removed; pruned_model: the spec that rebuilds it; points_removed, units_removed; init: ``finetune`` or
            ``scratch``.
        accuracy_original, accuracy_head_refit, accuracy_finetuned: percent, before, after head-only training,
            after fine-tuning; accuracy_vs_control: fine-tuned minus the control's (None where nothing trained,
            ``--proxy-only``).
        head_epochs, finetune_epochs, seed: the training every row shares.
        params_*, flops_*: sizes before and after, and the share saved (percent; FLOPs of one image).
        train_seconds: the row's training epochs; weights: its ``model.pt``, relative to the results folder.
        accuracy_proxy: percent after batch-norm recalibration alone (SPEC 19); None for a truncation (its new
            head is untrained).
        matches: a random cut's matched row, the criterion's label (empty otherwise).
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
    accuracy_head_refit: float | None
    accuracy_finetuned: float | None
    accuracy_vs_control: float | None
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
    accuracy_proxy: float | None = None
    matches: str = ""

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
            if field.name in LATER_COLUMNS and field.name not in record:
                continue  # a table written before the column existed: its default
            text = record[field.name]
            values[field.name] = int(text) if field.type == "int" else \
                (float(text) if text else None) if field.type in ("float", "float | None") else text
        return cls(**values)


LATER_COLUMNS = ("accuracy_proxy", "matches")
"""Columns added after the first tables were written; a table without them reads with their defaults."""


def write_pruning(results: Path, table: list[PruningRow], recipe: Recipe, stem: str = "pruning",
                  orders: dict[str, list[str]] | None = None) -> None:
    """``STEM.csv``, ``STEM.md`` and ``STEM-orders.json`` of a results folder (``pruning``; ``proxy`` for a
    comparison with nothing trained), atomically; ``orders``: each criterion's order of the units under a target
    rule, first to go first, shown under the table and in the report."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PruningRow.columns())
    writer.writerows(row.csv_values() for row in table)
    atomic_text(results / f"{stem}-orders.json", json.dumps(orders or {}, indent=1) + "\n")
    atomic_text(results / f"{stem}.md", pruning_markdown(table, recipe, orders))
    atomic_text(results / f"{stem}.csv", buffer.getvalue())  # last: the table is there once all of it is


def load_orders(results: str | Path) -> dict[str, list[str]]:
    """Each criterion's order of the units as the last ``sepgraph prune`` wrote it (empty when none)."""
    path = Path(results) / "pruning-orders.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_pruning(results: str | Path, stem: str = "pruning") -> list[PruningRow] | None:
    """The rows of a folder's ``STEM.csv`` (``pruning``, or ``proxy``), or None when there is none."""
    path = Path(results) / f"{stem}.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in PruningRow.columns()
                   if column not in (reader.fieldnames or ()) and column not in LATER_COLUMNS]
        if missing:
            raise SepgraphError(f"{str(path)!r} was written by an older sepgraph (it lacks {', '.join(missing)}); "
                                "run 'sepgraph prune' again to compare against the unpruned control")
        return [PruningRow.from_csv(record) for record in reader]


def curve_label(key: str) -> str:
    """How tables name the criterion of a key of :data:`~sepgraph.pruning.criterion.CRITERIA`."""
    return CRITERIA[key].label


def rule_label(row: PruningRow) -> str:
    """A row's rule and its tau, ``delta (0.02)``; empty for the control and reference rows."""
    return row.rule + (f" ({row.parameter:.4g})" if row.parameter is not None else "")


def matched_label(row: PruningRow) -> str:
    """The label a random cut's ``matches`` names ``row`` by: its curve, ``... at equal units`` for such a row."""
    return row.curve + (" at equal units" if row.kind == "equal-units" else "")


def chosen_cuts(table: Sequence[PruningRow]) -> set[tuple[str, str]]:
    """(matched label, pruned model) of every cut a criterion chose: a random row with its ``matches`` and model
    among them drew that criterion's own units, which is no chance to judge it against (SPEC 20)."""
    return {(matched_label(row), row.pruned_model) for row in table if row.kind not in ("control", "random")}


def change_label(row: PruningRow) -> str:
    """A row's fine-tuned accuracy against the control, ``-2.24``; ``-`` for the control itself and where nothing
    was trained."""
    return "-" if row.kind == "control" or row.accuracy_vs_control is None else f"{row.accuracy_vs_control:+.2f}"


def percent(value: float | None) -> str:
    """An accuracy as tables show it, ``91.25``; ``-`` where there is none."""
    return "-" if value is None else f"{value:.2f}"


def first_seed(table: list[PruningRow]) -> list[PruningRow]:
    """The rows of the first seed (the control's first), where every row was trained with several."""
    return [row for row in table if row.seed == table[0].seed] if table else []


def curve_pairs(table: list[PruningRow]) -> list[tuple[str, PruningRow, PruningRow]]:
    """(name, M's row, Q's row) for every rule setting and for the equal-units pair that has both, in table order
    (of the first seed, where rows were trained with several)."""
    groups: dict[str, dict[str, PruningRow]] = {}
    for row in first_seed(table):
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
    for row in first_seed(table):
        if row.kind in ("criterion", "equal-units") and row.curve not in paper:
            setting = rule_label(row) + (" at equal units" if row.kind == "equal-units" else "")
            sentences.append(f"{setting}, cut by {row.curve}: {_outcome(row)}.")
    return sentences


def _pair_sentence(name: str, m: PruningRow, q: PruningRow) -> str:
    """Where the cuts by M and by Q of one rule setting differ, or why they agree."""
    if m.pruned_model != q.pruned_model:
        return (f"{name}: M {_outcome(m)}; Q {_outcome(q)}. M minus Q: "
                f"{m.params_saved_pct - q.params_saved_pct:+.1f} points of parameters saved"
                + ("." if m.accuracy_vs_control is None or q.accuracy_vs_control is None else
                   f", {m.accuracy_vs_control - q.accuracy_vs_control:+.2f} points of accuracy."))
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
    return (f"{removed} ({row.params_saved_pct:.1f}% of parameters), {percent(row.accuracy_finetuned)}% "
            f"({change_label(row)} vs control)")


def pruning_markdown(table: list[PruningRow], recipe: Recipe | None = None,
                     orders: dict[str, list[str]] | None = None) -> str:
    """The comparison as a Markdown table with the control marked and every row's change against it (a row trained
    with several seeds as mean ± sample standard deviation) and its verdict by SPEC 20's rules; the random cuts
    matched to one row as one line of means and ranges; then each criterion's order of the units."""
    lines = ["| curve | rule (tau or target %) | cut | accuracy (%): original / proxy / head refit / fine-tuned | "
             "vs control | verdict (SPEC 20) | parameters saved | FLOPs saved | pruned model |",
             "|---|---|---|---|---:|---|---:|---:|---|"]
    words = verdicts(table)
    randoms: dict[tuple[str, str], list[PruningRow]] = {}
    for row in table:
        if row.kind == "random":
            randoms.setdefault((row.matches, rule_label(row)), []).append(row)
    for seeds in seed_groups([row for row in table if row.kind != "random"]):
        row = seeds[0]
        curve = f"**{row.curve}** (control)" if row.kind == "control" else row.curve
        if row.kind == "equal-units":
            curve += " at equal units"
        change = "-" if row.kind == "control" else _over_seeds([r.accuracy_vs_control for r in seeds], signed=True)
        lines.append(
            f"| {curve} | {rule_label(row)} | {row.cut} | {row.accuracy_original:.2f} / "
            f"{_over_seeds([r.accuracy_proxy for r in seeds])} / {_over_seeds([r.accuracy_head_refit for r in seeds])} "
            f"/ {_over_seeds([r.accuracy_finetuned for r in seeds])} | {change} | "
            f"{words[table.index(row)]} | "
            f"{row.params_saved_pct:.2f}% ({row.params_original:,} -> {row.params_pruned:,}) | "
            f"{row.flops_saved_pct:.2f}% | `{row.pruned_model}` |")
        group = randoms.pop((curve, rule_label(row)), None)  # the random cuts matched to it, beside it
        if group:
            lines.append(_random_line(group, row.pruned_model))
    lines += [_random_line(group) for group in randoms.values()]
    first = table[0]
    if first.accuracy_finetuned is None:
        lines.append("\nNothing was trained: *proxy* is each cut's accuracy after batch-norm recalibration alone "
                     f"(running statistics re-estimated on unaugmented training images drawn with seed {first.seed}; "
                     "SPEC 19); a truncation has none (its new head is untrained).")
    else:
        training = (f"{first.head_epochs} head-only epoch(s), then {first.finetune_epochs} fine-tuning epoch(s)"
                    + (f" (lr {recipe.lr}, batch {recipe.batch_size}, milestones {list(recipe.milestones)})"
                       if recipe else "") + f", seed {first.seed}, init {first.init}")
        lines.append(f"\nEvery row, the control included, trained alike: {training}. The control (`{CONTROL}`) is the "
                     "original model trained with that same budget; *vs control* is each row's fine-tuned accuracy "
                     "minus the control's, so it shows what the cut did rather than what the extra training did. "
                     "*proxy* is the accuracy after batch-norm recalibration alone, before any training (SPEC 19).")
    for label, order in (orders or {}).items():
        lines.append(f"\nOrder of {label}, first to go first: {', '.join(order)}.")
    return "\n".join(lines) + "\n"


def seed_groups(rows: list[PruningRow]) -> list[list[PruningRow]]:
    """Consecutive rows that differ only in their seed, together."""
    groups: list[list[PruningRow]] = []
    for row in rows:
        same = groups and (groups[-1][0].kind, groups[-1][0].curve, rule_label(groups[-1][0]),
                           groups[-1][0].pruned_model) == (row.kind, row.curve, rule_label(row), row.pruned_model)
        if same and row.seed not in {other.seed for other in groups[-1]}:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _over_seeds(values: list[float | None], signed: bool = False) -> str:
    """One value, ``91.25``; two, both (SPEC 20: no spread from two); three or more, mean ± sample standard
    deviation and their count; ``-`` where none."""
    known = [value for value in values if value is not None]
    sign = "+" if signed else ""
    if not known:
        return "-"
    if len(known) <= 2:
        return " and ".join(f"{value:{sign}.2f}" for value in known) + (" (2 seeds)" if len(known) == 2 else "")
    mean = sum(known) / len(known)
    deviation = (sum((value - mean) ** 2 for value in known) / (len(known) - 1)) ** 0.5
    return f"{mean:{sign}.2f} ± {deviation:.2f} ({len(known)} seeds)"


def seed_accuracies(table: Sequence[PruningRow], row: PruningRow) -> list[float]:
    """The fine-tuned accuracies of ``row`` over its seeds: the rows of ``table`` that differ from it only in their
    seed (those without a fine-tuned accuracy left out)."""
    same = (row.kind, row.curve, rule_label(row), row.pruned_model)
    return [other.accuracy_finetuned for other in table if other.accuracy_finetuned is not None and
            (other.kind, other.curve, rule_label(other), other.pruned_model) == same]


def verdicts(table: list[PruningRow]) -> list[str]:
    """Every row's verdict in SPEC 20's words, one per row (a cut's seeds share theirs): against the control's seeds
    and the random cuts matched to it or to any criterion that chose the same cut under the same rule (a table may
    hold the draws of only one of them), but for its own cut where the size classes allow few; ``-`` for the
    control, the random cuts and wherever nothing was fine-tuned; "undecided (no control yet)" without a control."""
    control = [row.accuracy_finetuned for row in table if row.kind == "control" and row.accuracy_finetuned is not None]

    def verdict(row: PruningRow) -> str:
        values = seed_accuracies(table, row)
        if row.kind in ("control", "random") or not values:
            return "-"
        rule = rule_label(row)
        labels = {matched_label(other) for other in table if other.kind not in ("control", "random")
                  and other.pruned_model == row.pruned_model and rule_label(other) == rule}
        cuts = {other.pruned_model: other for other in table if other.kind == "random" and other.matches in labels
                and rule_label(other) == rule and other.pruned_model != row.pruned_model}
        randoms = [statistics.mean(seeds) for cut in cuts.values() if (seeds := seed_accuracies(table, cut))]
        return row_verdict(values, control, randoms)

    return [verdict(row) for row in table]


def _random_line(group: list[PruningRow], own: str = "") -> str:
    """The random cuts matched to one row: each accuracy as mean [min, max] over the cuts that are not the row's own
    pruned model ``own`` (the few size classes of a coarse network may draw it: left out, SPEC 20)."""
    def spread(values: list[float | None]) -> str:
        known = [value for value in values if value is not None]
        if not known:
            return "-"
        return f"{sum(known) / len(known):.2f} [{min(known):.2f}, {max(known):.2f}]"

    row, others = group[0], [other for other in group if other.pruned_model != own]
    cuts = len({other.pruned_model for other in others})
    drawn = "; its own cut, drawn too, left out" if len(others) < len(group) else ""
    return (f"| random ({cuts} cut{'s' * (cuts != 1)} matching {row.matches}{drawn}) | {rule_label(row)} | "
            "same units per size class | "
            f"{row.accuracy_original:.2f} / {spread([r.accuracy_proxy for r in others])} / "
            f"{spread([r.accuracy_head_refit for r in others])} / {spread([r.accuracy_finetuned for r in others])} | "
            f"{spread([r.accuracy_vs_control for r in others])} | - | {row.params_saved_pct:.2f}% | "
            f"{row.flops_saved_pct:.2f}% | |")
