"""The paper's pictures for every layer point: similarity histograms, ring graphs, modularity curves.

Each function takes the rows of a results folder (see :func:`sepgraph.results.folder.load_results`)
and returns a ``matplotlib.figure.Figure`` (no pyplot state). Colours keep the red /
non-red distinction in grayscale print: class colours are light, wrong edges dark red.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..pruning.criterion import CRITERIA, TARGET_RULES, Cut, criterion_rank
from ..pruning.table import PruningRow, chosen_cuts, matched_label, rule_label
from ..results.depth_table import DepthRow
from ..results.dynamics_table import MEASURES, DynamicsRow
from ..results.layer_row import LayerRow

WRONG = "#6e0000"
"""Wrong edges: a dark red that prints near-black in grayscale."""

CLASS_BASE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#e377c2", "#8c8c8c", "#bcbd22",
              "#5fa39a", "#e6ab02", "#aec7e8", "#98df8a"]
"""tab10 without its red and brown, then teal, gold and light extras: none reads as the wrong-edge red,
and all print lighter than it."""

OURS, LU = "#c0392b", "#1f4e9c"
"""The paper's Figure 10: our M in red, Lu et al.'s Q in blue (also told apart by line style)."""
CRITERION_COLOURS = dict(zip((criterion.label for criterion in CRITERIA.values()),
                             (OURS, LU, "C2", "C4", "C8", "C5", "C6", "C1", "C9", "0.5"), strict=False))
"""One colour per criterion's label in the pruning figures, M and Q as in the curves."""
MIN_ACCURACY_SPAN = 2.0
"""The least span of a pruning panel's accuracy axis, points: closer values read as close."""
MIN_SAVED_SPAN = 4.0
"""The least span of a pruning panel's parameters-saved axis, points: cuts of one size read as one size."""
LEGEND_PAIR_CHARS = 40
"""The longest legend label (characters, at 7 points) of which two fit side by side under a 5.5-inch panel."""
RULE_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<")
"""The pruning figure's marker shapes, one per rule within a panel, in the order the rules first appear (they
repeat only past ten rules)."""


def class_colours(count: int) -> list[tuple[float, float, float]]:
    """Non-red colours for ``count`` classes, lighter than the wrong-edge red."""
    return [to_rgb(CLASS_BASE[k % len(CLASS_BASE)]) for k in range(count)]


def _grid(count: int, panel: float, extra_height: float = 0.9) -> tuple[Figure, list, int]:
    columns = min(count, 6 if count <= 24 else 8)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(columns * panel, rows * panel + extra_height), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for axis in axes[count:]:
        axis.set_visible(False)
    return figure, axes[:count], columns


def histogram_grid(rows: Sequence[LayerRow], title: str) -> Figure:
    """One panel per layer point: share of all pairs in each similarity bin (SPEC 4), below-zero apart."""
    figure, axes, _ = _grid(len(rows), 2.3)
    bins = len(rows[0].hist)
    pairs = sum(rows[0].hist) + rows[0].below_zero
    shares = np.array([row.hist for row in rows]) / pairs
    negative = np.array([row.below_zero for row in rows]) / pairs
    top = max(shares.max(), negative.max()) * 1.1
    width = 1.0 / bins
    for axis, row, share, below in zip(axes, rows, shares, negative, strict=True):
        axis.bar(np.arange(bins) * width, share, width=width * 0.9, align="edge", color="#4c72b0")
        if below > 0:
            axis.bar(-width, below, width=width * 0.9, align="edge", color="#999999", hatch="///")
            axis.text(-width / 2, below, f"<0\n{below:.0%}", ha="center", va="bottom", fontsize=6)
        axis.axvline(row.mean_sim, color="black", linewidth=0.8, linestyle=":")
        axis.set_xlim(-width * 1.2 if negative.max() > 0 else 0, 1)
        axis.set_ylim(0, top)
        axis.set_title(row.name, fontsize=8)
        axis.tick_params(labelsize=6)
        axis.text(0.98, 0.95, f"<0.1: {row.share_below_0_1:.0%}", transform=axis.transAxes, ha="right",
                  va="top", fontsize=6)
    figure.suptitle(f"{title}\nshare of all {pairs:,} pairs per cosine-similarity bin (dotted: mean)",
                    fontsize=10)
    figure.supxlabel("cosine similarity", fontsize=8)
    figure.supylabel("share of pairs", fontsize=8)
    return figure


