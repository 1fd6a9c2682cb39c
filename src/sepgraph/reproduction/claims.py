"""Which of the paper's claims hold on a model: measured from results folders (FINDINGS.md).

Claims (the paper's sections 1, 4.1-4.4):
(a) similarity mass moves toward 0 layer by layer, and more than 85% of edges end up weak (< 0.1);
(b) wrong edges of the important subgraph thin out with depth;
(c) M rises through initial, development and mature stages;
(d) M is smoother than Lu et al.'s Q;
(e) the cut found with M saves more parameters than the cut found with Q (same rule), at equal
    fine-tuning budget and equal accuracy against the unpruned control (``sepgraph prune``'s table), judged
    by SPEC 20's rules (:mod:`sepgraph.pruning.verdict`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..pruning.criterion import plateau_cut
from ..pruning.table import PruningRow, curve_pairs, seed_accuracies
from ..pruning.verdict import noise_level
from ..results.layer_row import LayerRow


@dataclass(frozen=True)
class Claim:
    """One claim, whether the measurement confirms it (None: undecided, or not measured when ``measured`` is
    False), and the numbers behind the verdict."""

    key: str
    text: str
    confirmed: bool | None
    evidence: str
    measured: bool = True


def total_variation(curve: Sequence[float]) -> float:
    """Sum of |c_{k+1} - c_k| of the curve rescaled to [0, 1]; a monotone curve scores 1."""
    values = np.asarray(curve, dtype=np.float64)
    spread = values.max() - values.min()
    return float(np.abs(np.diff(values)).sum() / spread) if spread > 0 else 0.0


def sign_changes(curve: Sequence[float]) -> int:
    """How often the curve turns from rising to falling or back."""
    steps = np.sign(np.diff(np.asarray(curve, dtype=np.float64)))
    steps = steps[steps != 0]
    return int((steps[1:] != steps[:-1]).sum())


def rank_correlation(values: Sequence[float]) -> float:
    """Spearman correlation of a curve with its layer index (ties get their mean rank)."""
    ranks = _ranks(values)
    if ranks.std() == 0:
        return 0.0
    return float(np.corrcoef(np.arange(len(ranks), dtype=np.float64), ranks)[0, 1])


def stage_means(curve: Sequence[float]) -> tuple[float, float, float]:
    """Means of the first, middle and last third of the curve."""
    thirds = np.array_split(np.asarray(curve, dtype=np.float64), 3)
    return tuple(float(part.mean()) for part in thirds)


def evaluate_claims(rows: Sequence[LayerRow], pruning: Sequence[PruningRow] | None = None,
                    seed_curves: dict[str, np.ndarray] | None = None) -> list[Claim]:
    """The five claims on one model's layer rows (an analysis's rows).

    Args:
        rows: an analysis's rows, in point order.
        pruning: the rows of ``sepgraph prune``'s table (pruning.csv's columns, numbers as numbers) for
            claim (e); without it (e) is reported as not measured.
        seed_curves: optional (seeds, points) arrays of M and Q from analyses with other vertex
            samples, for the smoothness comparison's spread.
    """
    mean_sim = [r.mean_sim for r in rows]
    weak = [r.share_below_0_1 for r in rows]
    wrong = [r.wrong_edge_share for r in rows]
    m = [r.M for r in rows]
    q = [r.lu_q_mean for r in rows]
    claims = []
    trend = rank_correlation(mean_sim)
    claims.append(Claim(
        "a", "the similarity histogram moves toward 0 layer by layer, and more than 85% of edges end up weak",
        trend < -0.5 and weak[-1] > 0.85,
        f"rank correlation of mean similarity with depth {trend:+.2f}; mean similarity {mean_sim[0]:.3f} at the "
        f"first point, {mean_sim[-1]:.3f} at the last; share of pairs below 0.1 at the last point {weak[-1]:.1%} "
        f"(largest at any point {max(weak):.1%})"))
    trend = rank_correlation(wrong)
    claims.append(Claim(
        "b", "wrong edges thin out with depth", trend < -0.5 and wrong[-1] < wrong[0],
        f"wrong edges {wrong[0]:.1%} at the first point, {wrong[-1]:.1%} at the last, fewest {min(wrong):.1%}; "
        f"rank correlation with depth {trend:+.2f}"))
    first, middle, last = stage_means(m)
    claims.append(Claim(
        "c", "M rises through initial, development and mature stages", first < middle < last,
        f"mean M over the first, middle and last third of the points: {first:.4f}, {middle:.4f}, {last:.4f}; "
        f"rank correlation with depth {rank_correlation(m):+.2f}"))
    tv_m, tv_q = total_variation(m), total_variation(q)
    spread = ""
    if seed_curves:
        tvs = {k: [total_variation(c) for c in v] for k, v in seed_curves.items()}
        spread = (f"; over {len(tvs['M'])} vertex samples M's total variation ranges "
                  f"{min(tvs['M']):.2f}-{max(tvs['M']):.2f}, Q's {min(tvs['lu_q']):.2f}-{max(tvs['lu_q']):.2f}")
    claims.append(Claim(
        "d", "M is smoother than Lu et al.'s Q", tv_m < tv_q,
        f"total variation of the curve rescaled to [0, 1] (1 = monotone): M {tv_m:.2f}, Q {tv_q:.2f}; "
        f"turns (sign changes of the steps): M {sign_changes(m)}, Q {sign_changes(q)}{spread}"))
    claims.append(_pruning_claim(pruning))
    return claims


def _pruning_claim(table: Sequence[PruningRow] | None) -> Claim:
    """Claim (e), per rule (SPEC 20): M's cut saves more parameters than Q's at equal accuracy with it or above
    (the means of their seeds within 2 s or M's higher, s the control's noise level); confirmed when that holds
    under every rule where the cuts differ; undecided (None) while the control has fewer than 3 seeds."""
    text = ("the cut found with M saves more parameters than the cut found with Q, at equal fine-tuning budget and "
            "equal accuracy against the unpruned control")
    if not table:
        return Claim("e", text, None, "not measured here: needs `sepgraph prune`'s table (examples/table1.py)",
                     measured=False)
    first = next((row for row in table if row.kind == "control"), None)
    control = seed_accuracies(table, first) if first else []
    if not control:
        return Claim("e", text, None, "undecided: the table has no trained control")
    noise = noise_level(control)
    verdicts, evidence = [], []
    for name, m, q in curve_pairs([row for row in table if row.kind == "criterion"]):  # per rule, as before
        if m.pruned_model == q.pruned_model:
            evidence.append(f"{name}: the same cut ({m.params_saved_pct:.2f}% saved)")
            continue
        m_seeds, q_seeds = seed_accuracies(table, m), seed_accuracies(table, q)
        if not m_seeds or not q_seeds:
            evidence.append(f"{name}: not fine-tuned")
            continue
        m_mean, q_mean = statistics.mean(m_seeds), statistics.mean(q_seeds)
        if noise is not None:
            verdicts.append(m.params_saved_pct > q.params_saved_pct and m_mean >= q_mean - 2 * noise)
        evidence.append(f"{name}: M saves {m.params_saved_pct:.2f}% at {m_mean - statistics.mean(control):+.2f} vs "
                        f"control, Q {q.params_saved_pct:.2f}% at {q_mean - statistics.mean(control):+.2f}"
                        + ("" if len(m_seeds) == len(q_seeds) == 1 else
                           f" ({len(m_seeds)} and {len(q_seeds)} seeds)"))
    epochs = table[0].finetune_epochs
    evidence.append(f"every row fine-tuned {epochs} epochs; " + (
        f"equal accuracy = within 2 s, s {noise:.3f} over {len(control)} control seeds (SPEC 20)" if noise is not None
        else f"the control has {len(control)} seed{'s' * (len(control) != 1)}: no noise level, so no verdict "
             "(SPEC 20)"))
    confirmed = None if noise is None or not verdicts else all(verdicts)
    return Claim("e", text, confirmed, "; ".join(evidence))


def findings_markdown(title: str, claims: list[Claim], notes: Sequence[str] = ()) -> str:
    """A FINDINGS.md section: one line per claim with its verdict and the numbers."""
    lines = [f"## {title}", "", "| claim | verdict | measured |", "|---|---|---|"]
    for claim in claims:
        verdict = ({True: "confirmed", False: "not confirmed", None: "undecided"}[claim.confirmed] if claim.measured
                   else "not measured")
        lines.append(f"| ({claim.key}) {claim.text} | **{verdict}** | {claim.evidence} |")
    lines += [""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def peer_sentences(rows: Sequence[LayerRow]) -> list[str]:
    """One sentence per measure of SPEC 13-15 on how its curve compares with M's; empty when the analysis
    predates them. Correlations are Spearman's, over the layer points."""
    if rows[0].knn_acc is None or len(rows) < 2:
        return []
    m = [r.M for r in rows]

    def reading(values: list[float]) -> str:
        cut = plateau_cut(values).cut_index
        gone = len(rows) - 1 - cut
        return (f"keeps up to {rows[cut].name} ({gone} point{'s' if gone > 1 else ''} cut)" if gone
                else "still rises at the last point")

    sentences = []
    for key, label in (("knn_acc", "k-NN accuracy (SPEC 13)"), ("probe_acc", "Linear-probe accuracy (SPEC 14)"),
                       ("cka_last", "CKA with the last point (SPEC 15)")):
        values = [getattr(r, key) for r in rows]
        sentences.append(
            f"{label} goes from {values[0]:.3f} at {rows[0].name} to {values[-1]:.3f} at {rows[-1].name}; rank "
            f"correlation with depth {rank_correlation(values):+.2f}, with M {spearman(values, m):+.2f}; total "
            f"variation {total_variation(values):.2f} (M {total_variation(m):.2f}); under plateau (tau 0.02) it "
            f"{reading(values)}, M {reading(m)}.")
    previous = [(r.cka_prev, r.name) for r in rows[1:]]
    lowest = sorted(previous)[:3]
    sentences.append(
        f"CKA with the previous point (SPEC 15) ranges {min(previous)[0]:.3f}-{max(previous)[0]:.3f} (median "
        f"{float(np.median([v for v, _ in previous])):.3f}); consecutive points differ most at "
        + ", ".join(f"{name} ({value:.3f})" for value, name in lowest) + ".")
    return sentences


def spearman(first: Sequence[float], second: Sequence[float]) -> float:
    """Spearman rank correlation of two curves (ties get their mean rank); 0 when either is constant."""
    a, b = _ranks(first), _ranks(second)
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0


def _ranks(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    for value in np.unique(values):
        same = values == value
        ranks[same] = ranks[same].mean()
    return ranks
