from dataclasses import replace

import numpy as np
import pytest

from conftest import layer_row, pruning_row
from sepgraph.reproduction.claims import (
    evaluate_claims,
    findings_markdown,
    rank_correlation,
    sign_changes,
    stage_means,
    total_variation,
)


def test_curve_statistics():
    assert total_variation([0, 1, 2, 3]) == 1.0
    assert total_variation([0, 2, 1, 3]) == pytest.approx((2 + 1 + 2) / 3)
    assert total_variation([5, 5]) == 0.0
    assert sign_changes([0, 1, 2, 3]) == 0 and sign_changes([0, 2, 1, 3, 3, 4]) == 2
    assert rank_correlation([1, 2, 3, 4]) == pytest.approx(1.0)
    assert rank_correlation([4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 1]) == 0.0
    assert stage_means([1, 1, 2, 2, 3, 3]) == (1.0, 2.0, 3.0)


def rows_from(mean_sim, weak, r, m, q):
    return [layer_row(k, f"p{k}", mean_sim=a, share_below_0_1=b, r=c, M=d, lu_q_mean=e)
            for k, (a, b, c, d, e) in enumerate(zip(mean_sim, weak, r, m, q, strict=True))]


def criterion_row(curve: str, rule: str, saved: float, vs_control: float, model: str = "m+remove=x", seed: int = 0):
    return pruning_row(kind="criterion", curve=curve, rule=rule, parameter=0.02, params_saved_pct=saved,
                       accuracy_finetuned=90.0 + vs_control, accuracy_vs_control=vs_control, pruned_model=model,
                       seed=seed)


def controls(*accuracies: float):
    """The control at one seed per accuracy: 89, 90, 91 give s = 1 (SPEC 20)."""
    return [pruning_row(accuracy_finetuned=value, seed=seed) for seed, value in enumerate(accuracies)]


def test_claims_on_a_network_that_behaves_as_the_paper_says():
    rows = rows_from(np.linspace(0.8, 0.05, 9), np.linspace(0, 0.9, 9), np.linspace(0.3, 0.95, 9),
                     np.linspace(0.01, 0.3, 9), [0.1, 0.3, 0.2, 0.4, 0.3, 0.6, 0.5, 0.7, 0.8])
    table = [*controls(89.0, 90.0, 91.0),
             criterion_row("M (ours)", "delta", 40.0, -0.3, "m+remove=a,b"),
             criterion_row("Lu et al.'s Q", "delta", 20.0, 0.1, "m+remove=a"),
             criterion_row("M (ours)", "plateau", 0.0, 0.0, "m"),
             criterion_row("Lu et al.'s Q", "plateau", 0.0, 0.0, "m")]
    claims = evaluate_claims(rows, table)
    assert [c.key for c in claims] == ["a", "b", "c", "d", "e"]
    assert all(c.confirmed for c in claims)
    assert "delta (0.02): M saves 40.00% at -0.30 vs control, Q 20.00% at +0.10" in claims[4].evidence
    assert "plateau (0.02): the same cut" in claims[4].evidence
    assert "equal accuracy = within 2 s, s 1.000 over 3 control seeds (SPEC 20)" in claims[4].evidence