def histogram_heatmap(rows: Sequence[LayerRow], title: str) -> Figure:
    """Layers x bins heatmap of the shares of pairs, the mean similarity drawn over it."""
    bins = len(rows[0].hist)
    pairs = sum(rows[0].hist) + rows[0].below_zero
    with_negative = any(row.below_zero for row in rows)
    shares = np.array([([row.below_zero] if with_negative else []) + list(row.hist) for row in rows]) / pairs
    figure = Figure(figsize=(7.5, 1.2 + 0.18 * len(rows)), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(shares, aspect="auto", cmap="viridis", vmin=0, vmax=shares.max(), interpolation="nearest")
    offset = 1 if with_negative else 0
    means = [offset + row.mean_sim * bins - 0.5 for row in rows]
    axis.plot(means, range(len(rows)), color="white", marker="o", markersize=2.5, linewidth=1, label="mean")
    labels = (["<0"] if with_negative else []) + [f"{b / bins:.1f}-{(b + 1) / bins:.1f}" for b in range(bins)]
    axis.set_xticks(range(len(labels)), labels, fontsize=7, rotation=45)
    axis.set_yticks(range(len(rows)), [row.name for row in rows], fontsize=6 if len(rows) > 30 else 8)
    axis.set_xlabel("cosine similarity bin")
    axis.legend(loc="lower right", fontsize=7)
    figure.colorbar(image, ax=axis, label="share of pairs")
    axis.set_title(f"{title}\nsimilarity histograms, layer by layer", fontsize=10)
    return figure


def ring_graphs(
    rows: Sequence[LayerRow],
    load_edges: Callable[[int, str], dict],
    classes: Sequence[str],
    title: str,
    max_edges: int | None = None,
) -> Figure:
    """Per layer point, the subgraph's vertices on a circle grouped by class, correct edges in
    their class's colour, wrong edges dark red on top, opacity by weight (SPEC 5)."""
    figure, axes, _ = _grid(len(rows), 2.8, 1.2)
    colours = np.array(class_colours(len(classes)))
    drawn = None
    for axis, row in zip(axes, rows, strict=True):
        edges = load_edges(row.index, row.name)
        i, j, w, labels = edges["i"], edges["j"], edges["w"], edges["labels"]
        if max_edges is not None:
            i, j, w = i[:max_edges], j[:max_edges], w[:max_edges]
        drawn = len(w)
        xy = ring_positions(labels)
        correct = labels[i] == labels[j]
        strength = (w - w.min()) / (w.max() - w.min()) if w.max() > w.min() else np.ones_like(w)
        density = min(1.0, math.sqrt(8000 / len(w)))  # many overlapping lines: fainter, the same for both kinds
        layers = ((~correct, np.tile(to_rgb(WRONG), (len(w), 1)), density * (0.03 + 0.3 * strength), 0.3),
                  (correct, colours[labels[i]], density * (0.1 + 0.7 * strength), 0.45))
        for mask, base, alpha, width in layers:
            rgba = np.column_stack([base[mask], alpha[mask]])
            segments = np.stack([xy[i[mask]], xy[j[mask]]], axis=1)
            axis.add_collection(LineCollection(segments, colors=rgba, linewidths=width))
        axis.scatter(xy[:, 0] * 1.04, xy[:, 1] * 1.04, s=0.6, c=colours[labels], linewidths=0)
        axis.set_xlim(-1.1, 1.1)
        axis.set_ylim(-1.1, 1.1)
        axis.set_aspect("equal")
        axis.axis("off")
        axis.set_title(f"{row.name}\nM = {row.M:.3f}, wrong edges {1 - row.r:.0%}", fontsize=8)
    handles = [Patch(color=colours[k], label=name) for k, name in enumerate(classes)]
    handles.append(Line2D([], [], color=WRONG, linewidth=2, label="wrong edge"))
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 11), fontsize=8)
    subset = "" if max_edges is None else f"; the strongest {drawn:,} edges drawn per panel"
    figure.suptitle(f"{title}\nimportant subgraphs: vertices grouped by class, correct edges in the class colour, "
                    f"wrong edges dark red (drawn beneath); opacity grows with similarity{subset}", fontsize=10)
    return figure


