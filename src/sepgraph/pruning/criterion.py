"""Criterion I: where a modularity curve says layers can go (SPEC 8).

Pure functions over a curve c_1..c_K (one value per layer point); each returns a
:class:`Cut` that records the rule, its parameter and what to remove. The truncation rules
(``plateau``, ``peak``) read the curve alone; the unit rules (``delta``, ``delta-abs``) judge
each removable unit by its contribution, curve(output point) - curve(input point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import SepgraphError
from ..models.protocol import RemovableUnit
from ..results.layer_row import LayerRow

RULES = ("plateau", "peak", "delta", "delta-abs")
DEFAULT_PARAMETERS = {"plateau": 0.02, "peak": None, "delta": 0.02, "delta-abs": 0.03}


@dataclass(frozen=True)
class Curve:
    """A per-layer curve Criterion I can cut by (SPEC 16): the :class:`LayerRow` attribute holding its values and
    how tables name it."""

    attribute: str
    label: str


CURVES = {
    "M": Curve("M", "M (ours)"), "lu_q": Curve("lu_q_mean", "Lu et al.'s Q"),
    "knn_acc": Curve("knn_acc", "k-NN accuracy"), "probe_acc": Curve("probe_acc", "linear probe"),
    "cka_last": Curve("cka_last", "CKA to the last point"),
}
"""The one registry of the curves (SPEC 8, 16), by the key ``--curves`` names them with."""

PAPER_CURVES = ("M", "lu_q")
"""The paper's comparison: its M against Lu et al.'s Q; the default of ``--curves``."""


def check_curves(curves: Sequence[str]) -> tuple[str, ...]:
    """Known, distinct curve keys, in the order given."""
    unknown = [curve for curve in curves if curve not in CURVES]
    if unknown or not curves or len(set(curves)) < len(curves):
        raise SepgraphError(f"curves {','.join(curves)!r}: name each of {', '.join(CURVES)} at most once "
                            f"(unknown: {', '.join(unknown) or 'none'})", arguments=("curves",))
    return tuple(curves)


def curve_values(rows: Sequence[LayerRow], key: str) -> list[float]:
    """One curve (a key of :data:`CURVES`) over an analysis's rows, in point order."""
    values = [getattr(row, CURVES[key].attribute) for row in rows]
    if any(value is None for value in values):
        raise SepgraphError(f"the analysis has no {CURVES[key].attribute} values (it was written before SPEC 13-15); "
                            "rerun 'sepgraph analyze' with --overwrite to measure them")
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
        threshold: unit rules: the contribution at or below which a unit goes, in the curve's own units.
        contributions: unit rules: every removable unit's contribution and verdict.
    """

    rule: str
    parameter: float | None
    cut_index: int | None
    removed: list[int]
    units: list[str] = field(default_factory=list)
    threshold: float | None = None
    contributions: list[Contribution] = field(default_factory=list)

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
    position = {name: k for k, name in enumerate(names)}
    removed = {k for u, gone in zip(units, verdicts, strict=True) if gone
               for k in range(position[u.input_point] + 1, position[u.output_point] + 1)}
    return Cut("delta" if relative else "delta-abs", tau, None, sorted(removed),
               [u.name for u, gone in zip(units, verdicts, strict=True) if gone], threshold,
               [Contribution(u.name, u.input_point, u.output_point, rise, gone)
                for u, rise, gone in zip(units, rises, verdicts, strict=True)])


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
    """A known rule with a finite, non-negative parameter (None: the rule's default)."""
    if rule not in RULES:
        raise SepgraphError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if parameter is not None and not 0 <= parameter < np.inf:
        raise SepgraphError(f"the {rule} rule's tau must be a finite number of 0 or more, got {parameter}",
                            arguments=("tau",))


def apply_rule(values: Sequence[float], rule: str = "plateau", parameter: float | None = None,
               names: Sequence[str] | None = None, units: Sequence[RemovableUnit] | None = None) -> Cut:
    """Apply a rule by name with its default parameter unless one is given.

    The unit rules need ``names`` (the curve's layer points) and ``units`` (the model's removable units).
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
    return unit_removals(values, names, units, parameter, relative=rule == "delta")


def recommend(rows: Sequence[LayerRow], rule: str = "plateau", parameter: float | dict[str, float] | None = None,
              units: Sequence[RemovableUnit] | None = None, curves: Sequence[str] = PAPER_CURVES) -> dict[str, Cut]:
    """Criterion I under the same rule on each of ``curves`` (keys of :data:`CURVES`; by default M and the
    mean of Lu et al.'s Q over its batches), from an analysis's rows. ``parameter`` may differ per curve
    (a dict by key)."""
    names = [row.name for row in rows]
    return {key: apply_rule(curve_values(rows, key), rule,
                            parameter.get(key) if isinstance(parameter, dict) else parameter, names, units)
            for key in check_curves(curves)}
