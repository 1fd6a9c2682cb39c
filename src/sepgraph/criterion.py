"""Criterion I: where a modularity curve says layers can go (SPEC 8).

Pure functions over a curve c_1..c_K (one value per layer point); each returns a
:class:`Cut` that records the rule, its parameter and the points to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .errors import SepgraphError

RULES = ("plateau", "peak", "delta")
DEFAULT_PARAMETERS = {"plateau": 0.02, "peak": None, "delta": 0.03}


@dataclass(frozen=True)
class Cut:
    """Points to remove from a curve's layer points (0-based positions).

    Attributes:
        rule: ``plateau``, ``peak`` or ``delta``.
        parameter: tau (relative, plateau) or tau_abs (delta); None for peak.
        cut_index: for truncation rules, the last kept point; None for ``delta``.
        removed: positions removed, ascending.
    """

    rule: str
    parameter: float | None
    cut_index: int | None
    removed: list[int]

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


def delta_removals(values: Sequence[float], removable: Sequence[bool] | None = None, tau_abs: float = 0.03) -> Cut:
    """Lu et al.'s block rule: remove each removable point whose rise over the previous point is <= tau_abs.

    Args:
        values: the curve.
        removable: (K,) which points may be removed (default: all but the first).
        tau_abs: the absolute rise below which a point is redundant.
    """
    curve = _curve(values)
    mask = np.ones(len(curve), dtype=bool) if removable is None else np.asarray(removable, dtype=bool)
    if mask.shape != curve.shape:
        raise SepgraphError(f"removable has {mask.size} entries but the curve has {curve.size}")
    rise = np.diff(curve)
    removed = [int(k) for k in np.flatnonzero(mask[1:] & (rise <= tau_abs)) + 1]
    return Cut("delta", tau_abs, None, removed)


def apply_rule(values: Sequence[float], rule: str = "plateau", parameter: float | None = None,
               removable: Sequence[bool] | None = None) -> Cut:
    """Apply a rule by name with its default parameter unless one is given."""
    if rule not in RULES:
        raise SepgraphError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    parameter = DEFAULT_PARAMETERS[rule] if parameter is None else parameter
    if rule == "plateau":
        return plateau_cut(values, parameter)
    if rule == "peak":
        return peak_cut(values)
    return delta_removals(values, removable, parameter)


def recommend(rows: Sequence[dict], rule: str = "plateau", parameter: float | None = None,
              removable: Sequence[bool] | None = None) -> dict[str, Cut]:
    """Criterion I under the same rule on M (key ``"M"``) and on Lu et al.'s Q (key ``"lu_q"``),
    from per-layer rows with layers.csv's columns."""
    return {"M": apply_rule([row["M"] for row in rows], rule, parameter, removable),
            "lu_q": apply_rule([row["lu_q_mean"] for row in rows], rule, parameter, removable)}
