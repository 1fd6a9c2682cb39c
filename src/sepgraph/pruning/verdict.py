"""SPEC 20: the verdict on a pruning comparison, from final-epoch accuracies on the report half, by rules fixed
before the numbers: the noise level s, equal accuracy, better than random, and claim (e) at equal size.

Every function takes accuracies in percent, one value per seed (or per random cut); the seeds of one row are
pooled by their mean."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

SEEDS_FOR_NOISE = 3
"""Control seeds needed for a noise level: with fewer, no verdict reads anything but undecided."""
BETTER, WORSE, INDISTINGUISHABLE = "better than random", "worse than random", "indistinguishable from random"


def noise_level(control: Sequence[float]) -> float | None:
    """s: the sample standard deviation of the control's seeds; None with fewer than :data:`SEEDS_FOR_NOISE`."""
    return statistics.stdev(control) if len(control) >= SEEDS_FOR_NOISE else None


def at_equal_accuracy(values: Sequence[float], reference: Sequence[float], noise: float) -> bool:
    """Whether the means of two rows' seeds are within 2 s of each other."""
    return abs(statistics.mean(values) - statistics.mean(reference)) <= 2 * noise


def against_random(values: Sequence[float], randoms: Sequence[float], noise: float) -> str:
    """Better (worse) than random when the row's mean is above (below) every matched random cut by more than 2 s;
    otherwise indistinguishable. ``randoms``: one accuracy per random cut, at least one."""
    mean = statistics.mean(values)
    if all(mean > value + 2 * noise for value in randoms):
        return BETTER
    if all(mean < value - 2 * noise for value in randoms):
        return WORSE
    return INDISTINGUISHABLE


def undecided(control_seeds: int) -> str:
    """SPEC 20's words for every verdict while the control has fewer than :data:`SEEDS_FOR_NOISE` seeds."""
    return ("undecided (no control yet)" if control_seeds == 0 else "undecided (1 seed; no noise level)"
            if control_seeds == 1 else f"undecided ({control_seeds} seeds)")


def row_verdict(values: Sequence[float], control: Sequence[float], randoms: Sequence[float]) -> str:
    """A criterion's row in words: against the control, then against its matched random cuts (if any; a random
    cut that is the criterion's own cut is the caller's to leave out); the row's seed count when it has fewer
    than the control; :func:`undecided` while s is not measured."""
    noise = noise_level(control)
    if noise is None:
        return undecided(len(control))
    seeds = f"{len(values)} seed{'s' * (len(values) != 1)}"
    mean, reference = statistics.mean(values), statistics.mean(control)
    words = ["equal accuracy with the control" if at_equal_accuracy(values, control, noise) else
             "below the control" if mean < reference else "above the control"]
    if randoms:
        words.append(against_random(values, randoms, noise))
    if len(values) < len(control):
        words.append(seeds)
    return "; ".join(words)


def claim_e(m: Sequence[float], control: Sequence[float], randoms: Sequence[float],
            others: Mapping[str, Sequence[float]]) -> tuple[bool | None, str]:
    """Claim (e) at one size: holds (True) when M is at equal accuracy with the control, better than random and
    above every other criterion by more than 2 s; fails (False) when another criterion is above M by more than
    2 s or M is worse than random; otherwise undecided (None). Returns the verdict and the reason in words.

    At one size means at one target (SPEC 19): every criterion's cut at that target, each reporting the size it
    reached. A criterion whose cut is M's own model is M's row, not another: the caller leaves it out of
    ``others``, as it leaves M's own cut out of ``randoms``.

    Args:
        m: M's accuracies, one per seed; control: the unpruned control's; randoms: the random cuts matched to M;
        others: every other criterion's accuracies at the same target, by label; Q's among them.
    """
    if not m or not control:
        return None, "not measured yet"
    noise = noise_level(control)
    mean, reference = statistics.mean(m), statistics.mean(control)
    if noise is None:
        return None, (f"{undecided(len(control))}: M {mean:.2f} ({len(m)} seed{'s' * (len(m) != 1)}), control "
                      f"{reference:.2f}")
    above = [name for name, values in others.items() if statistics.mean(values) > mean + 2 * noise]
    versus = against_random(m, randoms, noise) if randoms else "no random cut yet"
    if above or versus == WORSE:
        return False, (f"{', '.join(above)} above M by more than 2 s (s {noise:.3f})" if above else
                       f"M worse than random (s {noise:.3f})")
    equal = at_equal_accuracy(m, control, noise)
    below = [name for name, values in others.items() if not mean > statistics.mean(values) + 2 * noise]
    if equal and versus == BETTER and not below:
        return True, f"M {mean:.2f}, control {reference:.2f}, s {noise:.3f}"
    return None, (f"M {mean:.2f} {'at' if equal else 'not at'} equal accuracy with the control {reference:.2f}, "
                  f"{versus}, " + (f"not above {', '.join(below)} by 2 s" if below else "above every other "
                                   "criterion by 2 s") + f" (s {noise:.3f})")
