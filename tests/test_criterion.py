import numpy as np
import pytest

from sepgraph import SepgraphError
from sepgraph.criterion import apply_rule, delta_removals, peak_cut, plateau_cut


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


def test_delta_rule_removes_small_rises_of_removable_points():
    curve = [0.1, 0.2, 0.21, 0.4, 0.39, 0.5]
    assert delta_removals(curve).removed == [2, 4]
    assert delta_removals(curve, removable=[False, True, True, True, False, True]).removed == [2]
    assert delta_removals(curve, tau_abs=0.15).removed == [1, 2, 4, 5]


def test_apply_rule_and_errors():
    assert apply_rule([0.1, 0.3, 0.2], "peak").cut_index == 1
    assert apply_rule([0.1, 0.3, 0.2]).rule == "plateau"
    with pytest.raises(SepgraphError, match="unknown rule"):
        apply_rule([0.1], "knee")
    with pytest.raises(SepgraphError, match="NaN"):
        plateau_cut([0.1, np.nan])
    with pytest.raises(SepgraphError, match="at least one"):
        peak_cut([])
    with pytest.raises(SepgraphError, match="removable has 2"):
        delta_removals([0.1, 0.2, 0.3], removable=[True, True])
