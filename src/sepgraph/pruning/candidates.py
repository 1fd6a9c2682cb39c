"""Which cuts a pruning comparison trains (SPEC 8, 9, 16, 19): the control, each criterion's cut under each rule,
the equal-units rows, the random cuts matched to each removal cut, and any reference cut, each as a
:class:`Candidate` that names its pruning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import SepgraphError
from ..models.points import layer_points, removable_units
from ..models.protocol import RemovableUnit
from ..models.pruned import PruningSpec, apply_pruning
from ..results.depth_table import DepthRow
from ..results.layer_row import LayerRow
from .criterion import CRITERIA, CURVE, Cut, UnitSizes, curve_values, points_removed, recommend, tau_for_count
from .options import PruningOptions, Rule
from .random_cuts import matched_cuts
from .table import CONTROL, REFERENCE, curve_label


@dataclass(frozen=True)
class Candidate:
    """One row to train: which criterion and rule chose it, and the pruning it asks for (unpruned: nothing removed).
    A random cut names the criterion's row it ``matches``; a target rule's row carries its criterion's ``order``."""

    curve: str
    kind: str
    rule: str
    parameter: float | None
    cut: str
    spec: PruningSpec
    points_removed: int
    units_removed: int
    matches: str = ""
    order: tuple[str, ...] = ()


def candidates(base: str, rows: list[LayerRow], units: Sequence[RemovableUnit] | None, options: PruningOptions,
               sizes: UnitSizes | None = None, scores: dict[str, list[float]] | None = None,
               seed: int = 0, runs: Sequence[DepthRow] | None = None) -> list[Candidate]:
    """The control, each criterion's cut under each rule, the equal-units rows and the random cuts matched to every
    removal cut (drawn with ``seed``), for an analysis of ``base``; ``sizes``, ``scores`` and ``runs`` as
    :func:`~sepgraph.pruning.criterion.recommend` takes them."""
    names = [row.name for row in rows]
    found = [Candidate(CONTROL, "control", "", None, "nothing removed (the control)", PruningSpec(base), 0, 0)]
    for rule, parameter in options.all_rules:
        cuts = recommend(rows, rule, parameter, units, options.curves, scores, sizes, runs)
        found += [_candidate(base, curve_label(key), "criterion", cut, names) for key, cut in cuts.items()]
    if options.equal_units:
        found += _equal_units(base, rows, units, options.rules, options.curves)
    if options.draws_random:
        found += _random(base, found, names, units, sizes, options.random_seeds, seed)
    return found


def _random(base: str, found: list[Candidate], names: list[str], units: Sequence[RemovableUnit] | None,
            sizes: UnitSizes | None, count: int, seed: int) -> list[Candidate]:
    """``count`` random cuts for every criterion's removal cut, each with its size classes' counts (SPEC 19)."""
    if units is None or sizes is None:
        raise SepgraphError("random cuts need the removable units and their sizes, which analyses of sepgraph's zoo "
                            "models record", arguments=("curves",))
    drawn = []
    for matched in (row for row in found if row.kind in ("criterion", "equal-units") and row.units_removed):
        label = matched.curve + (" at equal units" if matched.kind == "equal-units" else "")
        for cut in matched_cuts(units, sizes, matched.spec.targets, count, seed):
            points = points_removed([unit for unit in units if unit.name in cut], names)
            drawn.append(Candidate(CRITERIA["random"].label, "random", matched.rule, matched.parameter,
                                   "remove " + ", ".join(cut), PruningSpec(base, "remove", cut), len(points), len(cut),
                                   matches=label))
    return drawn


def _equal_units(base: str, rows: list[LayerRow], units: Sequence[RemovableUnit] | None, rules: Sequence[Rule],
                 curves: Sequence[str]) -> list[Candidate]:
    """``delta`` rows where each curve removes as many units as the first curve that removes any (curves only)."""
    names = [row.name for row in rows]
    curves = [key for key in curves if CRITERIA[key].kind == CURVE]
    tau = next((parameter for rule, parameter in rules if rule == "delta"), None)
    delta = recommend(rows, "delta", tau, units, curves)
    count = next((len(cut.units) for cut in delta.values() if cut.units), 0)
    if not count:
        return []
    taus = {key: delta[key].parameter if len(delta[key].units) == count
            else tau_for_count(curve_values(rows, key), names, units, count)
            for key in delta}
    cuts = recommend(rows, "delta", taus, units, curves)
    return [_candidate(base, curve_label(key), "equal-units", cut, names) for key, cut in cuts.items()]


def _candidate(base: str, curve: str, kind: str, cut: Cut, names: list[str]) -> Candidate:
    """The pruning a cut asks for: ``truncate=POINT``, ``remove=UNIT,...`` or nothing."""
    if not cut.removed:
        text = "no cut: the curve still rises" if cut.cut_index is not None else "no unit at or below the threshold"
        return Candidate(curve, kind, cut.rule, cut.parameter, text, PruningSpec(base), 0, 0)
    if cut.cut_index is not None:
        kept = names[cut.cut_index]
        return Candidate(curve, kind, cut.rule, cut.parameter, f"keep up to {kept}",
                         PruningSpec(base, "truncate", (kept,)), len(cut.removed), 0)
    return Candidate(curve, kind, cut.rule, cut.parameter, "remove " + ", ".join(cut.units),
                     PruningSpec(base, "remove", tuple(cut.units)), len(cut.removed), len(cut.units),
                     order=tuple(cut.order))


def reference_candidate(original: nn.Module, text: str, base: str, convention: str, classes: int,
                        size: tuple[int, int, int]) -> Candidate:
    """A published or hand-picked cut (``BASE+remove=...``, ``BASE+truncate=...`` or the part after the ``+``),
    checked by building it; ``remove=`` units in network order."""
    try:
        spec = PruningSpec.parse(text) if "+" in text else PruningSpec.of(base, text)
    except SepgraphError as error:
        raise SepgraphError(f"reference_cut {text!r}: write {base}+remove=UNIT,UNIT or {base}+truncate=POINT",
                            arguments=("reference_cut",)) from error
    if spec.base != base:
        raise SepgraphError(f"reference_cut {text!r} names model {spec.base!r}, but the analysis is of {base!r}",
                            arguments=("reference_cut",))
    example = torch.zeros(1, *size)
    if spec.operation == "remove":
        known = [unit.name for unit in removable_units(original, convention, example)]
        unknown = [unit for unit in spec.targets if unit not in known]
        if unknown:
            raise SepgraphError(f"reference_cut {text!r}: cannot remove {', '.join(unknown)}; the removable units "
                                f"are {', '.join(known) or 'none'}", arguments=("reference_cut",))
        spec = PruningSpec(base, "remove", tuple(unit for unit in known if unit in spec.targets))
    pruned = apply_pruning(original, spec, classes, size)
    points = len(layer_points(original, convention, example_input=example)) - len(
        layer_points(pruned, convention, example_input=example))
    units = len(spec.targets) if spec.operation == "remove" else 0
    cut = f"{spec.operation} {', '.join(spec.targets)}"
    return Candidate(REFERENCE, "reference", "", None, cut, spec, points, units)