def test_claim_e_is_undecided_until_the_control_has_three_seeds_and_pools_each_rows_seeds():
    rows = rows_from([0.5] * 3, [0.0] * 3, [0.5] * 3, [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    m = [criterion_row("M (ours)", "delta", 40.0, change, "m+remove=a,b", seed) for seed, change in enumerate(
        (-4.0, -1.0, -1.0))]
    q = [criterion_row("Lu et al.'s Q", "delta", 20.0, 0.0, "m+remove=a", seed) for seed in range(3)]
    undecided = evaluate_claims(rows, [*controls(89.0, 91.0), *m[:1], *q[:1]])[4]
    assert undecided.confirmed is None and "the control has 2 seeds: no noise level, so no verdict" in \
        undecided.evidence
    assert "**undecided**" in findings_markdown("m", [undecided])
    # M's seeds average -2.00 against Q's 0.00: exactly 2 s below, still at equal accuracy
    table = [*controls(89.0, 90.0, 91.0), *m, *q]
    assert evaluate_claims(rows, table)[4].confirmed is True
    assert "M saves 40.00% at -2.00 vs control, Q 20.00% at +0.00 (3 and 3 seeds)" in \
        evaluate_claims(rows, table)[4].evidence
    table = [*controls(89.0, 90.0, 91.0), *m[:1], *q]  # M's one seed 4 s below Q
    assert evaluate_claims(rows, table)[4].confirmed is False
    no_control = evaluate_claims(rows, [*m, *q])[4]
    assert no_control.confirmed is None and no_control.evidence == "undecided: the table has no trained control"
    untrained = [*controls(89.0, 90.0, 91.0), replace(m[0], accuracy_finetuned=None), *q[:1]]
    assert "delta (0.02): not fine-tuned" in evaluate_claims(rows, untrained)[4].evidence


def test_more_parameters_saved_at_a_worse_accuracy_does_not_confirm_claim_e():
    rows = rows_from([0.5] * 3, [0.0] * 3, [0.5] * 3, [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    table = [*controls(89.5, 90.0, 90.5),  # s = 0.5: M's -2.00 is 4 s below Q
             criterion_row("M (ours)", "delta", 40.0, -2.0, "m+remove=a,b"),
             criterion_row("Lu et al.'s Q", "delta", 20.0, 0.0, "m+remove=a")]
    assert evaluate_claims(rows, table)[4].confirmed is False
    assert evaluate_claims(rows)[4].confirmed is None
    assert "**not measured**" in findings_markdown("m", evaluate_claims(rows))


def test_claims_that_fail_say_so_with_numbers():
    rows = rows_from([0.7, 0.6, 0.65, 0.5, 0.6, 0.55], [0.0] * 6, [0.3, 0.3, 0.35, 0.3, 0.4, 0.9],
                     [0.02, 0.01, 0.03, 0.02, 0.04, 0.2], [0.1, 0.12, 0.14, 0.16, 0.18, 0.2])
    curves = {"M": np.array([[r.M for r in rows]] * 3), "lu_q": np.array([[r.lu_q_mean for r in rows]] * 3)}
    claims = {c.key: c for c in evaluate_claims(rows, [*controls(89.0, 90.0, 91.0),
                                                       criterion_row("M (ours)", "delta", 0.0, 0.0),
                                                       criterion_row("Lu et al.'s Q", "delta", 10.0, 0.0, "m+r=y")],
                                                 curves)}
    assert not claims["a"].confirmed and "below 0.1 at the last point 0.0%" in claims["a"].evidence
    assert not claims["d"].confirmed and "over 3 vertex samples" in claims["d"].evidence
    assert not claims["e"].confirmed
    text = findings_markdown("model", list(claims.values()), ["a note"])
    assert "**not confirmed**" in text and "- a note" in text and text.startswith("## model")


def test_peer_sentences_compare_each_measure_with_m():
    from sepgraph.reproduction.claims import peer_sentences, spearman

    rising = np.linspace(0, 1, 8)
    rows = [layer_row(k, f"p{k}", M=float(rising[k]), knn_acc=float(0.2 + 0.1 * k), probe_acc=float(0.5 + 0.05 * k),
                      cka_prev=None if k == 0 else float(0.9 - 0.01 * k), cka_last=float(min(1.0, 0.3 + 0.2 * k)))
            for k in range(8)]
    sentences = peer_sentences(rows)
    assert len(sentences) == 4
    assert "k-NN accuracy (SPEC 13) goes from 0.200 at p0 to 0.900 at p7" in sentences[0]
    assert "with M +1.00" in sentences[0] and "still rises at the last point" in sentences[0]
    assert "keeps up to p4 (3 points cut)" in sentences[2]  # CKA with the last point reaches 1 at p4
    assert "consecutive points differ most at p7 (0.830)" in sentences[3]
    assert peer_sentences([layer_row(0, "p0")]) == []
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
