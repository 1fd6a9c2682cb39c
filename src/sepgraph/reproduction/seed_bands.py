"""How much of each modularity curve is the choice of vertices: M and Q over several seeds (FINDINGS.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..report.figures import LU, OURS


def seed_bands(curves: dict[str, np.ndarray], names: Sequence[str], title: str) -> Figure:
    """M and Lu et al.'s Q over several vertex samples: the mean curve and the min-max band of each.

    Args:
        curves: ``{"M": (seeds, points), "lu_q": (seeds, points)}``.
    """
    index = np.arange(len(names))
    figure = Figure(figsize=(max(8.0, 0.16 * len(names) + 4), 4.8), layout="constrained")
    axis = figure.subplots()
    twin = axis.twinx()
    for target, key, colour, style, label in ((axis, "M", OURS, "-o", "M (ours)"),
                                              (twin, "lu_q", LU, "--s", "Lu et al.'s Q")):
        values = np.asarray(curves[key])
        target.plot(index, values.mean(0), style, color=colour, markersize=3,
                    label=f"{label}: mean of {len(values)} vertex samples")
        target.fill_between(index, values.min(0), values.max(0), color=colour, alpha=0.2, linewidth=0,
                            label=f"{label}: min-max over samples")
        target.set_ylabel(label, color=colour)
    lines = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    axis.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
    axis.set_xticks(index, names, rotation=90, fontsize=6 if len(names) > 30 else 8)
    axis.set_title(f"{title}\nhow much of each curve is the choice of vertices", fontsize=10)
    axis.grid(alpha=0.3)
    return figure
