"""SPEC 20's rules on hand-made accuracies: the noise level, equal accuracy and random at their 2 s boundaries, and
claim (e)'s three outcomes. A control of 89, 90, 91 has s = 1 exactly, so every boundary below is exact."""

from dataclasses import replace

import numpy as np
import pytest

from sepgraph.pruning.verdict import (
    BETTER,
    INDISTINGUISHABLE,
    WORSE,
    against_random,
    at_equal_accuracy,
    claim_e,
    noise_level,
    row_verdict,
)

CONTROL = [89.0, 90.0, 91.0]


def test_the_noise_level_is_the_sample_deviation_of_three_or_more_control_seeds():
    assert noise_level([]) is None and noise_level([90.0]) is None and noise_level([89.62, 89.68]) is None
    assert noise_level(CONTROL) == 1.0
    values = [89.62, 89.68, 89.41, 89.9]
    assert noise_level(values) == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert noise_level([90.0, 90.0, 90.0]) == 0.0


def test_equal_accuracy_is_within_two_s_inclusive():
    assert at_equal_accuracy([88.0], CONTROL, 1.0) and at_equal_accuracy([92.0], CONTROL, 1.0)
    assert not at_equal_accuracy([87.75], CONTROL, 1.0) and not at_equal_accuracy([92.25], CONTROL, 1.0)
    assert at_equal_accuracy([87.0, 89.0], CONTROL, 1.0)  # the mean of the seeds, 88
    assert at_equal_accuracy([90.0], CONTROL, 0.0) and not at_equal_accuracy([90.25], CONTROL, 0.0)


def test_random_needs_every_cut_beaten_by_more_than_two_s():
    assert against_random([90.0], [87.75, 80.0], 1.0) == BETTER
    assert against_random([90.0], [88.0, 80.0], 1.0) == INDISTINGUISHABLE  # exactly 2 s is not more
    assert against_random([90.0], [92.25, 95.0], 1.0) == WORSE
    assert against_random([90.0], [92.25, 89.0], 1.0) == INDISTINGUISHABLE
    assert against_random([90.0], [90.0], 0.0) == INDISTINGUISHABLE


def test_a_row_reads_undecided_until_the_control_has_three_seeds():
    assert row_verdict([80.0, 80.1, 80.2], [89.62, 89.68], [70.0]) == "undecided (2 seeds)"
    assert row_verdict([80.0], [90.0], []) == "undecided (1 seed; no noise level)"
    assert row_verdict([80.0], [], []) == "undecided (no control yet)"


def test_a_row_with_fewer_seeds_than_the_control_is_judged_and_says_so():
    assert row_verdict([88.0], CONTROL, []) == "equal accuracy with the control; 1 seed"
    assert row_verdict([85.0, 85.0, 85.0], CONTROL, [80.0, 82.5]) == "below the control; better than random"
    assert row_verdict([95.0], CONTROL, [94.0]) == "above the control; indistinguishable from random; 1 seed"


def test_claim_e_holds_only_at_equal_accuracy_better_than_random_and_above_every_other_criterion():
    verdict, why = claim_e([89.5, 89.5, 89.5], CONTROL, [85.0, 87.0], {"Lu et al.'s Q": [87.0]})
    assert verdict is True and why == "M 89.50, control 90.00, s 1.000"
    verdict, why = claim_e([89.5], CONTROL, [85.0], {"Lu et al.'s Q": [87.5]})  # Q within 2 s of M
    assert verdict is None and "not above Lu et al.'s Q by 2 s" in why
    verdict, why = claim_e([86.0], CONTROL, [80.0], {"Lu et al.'s Q": [80.0]})  # below the control by 4 s
    assert verdict is None and "not at equal accuracy" in why
    verdict, why = claim_e([89.5], CONTROL, [], {"Lu et al.'s Q": [80.0]})
    assert verdict is None and "no random cut yet" in why


def test_another_criterion_exactly_two_s_above_m_neither_fails_nor_lets_the_claim_hold():
    verdict, why = claim_e([89.0], CONTROL, [80.0], {"Lu et al.'s Q": [91.0]})
    assert verdict is None and "not above Lu et al.'s Q by 2 s" in why


def test_claim_e_fails_when_another_criterion_or_chance_is_above_m_by_more_than_two_s():
    verdict, why = claim_e([80.0], CONTROL, [70.0], {"Lu et al.'s Q": [82.25], "k-NN accuracy": [81.0]})
    assert verdict is False and why == "Lu et al.'s Q above M by more than 2 s (s 1.000)"
    verdict, why = claim_e([80.0], CONTROL, [82.5, 83.0], {})
    assert verdict is False and why == "M worse than random (s 1.000)"


def test_claim_e_without_a_noise_level_or_rows_decides_nothing():
    assert claim_e([], CONTROL, [], {}) == (None, "not measured yet")
    verdict, why = claim_e([79.66, 80.12, 79.72], [89.62, 89.68], [81.04], {"Q": [50.0]})
    assert verdict is None and why == "undecided (2 seeds): M 79.83 (3 seeds), control 89.65"


def test_the_pruning_table_gives_each_cut_its_verdict_against_the_control_and_the_other_random_cuts():
    from conftest import pruning_row
    from sepgraph.pruning.table import pruning_markdown, verdicts

    target = dict(rule="target-params", parameter=30.0)
    rows = [pruning_row(accuracy_finetuned=value, seed=seed) for seed, value in enumerate(CONTROL)]
    rows += [pruning_row(kind="criterion", curve="M (ours)", pruned_model="m+a", accuracy_finetuned=value, seed=seed,
                         **target) for seed, value in enumerate((86.0, 87.0, 88.0))]
    rows += [pruning_row(kind="random", curve="random (size-matched)", pruned_model=f"m+{name}", matches="M (ours)",
                         accuracy_finetuned=value, **target) for name, value in (("a", 87.0), ("b", 84.0), ("c", 84.5))]
    lines = pruning_markdown(rows).splitlines()
    assert lines[0].split(" | ")[5] == "verdict (SPEC 20)"
    assert lines[2].split(" | ")[5] == "-"  # the control
    assert lines[3].split(" | ")[5] == "below the control; better than random"  # its own cut (87.0) not counted
    assert lines[4].split(" | ")[5] == "-"  # the random cuts' line
    assert lines[4].startswith("| random (2 cuts matching M (ours); its own cut, drawn too, left out) |")
    assert "/ 84.25 [84.00, 84.50] |" in lines[4]  # the mean of the other cuts alone
    assert pruning_markdown(rows[:2] + rows[3:4]).splitlines()[3].split(" | ")[5] == "undecided (2 seeds)"
    assert verdicts(rows) == ["-"] * 3 + ["below the control; better than random"] * 3 + ["-"] * 3  # one per row
    assert verdicts(rows[3:4]) == ["undecided (no control yet)"]
    second = replace(rows[-1], seed=1, accuracy_finetuned=85.2)  # cut c at a second seed: by its mean, 84.85
    assert verdicts([*rows, second])[3] == "below the control; better than random"
    same = pruning_row(kind="criterion", curve="CKA to the last point", pruned_model="m+a", accuracy_finetuned=87.5,
                       **target)  # M's cut, no draws of its own: M's draws are its chance
    assert verdicts([*rows, same])[-1] == "below the control; better than random; 1 seed"
    other_rule = [replace(row, parameter=50.0) for row in rows[6:]]  # M's draws at another target: not this cut's
    assert verdicts([*rows[:6], *other_rule, same])[-1] == "below the control; 1 seed"
