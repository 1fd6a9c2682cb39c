from dataclasses import replace

import numpy as np
import pytest

from conftest import layer_row
from sepgraph import SepgraphError, create_model, layer_points
from sepgraph.models.points import removable_units
from sepgraph.models.protocol import RemovableUnit
from sepgraph.pruning.criterion import (
    apply_rule,
    contributions,
    peak_cut,
    plateau_cut,
    recommend,
    tau_for_count,
    unit_removals,
)
from sepgraph.results.layer_row import LayerRow


def test_rising_curve_keeps_everything():
    cut = plateau_cut([0.1, 0.2, 0.3, 0.4, 0.5])
    assert cut.cut_index == 4 and cut.removed == []
    assert peak_cut([0.1, 0.2, 0.3]).removed == []


def test_plateau_is_cut_at_its_start():
    curve = [0.1, 0.3, 0.6, 0.8, 0.805, 0.81, 0.808]
    # range 0.71, tau 0.02 -> tolerance 0.0142: from 0.8 nothing later rises more than 0.01
    cut = plateau_cut(curve)
    assert (cut.rule, cut.parameter, cut.cut_index, cut.removed) == ("plateau", 0.02, 3, [4, 5, 6])
    assert plateau_cut(curve, tau=0.001).cut_index == 5


def test_decline_is_cut_at_the_maximum():
    curve = [0.2, 0.5, 0.9, 0.7, 0.6]
    assert plateau_cut(curve).cut_index == 2
    assert peak_cut(curve).removed == [3, 4]


def test_noisy_curve_needs_the_later_maximum():
    curve = [0.1, 0.5, 0.45, 0.52, 0.48, 0.9, 0.88]
    assert plateau_cut(curve).cut_index == 5  # the early bumps are not plateaus: 0.9 comes later
    assert plateau_cut(curve, tau=0.5).cut_index == 1  # a loose tau accepts the first shoulder


def chain(count: int) -> tuple[list[str], list[RemovableUnit]]:
    """Points p0..p{count}; unit u{k} runs from p{k-1} to p{k}."""
    names = [f"p{k}" for k in range(count + 1)]
    return names, [RemovableUnit(f"u{k}", f"p{k - 1}", f"p{k}", 10 * k) for k in range(1, count + 1)]


def test_delta_judges_each_unit_by_its_contribution_relative_to_the_range():
    names, units = chain(5)
    curve = [0.1, 0.2, 0.21, 0.4, 0.39, 0.5]  # range 0.4: tau 0.02 -> threshold 0.008
    assert contributions(curve, names, units) == pytest.approx([0.1, 0.01, 0.19, -0.01, 0.11])
    cut = unit_removals(curve, names, units)
    assert (cut.rule, cut.parameter, cut.threshold, cut.units, cut.removed) == ("delta", 0.02, pytest.approx(0.008),
                                                                               ["u4"], [4])
    assert unit_removals(curve, names, units, tau=0.03).units == ["u2", "u4"]  # threshold 0.012
    assert [c.removed for c in cut.contributions] == [False, False, False, True, False]
    absolute = unit_removals(curve, names, units, tau=0.03, relative=False)
    assert (absolute.rule, absolute.threshold, absolute.units) == ("delta-abs", 0.03, ["u2", "u4"])
    # the same curve scaled by 10 loses the same units under delta, not under delta-abs
    scaled = [10 * c for c in curve]
    assert unit_removals(scaled, names, units, tau=0.03).units == ["u2", "u4"]
    assert unit_removals(scaled, names, units, tau=0.03, relative=False).units == ["u4"]


def test_a_unit_without_both_points_is_never_removed():
    names, units = chain(3)
    units.append(RemovableUnit("elsewhere", "p3", "q9", 1))
    units.append(RemovableUnit("first", None, "p0", 1))
    cut = unit_removals([0.5, 0.5, 0.5, 0.5], names, units)  # a flat curve: every judged unit goes
    assert cut.units == ["u1", "u2", "u3"]
    assert [c.value for c in cut.contributions][3:] == [None, None]


def sawtooth_rows(model, convention: str) -> list[LayerRow]:
    """The issue's resnet20 curve: block outputs rise by 0.1 per block, each unit1 sits 0.02 above its block output."""
    rows, level = [], 0.0
    for point in layer_points(model, convention):
        if point.name.endswith("unit1"):
            value = level + 0.1 + 0.02
        else:
            level = level + 0.1 if point.name != "stem" else 0.0
            value = level
        rows.append(layer_row(len(rows), point.name, M=value, lu_q_mean=10 * value))
    return rows


def test_sawtooth_removes_nothing_under_paper_or_blocks_points():
    model = create_model("resnet20")
    for convention in ("paper", "blocks"):
        rows = sawtooth_rows(model, convention)
        units = removable_units(model, convention)
        cuts = recommend(rows, "delta", units=units)
        assert cuts["M"].units == [] and cuts["lu_q"].units == []
        assert all(c.value == pytest.approx(0.1) for c in cuts["M"].contributions)
    # a block that adds nothing goes, whichever convention the curve was measured under
    for convention in ("paper", "blocks"):
        rows = sawtooth_rows(model, convention)
        names = [row.name for row in rows]
        output = names.index("layer2.1.unit2" if convention == "paper" else "layer2.1")
        rows[output:] = [replace(row, M=row.M - 0.1) for row in rows[output:]]
        assert recommend(rows, "delta", units=removable_units(model, convention))["M"].units == ["layer2.1"]


def test_tau_for_count_matches_the_count_or_the_nearest():
    names, units = chain(5)
    curve = [0.0, 0.25, 0.375, 0.875, 1.0, 2.0]  # contributions 0.25, 0.125, 0.5, 0.125, 1.0 (exact in binary)
    for count, expected in ((1, 2), (2, 2), (3, 3), (4, 4), (5, 5)):  # the two 0.125 units tie
        tau = tau_for_count(curve, names, units, count)
        assert len(unit_removals(curve, names, units, tau).units) == expected
    with pytest.raises(SepgraphError, match="count"):
        tau_for_count(curve, names, units, 0)


def test_recommend_takes_a_parameter_per_curve():
    names, units = chain(2)
    rows = [layer_row(k, n, M=m, lu_q_mean=q)
            for k, (n, m, q) in enumerate(zip(names, [0, 0.5, 1], [0, 0.9, 1], strict=True))]
    cuts = recommend(rows, "delta", {"M": 0.6, "lu_q": 0.2}, units)
    assert (cuts["M"].units, cuts["lu_q"].units) == (["u1", "u2"], ["u2"])


def test_apply_rule_and_errors():
    assert apply_rule([0.1, 0.3, 0.2], "peak").cut_index == 1
    assert apply_rule([0.1, 0.3, 0.2]).rule == "plateau"
    with pytest.raises(SepgraphError, match="unknown rule"):
        apply_rule([0.1], "knee")
    with pytest.raises(SepgraphError, match="NaN"):
        plateau_cut([0.1, np.nan])
    with pytest.raises(SepgraphError, match="at least one"):
        peak_cut([])
    with pytest.raises(SepgraphError, match="removable units"):
        apply_rule([0.1, 0.2], "delta")
    with pytest.raises(SepgraphError, match="2 point names"):
        contributions([0.1, 0.2, 0.3], ["a", "b"], [])
