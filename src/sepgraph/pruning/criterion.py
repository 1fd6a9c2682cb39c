"""Criterion I: where a curve says layers can go (SPEC 8), and cuts at a target size (SPEC 19).

The words, one meaning each: a *curve* is a value per layer point (M, Q, ...); a *score* is a value per
removable unit (a curve's contribution, the weights' magnitude); a *criterion* is a named way to order units
(:data:`CRITERIA`: a curve's contributions, or a score); a *cut* is the units (or the points) removed.

Pure functions over a curve c_1..c_K or over unit scores; each returns a :class:`Cut` that records the rule,
its parameter and what to remove. The truncation rules (``plateau``, ``peak``) read the curve alone; the unit
rules (``delta``, ``delta-abs``) judge each removable unit by its contribution, curve(output point) -
curve(input point); the target rules (``target-params``, ``target-flops``) take units in order of increasing
score until a share of the model's parameters (FLOPs) is saved; the run rule of ``angular`` takes the run of
consecutive units with the smallest angular distance that reaches such a share (SPEC 22).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import SepgraphError
from ..models.protocol import RemovableUnit
from ..results.depth_table import DepthRow
from ..results.layer_row import LayerRow

TRUNCATION_RULES = ("plateau", "peak")
"""Rules that keep the points up to one and give the model a new head."""
TARGET_RULES = ("target-params", "target-flops")
"""Rules that remove units until a share of the parameters (FLOPs) is saved; their parameter is that share, %."""
RULES = (*TRUNCATION_RULES, "delta", "delta-abs", *TARGET_RULES)
DEFAULT_PARAMETERS = {"plateau": 0.02, "peak": None, "delta": 0.02, "delta-abs": 0.03}

CURVE = "curve"
SCORE = "score"
RUN = "run"
RANDOM = "random"


@dataclass(frozen=True)
class Criterion:
    """A named way to order removable units (SPEC 8, 16, 19).

    Attributes:
        kind: :data:`CURVE` (values over layer points, the :class:`LayerRow` ``attribute``; every rule applies, a
            unit's score is its contribution), :data:`SCORE` (a value per unit; the target rules only), :data:`RUN`
            (a value per run of consecutive units, SPEC 22; the target rules only, one run is cut) or
            :data:`RANDOM` (cuts drawn to match each other criterion's removal cut in size).
        label: how tables name it.
        attribute: a curve's :class:`LayerRow` attribute.
    """

    kind: str
    label: str
    attribute: str | None = None


CRITERIA = {
    "M": Criterion(CURVE, "M (ours)", "M"), "lu_q": Criterion(CURVE, "Lu et al.'s Q", "lu_q_mean"),
    "knn_acc": Criterion(CURVE, "k-NN accuracy", "knn_acc"), "probe_acc": Criterion(CURVE, "linear probe", "probe_acc"),
    "cka_last": Criterion(CURVE, "CKA to the last point", "cka_last"),
    "magnitude": Criterion(SCORE, "weight magnitude"),
    "ablation": Criterion(SCORE, "per-unit ablation"),
    "block_influence": Criterion(SCORE, "block influence (ShortGPT)"),
    "angular": Criterion(RUN, "angular distance (Gromov et al.)"),
    "random": Criterion(RANDOM, "random (size-matched)"),
}
"""The one registry of the criteria (SPEC 8, 16, 19, 22), by the key ``--curves`` names them with."""


def criterion_rank(label: str) -> int:
    """Where a criterion's label stands in :data:`CRITERIA`'s order (M first), unknown labels last: the order
    tables and figures list criteria in."""
    labels = [criterion.label for criterion in CRITERIA.values()]
    return labels.index(label) if label in labels else len(labels)


DEPTH_CRITERIA = ("block_influence", "angular")
"""The criteria read off the analysis's depth measures, ``depth.csv`` (SPEC 22)."""

PAPER_CURVES = ("M", "lu_q")
"""The paper's comparison: its M against Lu et al.'s Q; the default of ``--curves``."""


def check_criteria(keys: Sequence[str], rules: Sequence[str] = ()) -> tuple[str, ...]:
    """Known, distinct criterion keys, in the order given, that every rule in ``rules`` (names) can cut by."""
    unknown = [key for key in keys if key not in CRITERIA]
    if unknown or not keys or len(set(keys)) < len(keys):
        raise SepgraphError(f"curves {','.join(keys)!r}: name each of {', '.join(CRITERIA)} at most once "
                            f"(unknown: {', '.join(unknown) or 'none'})", arguments=("curves",))
    curve_rules = [rule for rule in rules if rule not in TARGET_RULES]
    for key in keys:
        if CRITERIA[key].kind in (SCORE, RUN) and curve_rules:
            what = "a unit score" if CRITERIA[key].kind == SCORE else "a distance per run of units"
            raise SepgraphError(f"criterion {key!r} is {what} with no curve, so the {curve_rules[0]} rule "
                                f"cannot cut by it; cut it with target_params or target_flops, or leave it out",
                                arguments=("curves", "target_params", "target_flops"))
    if RANDOM in keys:
        if len(keys) == 1:
            raise SepgraphError("criterion 'random' draws cuts matching another criterion's; name one beside it "
                                "(e.g. M,random)", arguments=("curves",))
        if rules and all(rule in TRUNCATION_RULES for rule in rules):
            raise SepgraphError(f"criterion 'random' matches removal cuts, and {', '.join(rules)} only "
                                f"truncate{'s' * (len(rules) == 1)}; "
                                "add target_params, target_flops or the delta rule",
                                arguments=("curves", "target_params", "target_flops"))
    return tuple(keys)


def curve_values(rows: Sequence[LayerRow], key: str) -> list[float]:
    """One curve (a key of :data:`CRITERIA` of kind :data:`CURVE`) over an analysis's rows, in point order."""
    values = [getattr(row, CRITERIA[key].attribute) for row in rows]
    if any(value is None for value in values):
        raise SepgraphError(f"the analysis has no {CRITERIA[key].attribute} values (it was written before SPEC "
                            "13-15); rerun 'sepgraph analyze' with --overwrite to measure them")
    return values


@dataclass(frozen=True)
class Contribution:
    """What one removable unit adds to a curve: curve(output_point) - curve(input_point) (SPEC 8).

    ``value`` is None when the curve lacks one of the two points; such a unit is never removed.
    """

    unit: str
    input_point: str | None
    output_point: str | None
    value: float | None
    removed: bool


@dataclass(frozen=True)
class Cut:
    """What a rule removes from a curve's layer points.

    Attributes:
        rule: one of :data:`RULES`.
        parameter: tau (relative: ``plateau``, ``delta``), tau_abs (``delta-abs``); None for ``peak``.
        cut_index: truncation rules: the last kept point (0-based); None for the unit rules.
        removed: positions of the layer points that go, ascending (unit rules: every point after a removed
            unit's input point up to its output point, e.g. both units of a residual block under ``paper``).
        units: unit rules: the units removed, in network order.
        threshold: unit rules: the contribution at or below which a unit goes, in the curve's own units; target
            rules: the score of the last unit taken.
        contributions: unit and target rules: every removable unit's contribution (or score) and verdict.
        order: target rules: the criterion's order, every scored unit from the first to go to the last.
    """

    rule: str
    parameter: float | None
    cut_index: int | None
    removed: list[int]
    units: list[str] = field(default_factory=list)
    threshold: float | None = None
    contributions: list[Contribution] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _curve(values: Sequence[float]) -> np.ndarray:
    curve = np.asarray(values, dtype=np.float64)
    if curve.ndim != 1 or len(curve) == 0:
        raise SepgraphError("a modularity curve needs at least one value")
    if not np.all(np.isfinite(curve)):
        raise SepgraphError("the modularity curve has NaN or Inf values; check the analysis of those layers")
    return curve


def plateau_cut(values: Sequence[float], tau: float = 0.02) -> Cut:
    """The earliest k with max(c[k+1:]) - c[k] <= tau * (max c - min c); all points after k go.

    Covers "reaches its maximum", "a plateau" and "starts to decline" (SPEC 8).
    """
    curve = _curve(values)
    tolerance = tau * (curve.max() - curve.min())
    later_max = np.append(np.maximum.accumulate(curve[::-1])[::-1][1:], -np.inf)
    cut = int(np.flatnonzero(later_max - curve <= tolerance)[0])
    return Cut("plateau", tau, cut, list(range(cut + 1, len(curve))))


def peak_cut(values: Sequence[float]) -> Cut:
    """Cut after the (first) global maximum."""
    curve = _curve(values)
    cut = int(np.argmax(curve))
    return Cut("peak", None, cut, list(range(cut + 1, len(curve))))


def contributions(values: Sequence[float], names: Sequence[str], units: Sequence[RemovableUnit]
                  ) -> list[float | None]:
    """Each unit's curve(output point) - curve(input point); None where ``names`` lacks either point.

    Args:
        values: (K,) the curve.
        names: (K,) the layer point of each value.
        units: the model's removable units under the convention of ``names``.
    """
    curve = _curve(values)
    if len(names) != len(curve):
        raise SepgraphError(f"the curve has {len(curve)} values but {len(names)} point names")
    position = {name: k for k, name in enumerate(names)}
    return [float(curve[position[u.output_point]] - curve[position[u.input_point]])
            if u.input_point in position and u.output_point in position else None for u in units]


def unit_removals(values: Sequence[float], names: Sequence[str], units: Sequence[RemovableUnit],
                  tau: float = 0.02, relative: bool = True) -> Cut:
    """Remove each unit whose contribution is at most the threshold (SPEC 8).

    ``delta`` (``relative``): threshold tau x (max c - min c), so curves on different scales (M, Q)
    are judged alike. ``delta-abs``: threshold tau itself, Lu et al.'s absolute rule (0.03).
    """
    curve = _curve(values)
    threshold = float(tau * (curve.max() - curve.min())) if relative else float(tau)
    rises = contributions(curve, names, units)
    verdicts = [rise is not None and rise <= threshold for rise in rises]
    removed = points_removed([u for u, gone in zip(units, verdicts, strict=True) if gone], names)
    return Cut("delta" if relative else "delta-abs", tau, None, removed,
               [u.name for u, gone in zip(units, verdicts, strict=True) if gone], threshold,
               [Contribution(u.name, u.input_point, u.output_point, rise, gone)
                for u, rise, gone in zip(units, rises, verdicts, strict=True)])


def points_removed(units: Sequence[RemovableUnit], names: Sequence[str]) -> list[int]:
    """Positions in ``names`` of the layer points that removing ``units`` takes away, ascending: every point after a
    unit's input point up to its output point (a unit without both points on the curve takes none)."""
    position = {name: k for k, name in enumerate(names)}
    return sorted({k for u in units if u.input_point in position and u.output_point in position
                   for k in range(position[u.input_point] + 1, position[u.output_point] + 1)})


@dataclass(frozen=True)
class UnitSizes:
    """What removing each removable unit alone saves, in network order, and the whole model's size (SPEC 19).
    Units are independent (every other layer keeps its shape), so a cut saves the sum of its units'."""

    params: tuple[int, ...]
    flops: tuple[int, ...]
    params_total: int
    flops_total: int

    def of(self, rule: str) -> tuple[tuple[int, ...], int]:
        """The savings per unit and the total that a target rule counts in."""
        return (self.params, self.params_total) if rule == "target-params" else (self.flops, self.flops_total)


def unreachable(rule: str, target: float, most: float, removing: str) -> SepgraphError:
    """The one-line refusal of a target (percent) above the ``most`` any cut reaches, by ``removing`` what."""
    name = rule.replace("-", "_")
    return SepgraphError(f"{name} {target:g}: the most a cut can reach is {most:.2f}% (removing {removing}); choose a "
                         "smaller target", arguments=(name,))


def target_cut(scores: Sequence[float | None], names: Sequence[str], units: Sequence[RemovableUnit],
               sizes: UnitSizes, rule: str, target: float) -> Cut:
    """The units taken in order of increasing score until at least ``target`` percent of the model's parameters
    (``target-params``) or FLOPs (``target-flops``) is saved (SPEC 19): ties go in network order; the last unit
    taken may overshoot the target (the cut reports the size it reached); units without a score never go.

    Args:
        scores: one per unit of ``units`` (a curve's contributions, or a unit score); None: not scored.
        names: the analysis's layer points, for the points each unit's removal takes away.
    """
    savings, total = sizes.of(rule)
    order = sorted((k for k, score in enumerate(scores) if score is not None), key=lambda k: (scores[k], k))
    saved = np.cumsum([savings[k] for k in order], dtype=np.int64)
    reached = np.flatnonzero(saved * 100 >= target * total)  # exact at a boundary: 7 of 100 reaches 7%
    if not len(reached):
        raise unreachable(rule, target, 100 * float(saved[-1]) / total if len(saved) else 0.0,
                          f"all {len(order)} scored units")
    taken = set(order[:int(reached[0]) + 1])
    removed = points_removed([units[k] for k in taken], names)
    return Cut(rule, target, None, removed, [u.name for k, u in enumerate(units) if k in taken],
               scores[order[int(reached[0])]],
               [Contribution(u.name, u.input_point, u.output_point, score, k in taken)
                for k, (u, score) in enumerate(zip(units, scores, strict=True))],
               [units[k].name for k in order])


def no_run_reaches(rule: str, target: float, most: float) -> SepgraphError:
    """The one-line refusal of a target (percent) that no run of ``angular`` reaches (the ``most`` one saves)."""
    name = rule.replace("-", "_")
    return SepgraphError(f"{name} {target:g}: no run of consecutive same-shape units reaches it for criterion "
                         f"'angular' (the most one saves is {most:.2f}%); choose a smaller target, or cut by "
                         "block_influence, M or another criterion instead", arguments=("curves", name))


def run_cut(runs: Sequence[DepthRow], names: Sequence[str], units: Sequence[RemovableUnit], sizes: UnitSizes,
            rule: str, target: float) -> Cut:
    """``angular``'s cut (SPEC 22): the fewest consecutive units that can reach ``target`` percent of the parameters
    (``target-params``) or FLOPs (``target-flops``), and among the runs of that many units that reach it, the one
    with the smallest angular distance (ties: the earliest); Gromov et al.'s choice for that number of blocks.

    Args:
        runs: the analysis's runs with their angular distances (``depth.csv``).
        names: the analysis's layer points, for the points the cut takes away.
    """
    savings, total = sizes.of(rule)
    index = {unit.name: k for k, unit in enumerate(units)}
    reaching = [run for run in runs if sum(savings[index[name]] for name in run.units) * 100 >= target * total]
    if not reaching:
        most = max((sum(savings[index[name]] for name in run.units) for run in runs), default=0)
        raise no_run_reaches(rule, target, 100 * most / total)
    fewest = min(len(run.units) for run in reaching)
    chosen = min((run for run in reaching if len(run.units) == fewest),
                 key=lambda run: (run.angular_distance, index[run.units[0]]))
    alone = {run.units[0]: run.angular_distance for run in runs if len(run.units) == 1}
    removed = points_removed([units[index[name]] for name in chosen.units], names)
    return Cut(rule, target, None, removed, list(chosen.units), chosen.angular_distance,
               [Contribution(u.name, u.input_point, u.output_point, alone.get(u.name), u.name in chosen.units)
                for u in units])


def block_influence_scores(runs: Sequence[DepthRow], units: Sequence[RemovableUnit]) -> list[float | None]:
    """Each unit's ``block_influence`` (SPEC 22), 1 - its mean cosine, from its one-unit run; None for a unit
    without one (its input and output points differ in shape or are not both layer points)."""
    influence = {run.units[0]: run.block_influence for run in runs if len(run.units) == 1}
    return [influence.get(unit.name) for unit in units]


def tau_for_count(values: Sequence[float], names: Sequence[str], units: Sequence[RemovableUnit], count: int
                  ) -> float:
    """A relative tau at which ``delta`` removes ``count`` units, or the count nearest to it when
    contributions tie (the smaller count on equal distance); for the equal-savings comparison (SPEC 8).

    The tau returned sits halfway between two distinct contributions, so rounding cannot move a unit.
    """
    curve = _curve(values)
    spread = float(curve.max() - curve.min())
    rises = sorted(rise for rise in contributions(curve, names, units) if rise is not None)
    if count < 1 or not rises:
        raise SepgraphError(f"cannot choose tau to remove {count} of {len(rises)} judged units; "
                            "the count must be between 1 and that number")
    if spread == 0:
        return 0.0
    levels = sorted(set(rises))
    removed = [sum(rise <= level for rise in rises) for level in levels]
    best = min(range(len(levels)), key=lambda k: (abs(removed[k] - count), k))
    above = levels[best + 1] if best + 1 < len(levels) else levels[best] + spread
    return (levels[best] + above) / 2 / spread


def check_rule(rule: str, parameter: float | None) -> None:
    """A known rule with a finite, non-negative parameter (None: the rule's default); a target rule's parameter is
    a percentage above 0 and below 100."""
    if rule not in RULES:
        raise SepgraphError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule in TARGET_RULES:
        if parameter is None or not 0 < parameter < 100:
            what = "parameters" if rule == "target-params" else "FLOPs"
            shown = parameter if parameter is None else f"{parameter:g}"
            raise SepgraphError(f"{rule.replace('-', '_')} {shown}: a target is the share of {what} to save, "
                                "a percentage above 0 and below 100", arguments=(rule.replace("-", "_"),))
        return
    if parameter is not None and not 0 <= parameter < np.inf:
        raise SepgraphError(f"the {rule} rule's tau must be a finite number of 0 or more, got {parameter}",
                            arguments=("tau",))


def apply_rule(values: Sequence[float], rule: str = "plateau", parameter: float | None = None,
               names: Sequence[str] | None = None, units: Sequence[RemovableUnit] | None = None,
               sizes: UnitSizes | None = None) -> Cut:
    """Apply a rule by name to a curve with its default parameter unless one is given.

    The unit and target rules need ``names`` (the curve's layer points) and ``units`` (the model's removable
    units); the target rules also the units' ``sizes``.
    """
    check_rule(rule, parameter)
    parameter = DEFAULT_PARAMETERS[rule] if parameter is None else parameter
    if rule == "plateau":
        return plateau_cut(values, parameter)
    if rule == "peak":
        return peak_cut(values)
    if names is None or units is None:
        raise SepgraphError(f"the {rule} rule judges removable units, which analyses of sepgraph's zoo models record "
                            "in manifest.json; an older results folder gets them with 'sepgraph analyze --resume'")
    if rule in TARGET_RULES:
        return target_cut(contributions(values, names, units), names, units, _needed(sizes, rule), rule, parameter)
    return unit_removals(values, names, units, parameter, relative=rule == "delta")


def _needed(sizes: UnitSizes | None, rule: str) -> UnitSizes:
    if sizes is None:
        raise SepgraphError(f"the {rule} rule needs the removable units' sizes, which 'sepgraph prune' reads off a "
                            "zoo model whose analysis recorded its units in manifest.json")
    return sizes


def recommend(rows: Sequence[LayerRow], rule: str = "plateau", parameter: float | dict[str, float] | None = None,
              units: Sequence[RemovableUnit] | None = None, curves: Sequence[str] = PAPER_CURVES,
              scores: dict[str, Sequence[float]] | None = None, sizes: UnitSizes | None = None,
              runs: Sequence[DepthRow] | None = None) -> dict[str, Cut]:
    """Criterion I under the same rule on each of ``curves`` (keys of :data:`CRITERIA`; by default M and the
    mean of Lu et al.'s Q over its batches), from an analysis's rows. ``parameter`` may differ per curve
    (a dict by key). A unit score (kind :data:`SCORE`) takes its values from ``scores`` (one per unit), ``angular``
    (kind :data:`RUN`) its runs from ``runs`` (``depth.csv``); both are cut by the target rules only; ``random``
    has no cut of its own (its cuts match the others')."""
    names = [row.name for row in rows]
    cuts = {}
    for key in check_criteria(curves):
        value = parameter.get(key) if isinstance(parameter, dict) else parameter
        if CRITERIA[key].kind == CURVE:
            cuts[key] = apply_rule(curve_values(rows, key), rule, value, names, units, sizes)
        elif CRITERIA[key].kind == SCORE:
            check_criteria([key], [rule])
            check_rule(rule, value)
            if scores is None or key not in scores or units is None:
                raise SepgraphError(f"criterion {key!r} scores removable units, which 'sepgraph prune' reads off a "
                                    "zoo model whose analysis recorded its units in manifest.json")
            cuts[key] = target_cut(scores[key], names, units, _needed(sizes, rule), rule, value)
        elif CRITERIA[key].kind == RUN:
            check_criteria([key], [rule])
            check_rule(rule, value)
            if runs is None or units is None:
                raise SepgraphError(f"criterion {key!r} needs the analysis's depth measures (depth.csv, SPEC 22), "
                                    "which analyses of zoo models write; add them with 'sepgraph analyze --resume'")
            cuts[key] = run_cut(runs, names, units, _needed(sizes, rule), rule, value)
    return cuts