def ring_positions(labels: np.ndarray) -> np.ndarray:
    """(N, 2) positions on the unit circle: classes contiguous in class order, a small gap between them."""
    order = np.lexsort((np.arange(len(labels)), labels))
    rank = np.empty(len(labels), dtype=np.float64)
    rank[order] = np.arange(len(labels))
    gap = max(len(labels) * 0.01, 1.0)
    slot = rank + gap * labels
    angle = 2 * np.pi * slot / (len(labels) + gap * (labels.max() + 1))
    return np.column_stack([np.cos(angle), np.sin(angle)])


def modularity_curves(rows: Sequence[LayerRow], cuts: dict[str, Cut], title: str) -> Figure:
    """M and Lu et al.'s Q (mean with +-1 sd band) against layer point, their Criterion I cuts marked;
    below, r, AQ and EQ; then the field's measures on the same vertices (k-NN and probe accuracy, CKA with
    the previous and the last point, SPEC 13-15) when the analysis has them; at the bottom, the mean
    similarity and the share of weak pairs."""
    index = np.arange(len(rows))
    names = [row.name for row in rows]
    m = np.array([row.M for row in rows])
    q = np.array([row.lu_q_mean for row in rows])
    q_sd = np.array([row.lu_q_std for row in rows])
    peers = rows[0].knn_acc is not None
    figure = Figure(figsize=(max(8.0, 0.16 * len(rows) + 4), 11.5 if peers else 9), layout="constrained")
    axes = figure.subplots(4 if peers else 3, 1, sharex=True, height_ratios=[3, 2, 2, 1.5] if peers else [3, 2, 1.5])
    top, middle, bottom = axes[0], axes[1], axes[-1]
    top.plot(index, m, color=OURS, marker="o", markersize=3, label="M (ours, SPEC 6)")
    top.set_ylabel("M", color=OURS)
    twin = top.twinx()
    twin.plot(index, q, color=LU, marker="s", markersize=3, linestyle="--", label="Lu et al.'s Q (SPEC 7)")
    twin.fill_between(index, q - q_sd, q + q_sd, color=LU, alpha=0.15, linewidth=0, label="Q ± 1 sd over batches")
    twin.set_ylabel("Lu et al.'s Q", color=LU)
    for height, (key, colour, style) in zip((0.03, 0.1), (("M", OURS, "-"), ("lu_q", LU, "--")), strict=True):
        cut = cuts.get(key)
        label = "M" if key == "M" else "Q"
        if cut is not None and cut.cut_index is None:  # a unit rule: mark the output points of the units it removes
            axis, values = (top, m) if key == "M" else (twin, q)
            axis.plot(cut.removed, values[cut.removed], linestyle="none", marker="x", markersize=8, color=colour,
                      label=f"points of the {len(cut.units)} unit{'s' * (len(cut.units) != 1)} removed by {label}")
            continue
        if cut is None:
            continue
        if cut.removed:
            top.axvline(cut.cut_index + 0.5, color=colour, linestyle=style, linewidth=1.2, alpha=0.8)
            text = f"cut by {label}: keep up to {names[cut.cut_index]} "
        else:
            text = f"{label} still rises at the last point: no cut "
        top.text(cut.cut_index + 0.4, height, text, transform=top.get_xaxis_transform(), color=colour,
                 fontsize=7, ha="right", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    lines = top.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    top.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
    rule = next(iter(cuts.values()), None)
    rule_text = f" (Criterion I, {rule.rule} rule, parameter {rule.parameter})" if rule else ""
    top.set_title(f"{title}\nmodularity curves{rule_text}", fontsize=10)
    for key, style, label in (("r", "-o", "r = share of correct edges"), ("AQ", "-s", "AQ"), ("EQ", "-^", "EQ"),
                              ("newman_q", ":", "Newman Q")):
        middle.plot(index, [getattr(row, key) for row in rows], style, markersize=3, label=label)
    middle.legend(fontsize=8, ncol=4)
    middle.set_ylabel("subgraph terms")
    if peers:
        field = axes[2]
        for key, style, label in (("knn_acc", "-o", "k-NN accuracy (SPEC 13)"),
                                  ("probe_acc", "-s", "linear probe (SPEC 14)"),
                                  ("cka_prev", ":", "CKA with the previous point"),
                                  ("cka_last", "--", "CKA with the last point (SPEC 15)")):
            values = [np.nan if getattr(row, key) is None else getattr(row, key) for row in rows]
            field.plot(index, values, style, markersize=3, label=label)
        field.set_ylim(-0.02, 1.02)
        field.legend(fontsize=8, ncol=2)
        field.set_ylabel("the field's measures\n(same vertices)")
    bottom.plot(index, [row.mean_sim for row in rows], "-o", markersize=3, color="#444444", label="mean similarity")
    bottom.plot(index, [row.share_below_0_1 for row in rows], "--", color="#888888",
                label="share of pairs below 0.1")
    bottom.set_ylim(-0.02, 1.02)
    bottom.legend(fontsize=8, ncol=2)
    bottom.set_xticks(index, names, rotation=90, fontsize=6 if len(rows) > 30 else 8)
    bottom.set_xlabel("layer point")
    for axis in axes:
        axis.grid(alpha=0.3)
    return figure


def dynamics_heatmap(rows: Sequence[DynamicsRow], title: str) -> Figure:
    """One panel per measure of SPEC 17: epochs (rows) x layer points (columns), each panel on its own colour
    scale, so where and when the network learns to separate the classes reads as a picture."""
    epochs = sorted({row.epoch for row in rows})
    names = [row.name for row in sorted({(row.index, row.name): row for row in rows}.values(), key=lambda r: r.index)]
    height = min(14.0, 2.2 + len(MEASURES) * (0.8 + 0.12 * len(epochs)))
    figure = Figure(figsize=(max(8.0, 0.22 * len(names) + 3), height), layout="constrained")
    axes = figure.subplots(len(MEASURES), 1, sharex=True)
    for axis, (key, label) in zip(axes, MEASURES.items(), strict=True):
        grid = np.full((len(epochs), len(names)), np.nan)
        for row in rows:
            grid[epochs.index(row.epoch), row.index] = getattr(row, key)
        image = axis.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
        shown = range(0, len(epochs), max(1, len(epochs) // 12))  # at most about a dozen epoch labels
        axis.set_yticks(list(shown), [str(epochs[k]) for k in shown], fontsize=7)
        axis.set_ylabel("epoch")
        axis.set_title(label, fontsize=9)
        figure.colorbar(image, ax=axis)
    axes[-1].set_xticks(range(len(names)), names, rotation=90, fontsize=6 if len(names) > 30 else 8)
    axes[-1].set_xlabel("layer point")
    figure.suptitle(f"{title}\nduring training (epoch 0: before the first)", fontsize=10)
    return figure


def depth_measures(rows: Sequence[DepthRow], title: str) -> Figure:
    """SPEC 22 as pictures: each unit's block influence (left) and the angular distance of every run of consecutive
    same-shape units by its first unit (rows) and length n (columns), Gromov et al.'s picture (right)."""
    firsts = list(dict.fromkeys(row.units[0] for row in rows))
    longest = max(len(row.units) for row in rows)
    figure = Figure(figsize=(11.0, max(3.5, 0.28 * len(firsts) + 1.8)), layout="constrained")
    influence, runs = figure.subplots(1, 2, width_ratios=(1, 1.4))
    alone = [row for row in rows if len(row.units) == 1]
    influence.barh(range(len(alone)), [row.block_influence for row in alone], color="#4c72b0")
    influence.set_yticks(range(len(alone)), [row.units[0] for row in alone], fontsize=7)
    influence.invert_yaxis()
    influence.set_xlabel("block influence: 1 - mean cos(input, output)")
    influence.set_title("each unit (lowest goes first)", fontsize=9)
    grid = np.full((len(firsts), longest), np.nan)
    for row in rows:
        grid[firsts.index(row.units[0]), len(row.units) - 1] = row.angular_distance
    image = runs.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    runs.set_yticks(range(len(firsts)), firsts, fontsize=7)
    runs.set_xticks(range(longest), [str(n) for n in range(1, longest + 1)], fontsize=7)
    runs.set_xlabel("units in the run, n")
    runs.set_ylabel("first unit of the run")
    runs.set_title("angular distance arccos(cos)/pi of each run (smallest goes)", fontsize=9)
    figure.colorbar(image, ax=runs)
    figure.suptitle(f"{title}\neach sample compared with itself across depth (SPEC 22)", fontsize=10)
    return figure


def cka_heatmap(rows: Sequence[str], columns: Sequence[str], matrix: np.ndarray, title: str,
                row_label: str = "layer point", column_label: str = "layer point") -> Figure:
    """Linear CKA between every pair of points (SPEC 24) as the familiar heatmap: rows from the top, first point
    first; the scale fixed to [0, 1] so two heatmaps read alike."""
    size = 0.12 * max(len(rows), len(columns))
    figure = Figure(figsize=(max(6.0, size + 3.5), max(5.0, size + 2.2)), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    for ticks, names, setter in ((range(len(columns)), columns, axis.set_xticks),
                                 (range(len(rows)), rows, axis.set_yticks)):
        step = max(1, len(names) // 40)  # at most about 40 labels per axis
        setter(list(ticks)[::step], list(names)[::step], fontsize=6 if len(names) > 20 else 8)
    axis.tick_params(axis="x", labelrotation=90)
    axis.set_xlabel(column_label)
    axis.set_ylabel(row_label)
    figure.colorbar(image, ax=axis, label="linear CKA", shrink=0.8)
    axis.set_title(f"{title}\nlinear CKA between layer points on the same vertices (SPEC 24)", fontsize=10)
    return figure


def two_curves(first: Sequence[LayerRow], second: Sequence[LayerRow], names: tuple[str, str], title: str) -> Figure:
    """Two models' M and Lu et al.'s Q on one plot against relative depth (0 the first point, 1 the last), so
    networks of different depths line up (``sepgraph compare``)."""
    figure = Figure(figsize=(8.5, 4.5), layout="constrained")
    axis = figure.subplots()
    twin = axis.twinx()
    for rows, name, marker in ((first, names[0], "o"), (second, names[1], "^")):
        depth = np.linspace(0.0, 1.0, len(rows)) if len(rows) > 1 else np.zeros(1)
        axis.plot(depth, [row.M for row in rows], color=OURS, marker=marker, markersize=3,
                  linestyle="-" if marker == "o" else ":", label=f"M, {name}")
        twin.plot(depth, [row.lu_q_mean for row in rows], color=LU, marker=marker, markersize=3,
                  linestyle="--" if marker == "o" else "-.", label=f"Lu et al.'s Q, {name}")
    axis.set_xlabel("relative depth (layer point / last point)")
    axis.set_ylabel("M", color=OURS)
    twin.set_ylabel("Lu et al.'s Q", color=LU)
    lines = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    figure.legend(lines, [line.get_label() for line in lines], loc="outside lower center", ncol=4, fontsize=8)
    axis.set_title(f"{title}\nmodularity curves of both models on the same data", fontsize=10)
    return figure


def pruning_tradeoff(panels: dict[str, Sequence[PruningRow]], title: str) -> Figure:
    """Accuracy after fine-tuning against parameters saved (SPEC 19-20), one panel per entry: a marker per pruned
    model (the mean of its seeds, bars from the lowest to the highest), named by every criterion that cut it; each
    random cut as a grey cross, with a grey band from the lowest to the highest of those matched to one cut; the
    unpruned control as a line at its mean with a band over its seeds. Where a panel holds cuts by several rules
    (a plateau and a delta cut, two targets), each rule has its own marker shape and the legend keys colour to
    criterion and shape to rule. Rows without a fine-tuned accuracy are left out.

    Args:
        panels: each panel's title and its rows (``pruning.csv``'s, any seeds and targets).
    """
    width, lines = max(7.5, 5.5 * len(panels)), 0
    figure = Figure(figsize=(width, 4.6), layout="constrained")
    for axis, (name, rows) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True):
        trained = [row for row in rows if row.accuracy_finetuned is not None]
        control = [row.accuracy_finetuned for row in trained if row.kind == "control"]
        if control:
            axis.axhline(float(np.mean(control)), color="k", lw=1,
                         label=f"unpruned control ({len(control)} seed{'s' * (len(control) != 1)})")
            axis.axhspan(min(control), max(control), color="k", alpha=0.1, lw=0)
        randoms: dict[tuple[str, str], list[PruningRow]] = {}
        cuts: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
        chosen = chosen_cuts(trained)
        for row in trained:
            if row.kind == "random" and (row.matches, row.pruned_model) in chosen:
                continue  # a random draw of the criterion's own units is its marker, not chance (SPEC 20)
            if row.kind == "random":
                randoms.setdefault((row.matches, rule_label(row)), []).append(row)
            elif row.kind != "control":  # criteria that cut the same model share its marker
                by_curve = cuts.setdefault((row.pruned_model, _figure_rule(row)), {})
                by_curve.setdefault(matched_label(row), {})[row.seed] = row.accuracy_finetuned
        sizes = [row.params_saved_pct for row in trained if row.kind != "control"] or [0.0]
        half = 0.015 * max(max(sizes) - min(sizes), MIN_SAVED_SPAN)  # a band's half width, by the spread of sizes
        for number, group in enumerate(randoms.values()):
            size, values = group[0].params_saved_pct, [row.accuracy_finetuned for row in group]
            axis.fill_between([size - half, size + half], min(values), max(values), color="0.6", alpha=0.45, lw=0)
            axis.plot([size] * len(values), values, "x", color="0.45", markersize=5, zorder=3,
                      label="random cuts of the same size (band: lowest to highest)" if number == 0 else None)
        rules = list(dict.fromkeys(rule for _, rule in cuts))
        shapes = {rule: RULE_MARKERS[number % len(RULE_MARKERS)] for number, rule in enumerate(rules)}
        several = len(rules) > 1  # then the legend keys colour to the criteria and shape to the rules
        keys: dict[str, Patch | Line2D] = {}
        for (model, rule), curves in sorted(cuts.items(), key=lambda item: min(map(_criterion_rank, item[1]))):
            values = list({seed: value for seeds in curves.values() for seed, value in seeds.items()}.values())
            size = next(row.params_saved_pct for row in trained if row.pruned_model == model)
            named = sorted(curves, key=_criterion_rank)  # M first where it is among them: its colour, as alone
            mean, label = float(np.mean(values)), " = ".join(named)
            colour = CRITERION_COLOURS.get(named[0].removesuffix(" at equal units"), "C7")
            axis.errorbar([size], [mean], yerr=[[mean - min(values)], [max(values) - mean]], fmt=shapes[rule],
                          capsize=3, color=colour, zorder=4, label=None if several else label)
            if several:
                keys.setdefault(label, Patch(color=colour, label=label))
        if several:
            keys |= {rule: Line2D([], [], marker=shape, color="0.35", linestyle="none", label=rule)
                     for rule, shape in shapes.items()}
        lines = max(lines, _unique_legend(axis, list(keys.values())))
        _widen(axis.get_ylim, axis.set_ylim, MIN_ACCURACY_SPAN)  # a tenth of a point must not look like a gulf
        _widen(axis.get_xlim, axis.set_xlim, MIN_SAVED_SPAN)  # nor cuts of one size as a spread of sizes
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("parameters saved (%)")
        axis.set_ylabel("accuracy after fine-tuning (%)")
    figure.suptitle(f"{title}\naccuracy against parameters saved, every cut trained alike (SPEC 19-20)", fontsize=9)
    figure.set_size_inches(width, 4.2 + 0.16 * lines)  # room for the legends below the panels
    return figure


def _widen(get: Callable[[], tuple[float, float]], set_: Callable[[float, float], object], span: float) -> None:
    """Widen an axis about its middle to ``span`` where its limits are closer than that."""
    low, high = get()
    if high - low < span:
        middle = (low + high) / 2
        set_(middle - span / 2, middle + span / 2)


def _figure_rule(row: PruningRow) -> str:
    """The rule a marker shape of :func:`pruning_tradeoff` stands for: the row's rule and its parameter; one for
    every equal-units row (each curve has its own tau there, all reaching one count of units); one for the
    reference cuts, which have no rule."""
    if row.kind == "equal-units":
        return f"{row.rule} at equal units"
    if row.rule in TARGET_RULES and row.parameter is not None:
        return f"at least {row.parameter:g}% of the {'parameters' if row.rule == 'target-params' else 'FLOPs'} saved"
    return rule_label(row) or "reference cut"


def _criterion_rank(curve: str) -> int:
    """:func:`~sepgraph.pruning.criterion.criterion_rank` of a marker's curve, ``... at equal units`` or not."""
    return criterion_rank(curve.removesuffix(" at equal units"))


def _unique_legend(axis, extra: Sequence[Patch | Line2D] = ()) -> int:
    """The axis's legend below it with each label once (a criterion cutting at two targets has two markers), then
    the keys in ``extra`` (artists drawn nowhere, named by their labels), if any, in two columns where every label
    is short enough for two to fit under a panel, else one; how many lines it takes."""
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True)) | {key.get_label(): key for key in extra}
    columns = 2 if all(len(label) <= LEGEND_PAIR_CHARS for label in unique) else 1
    if unique:  # below the panel: with ten criteria at two targets no corner of the data is free
        axis.legend(unique.values(), unique.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                    ncol=columns)
    return math.ceil(len(unique) / columns)
