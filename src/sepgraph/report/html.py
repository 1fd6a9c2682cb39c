"""Figures and ``report.html`` of a results folder, re-rendered without recomputing anything."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .._version import __version__
from ..analysis.compare import FOLDERS
from ..errors import SepgraphError
from ..files import atomic_text, atomic_write, file_sha256
from ..pruning.criterion import Cut, check_rule, recommend
from ..pruning.table import (
    PruningRow,
    change_label,
    chosen_cuts,
    load_orders,
    load_pruning,
    percent,
    rule_label,
    seed_groups,
    verdicts,
)
from ..results.cka_table import CKA_FILE, load_cka_matrix
from ..results.depth_table import DepthRow, load_depth
from ..results.dynamics_table import load_dynamics
from ..results.folder import edges_path, load_results
from ..results.layer_row import LayerRow
from ..results.manifest import Manifest
from .figures import (
    cka_heatmap,
    depth_measures,
    dynamics_heatmap,
    histogram_grid,
    histogram_heatmap,
    modularity_curves,
    pruning_tradeoff,
    ring_graphs,
    two_curves,
)

log = logging.getLogger(__name__)

FORMATS = ("png", "pdf", "svg")


@dataclass(frozen=True)
class ReportSettings:
    """How figures are drawn and which Criterion I rule the report shows (SPEC 8); checked at construction.

    Attributes:
        file_format: figure files, one of :data:`FORMATS` (the report embeds PNG whatever this is).
        dpi: figure resolution.
        ring_edges: draw only the strongest K edges per ring panel (None: all).
        rule, parameter: the rule and its tau (None: the rule's default).
    """

    file_format: str = "png"
    dpi: int = 150
    ring_edges: int | None = None
    rule: str = "plateau"
    parameter: float | None = None

    def __post_init__(self) -> None:
        if self.file_format not in FORMATS:
            raise SepgraphError(f"unknown figure format {self.file_format!r}; choose one of {', '.join(FORMATS)}",
                                arguments=("file_format",))
        if self.dpi < 1:
            raise SepgraphError(f"dpi must be at least 1, got {self.dpi}", arguments=("dpi",))
        if self.ring_edges is not None and self.ring_edges < 1:
            raise SepgraphError(f"ring_edges must be at least 1, got {self.ring_edges}", arguments=("ring_edges",))
        check_rule(self.rule, self.parameter)


def render_report(path: str | Path, settings: ReportSettings | None = None) -> Path:
    """Write ``figures/*``, ``recommendation.json`` and ``report.html`` for a complete results folder.

    Returns:
        the path of report.html.
    """
    settings = settings or ReportSettings()
    file_format, dpi, ring_edges = settings.file_format, settings.dpi, settings.ring_edges
    rule, parameter = settings.rule, settings.parameter
    path = Path(path)
    manifest, rows = load_results(path)
    title = manifest.title
    cuts = recommend(rows, rule, parameter, manifest.removable_units)

    def load_edges(index: int, name: str) -> dict:
        with np.load(edges_path(path, index, name)) as archive:
            return {key: archive[key] for key in archive.files}

    figures = {
        "modularity": ("Modularity curves", lambda: modularity_curves(rows, cuts, title)),
        "histograms": ("Similarity histograms", lambda: histogram_grid(rows, title)),
        "histogram_heatmap": ("Similarity histograms as a heatmap", lambda: histogram_heatmap(rows, title)),
        "rings": ("Ring dynamic graphs", lambda: ring_graphs(rows, load_edges, manifest.classes, title,
                                                            ring_edges)),
    }
    matrix = load_cka_matrix(path)
    if matrix is not None:
        figures["cka"] = ("Linear CKA between every pair of layer points on the vertices (SPEC 24; its diagonals "
                          "next to the main one are cka_prev, its last column cka_last)",
                          lambda: cka_heatmap(*matrix, title))
    depth = load_depth(path)
    if depth:
        figures["depth"] = ("Block influence and angular distance: each sample against itself across depth (SPEC 22)",
                            lambda: depth_measures(depth, title))
    dynamics = dynamics_of(manifest)
    if dynamics is not None:
        figures["dynamics"] = ("During training: M, Lu et al.'s Q and k-NN accuracy every few epochs (SPEC 17; "
                               f"{dynamics})", lambda: dynamics_heatmap(load_dynamics(dynamics), title))
    pruning = _pruning_rows(path)
    if pruning and any(row.accuracy_finetuned is not None for row in pruning):
        figures["pruning"] = ("Accuracy after fine-tuning against parameters saved: each cut (its seeds' mean, bars "
                              "lowest to highest; colour the criterion, shape the rule), the random cuts of its size "
                              "as a band, the unpruned control as a line with its seeds' band (SPEC 19-20; "
                              "pruning.csv)",
                              lambda: pruning_tradeoff({f"{pruning[0].model}, {pruning[0].head_epochs} head + "
                                                        f"{pruning[0].finetune_epochs} fine-tuning epochs": pruning},
                                                       title))
    embedded = _drawn(figures, path / "figures", file_format, dpi)
    recommendation = {key: cut.as_dict() | {"kept_until": rows[cut.cut_index].name if cut.cut_index is not None
                                            else None} for key, cut in cuts.items()}
    atomic_text(path / "recommendation.json", json.dumps(recommendation, indent=2) + "\n")
    report = path / "report.html"
    atomic_text(report, _html(manifest, rows, cuts, embedded, path, depth, pruning))
    return report


def render_comparison(path: str | Path, settings: ReportSettings | None = None) -> Path:
    """Both analyses' reports, the model x model CKA heatmap and both models' modularity curves on one plot, and
    ``compare.html`` beside them, for a folder written by :func:`~sepgraph.analysis.compare.compare` (SPEC 24)."""
    settings = settings or ReportSettings()
    path = Path(path)
    matrix = load_cka_matrix(path / CKA_FILE)
    if matrix is None or not all((path / folder / "manifest.json").is_file() for folder in FOLDERS):
        raise SepgraphError(f"{str(path)!r} holds no comparison (no {CKA_FILE} beside the analyses a/ and b/); run "
                            "'sepgraph compare' first")
    (first, first_rows), (second, second_rows) = (load_results(path / folder) for folder in FOLDERS)
    reports = [render_report(path / folder, settings) for folder in FOLDERS]
    names = (first.parameters.model, second.parameters.model)
    if names[0] == names[1]:
        names = tuple(f"{name} ({folder})" for name, folder in zip(names, FOLDERS, strict=True))
    title = f"{names[0]} against {names[1]} on {first.data_description}"
    figures = {
        "compare_cka": ("Linear CKA between every point of the first model (rows) and of the second (columns), on "
                        "the same vertices (SPEC 24)",
                        lambda: cka_heatmap(*matrix, title, f"{names[0]}: layer point", f"{names[1]}: layer point")),
        "compare_curves": ("Both models' M and Lu et al.'s Q against relative depth",
                           lambda: two_curves(first_rows, second_rows, names, title)),
    }
    embedded = _drawn(figures, path / "figures", settings.file_format, settings.dpi)
    links = "".join(f"<li><a href='{report.relative_to(path)}'>{html.escape(name)}: its own report</a></li>"
                    for report, name in zip(reports, names, strict=True))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sepgraph: {html.escape(title)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }}
img {{ max-width: 100%; border: 1px solid #eee; }} figcaption {{ font-size: 13px; color: #555; }}</style></head><body>
<h1>sepgraph: {html.escape(title)}</h1><ul>{links}</ul>{_images(embedded)}
<p><small>Generated by sepgraph {__version__}. Definitions: SPEC sections 6, 7, 15 and 24.</small></p></body></html>
"""
    report = path / "compare.html"
    atomic_text(report, page)
    return report


def _drawn(figures: dict[str, tuple[str, Callable[[], Figure]]], folder: Path, file_format: str, dpi: int
           ) -> dict[str, tuple[str, str]]:
    """Each figure built, written to ``folder`` as NAME.FORMAT, and returned as (caption, base64 PNG) to embed."""
    folder.mkdir(exist_ok=True)
    embedded = {}
    for name, (caption, build) in figures.items():
        start = time.perf_counter()
        figure = build()
        png = _render(figure, "png", dpi)
        data = png if file_format == "png" else _render(figure, file_format, dpi)
        atomic_write(folder / f"{name}.{file_format}", lambda handle, d=data: handle.write(d))
        embedded[name] = (caption, base64.b64encode(png).decode())
        log.info("figure %s in %.1f s", name, time.perf_counter() - start)
    return embedded


def _images(embedded: dict[str, tuple[str, str]]) -> str:
    """The embedded figures with their captions."""
    return "".join(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>" for caption, data in embedded.values())


def dynamics_of(manifest: Manifest) -> Path | None:
    """The dynamics.csv of the training run whose ``model.pt`` the analysis measured (``sepgraph train
    --track-every``): beside the weights file (a relative path read from the current folder), and only while
    that folder's ``model.pt`` still has the analysed weights' sha256."""
    parameters = manifest.parameters
    if not parameters.weights:
        return None
    folder = Path(parameters.weights).parent
    path, model = folder / "dynamics.csv", folder / "model.pt"
    if path.is_file() and model.is_file() and file_sha256(model) == parameters.weights_sha256:
        return path
    return None


def _render(figure: Figure, file_format: str, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=file_format, dpi=dpi)
    return buffer.getvalue()


def _units_html(manifest: Manifest) -> str:
    """A model outside the zoo: the residual blocks pruning may remove, and why the others are never offered
    (SPEC 25)."""
    if manifest.refused_units is None:
        return ""
    offered = ", ".join(unit.name for unit in manifest.removable_units or []) or "none"
    refused = "".join(f"<li><code>{html.escape(name)}</code>: {html.escape(reason)}</li>"
                      for name, reason in manifest.refused_units.items())
    return (f"<p>Removable residual blocks (identity shortcut, shape kept; SPEC 25): {html.escape(offered)}.</p>"
            + (f"<p>Never offered:</p><ul>{refused}</ul>" if refused else ""))


def _recommendation_html(rows: list[LayerRow], cuts: dict[str, Cut]) -> str:
    items = []
    for key, label in (("M", "the paper's M"), ("lu_q", "Lu et al.'s Q")):
        cut = cuts[key]
        if cut.cut_index is None:
            items.append(f"<li>By {label}: remove <b>{len(cut.units)}</b> of {len(cut.contributions)} removable units "
                         f"(contribution at most {cut.threshold:.4g}): {html.escape(', '.join(cut.units) or 'none')}."
                         f"</li>")
        elif not cut.removed:
            items.append(f"<li>By {label}: the curve still rises at the last point; nothing to cut.</li>")
        else:
            items.append(
                f"<li>By {label}: keep up to <b>{html.escape(rows[cut.cut_index].name)}</b> "
                f"(point {cut.cut_index}), remove the {len(cut.removed)} of {len(rows)} points after it.</li>")
    rule = cuts["M"]
    if rule.cut_index is None:
        text = (f"Criterion I, <code>{rule.rule}</code> rule, parameter {rule.parameter} (SPEC 8): remove each "
                "removable unit whose contribution, the curve at its output point minus the curve at its input "
                "point, is at most the threshold" + (" (tau x the curve's range, so M and Q are judged on the same "
                                                     "relative scale)" if rule.rule == "delta" else "") + ".")
        return f"<p>{text}</p><ul>{''.join(items)}</ul>{_contributions_html(cuts)}"
    return (f"<p>Criterion I, <code>{rule.rule}</code> rule, parameter {rule.parameter} (SPEC 8): "
            "cut the layers after the point where the curve reaches its maximum, a plateau or starts to "
            "decline, then attach a new head and fine-tune.</p><ul>" + "".join(items) + "</ul>")


def _contributions_html(cuts: dict[str, Cut]) -> str:
    """Every removable unit's contribution to M and to Q, and whether each rule removes it."""
    head = ("<tr><th>unit</th><th>input point</th><th>output point</th><th>contribution to M</th><th>removed by M</th>"
            "<th>contribution to Q</th><th>removed by Q</th></tr>")
    body = []
    for by_m, by_q in zip(cuts["M"].contributions, cuts["lu_q"].contributions, strict=True):
        cells = [by_m.unit, by_m.input_point or "-", by_m.output_point or "-"]
        for item in (by_m, by_q):
            cells += ["not judged" if item.value is None else f"{item.value:+.4f}", "yes" if item.removed else ""]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table class='facts'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _depth_html(depth: list[DepthRow] | None, units: list) -> str:
    """Each removable unit's block influence and angular distance (SPEC 22), and Gromov et al.'s best run per
    number of units; empty where the analysis has no depth measures."""
    if depth is None:
        return ""
    alone = {row.units[0]: row for row in depth if len(row.units) == 1}
    head = ("<tr><th>unit</th><th>input point</th><th>output point</th><th>block influence</th>"
            "<th>angular distance</th></tr>")
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in (
            unit.name, unit.input_point or "-", unit.output_point or "-",
            *((f"{alone[unit.name].block_influence:.4f}", f"{alone[unit.name].angular_distance:.4f}")
              if unit.name in alone else ("no score: its input and output points differ in shape", "-")))) + "</tr>"
        for unit in units)
    best = {}
    for row in depth:
        if len(row.units) not in best or row.angular_distance < best[len(row.units)].angular_distance:
            best[len(row.units)] = row
    runs = "".join(f"<li>n = {n}: {html.escape(', '.join(row.units))} (distance {row.angular_distance:.4f})</li>"
                   for n, row in sorted(best.items()))
    return ("<h2>Depth criteria (SPEC 22)</h2><p>Each sample compared with itself across depth, over the "
            f"{depth[0].samples if depth else 0:,} analysed samples: <i>block influence</i> (Men et al. 2025) is 1 - "
            "the mean cosine between a unit's input and output; <i>angular distance</i> (Gromov et al. 2024) is the "
            "mean arccos(cos)/pi between a run's input and output. The lowest go first.</p>"
            f"<table class='facts'><thead>{head}</thead><tbody>{body}</tbody></table>"
            + (f"<p>The run of each length with the smallest angular distance:</p><ul>{runs}</ul>" if runs else ""))


def _pruning_rows(results: Path) -> list[PruningRow] | None:
    """``pruning.csv``'s rows, read once for the figure and the table: empty when there is none, None when an older
    sepgraph wrote it (the report says why)."""
    try:
        return load_pruning(results) or []
    except SepgraphError:
        return None


def _pruning_html(rows: list[PruningRow] | None, results: Path) -> str:
    """The Table-1 comparison written by ``sepgraph prune``, when there is one: a line per seed, each cut's verdict
    once over its consecutive seed lines (SPEC 20; ``prune`` writes a cut's seeds together)."""
    if rows is None:
        return ("<h2>Pruning</h2><p>pruning.csv was written by an older sepgraph without the unpruned control; "
                "run <code>sepgraph prune</code> again to compare against it.</p>")
    if not rows:
        return ""
    head = ("<tr><th>curve</th><th>rule (tau or target %)</th><th>cut</th><th>accuracy original</th>"
            "<th>proxy (batch norm recalibrated)</th><th>after head refit</th>"
            "<th>after fine-tuning</th><th>vs control</th><th>verdict (SPEC 20)</th><th>parameters</th>"
            "<th>parameters saved</th>"
            "<th>FLOPs saved</th><th>pruned model</th></tr>")
    words = iter(verdicts(rows))  # seed_groups keeps the rows' order
    seeds = sorted({row.seed for row in rows})
    chosen = chosen_cuts(rows)
    body = []
    for group in seed_groups(rows):
        for number, r in enumerate(group):
            curve = html.escape(r.curve) + (f" (seed {r.seed})" if len(seeds) > 1 else "") + (
                " <b>(control)</b>" if r.kind == "control" else
                " at equal units" if r.kind == "equal-units" else
                f" matching {html.escape(r.matches)}" + (" (its own units: not counted, SPEC 20)" if
                                                          (r.matches, r.pruned_model) in chosen else "")
                if r.kind == "random" else "")
            rule, change = html.escape(rule_label(r)), html.escape(change_label(r))
            word = next(words)
            span = f" rowspan='{len(group)}'" if len(group) > 1 else ""
            verdict = f"<td{span}>{html.escape(word)}</td>" if number == 0 else ""
            body.append(
                f"<tr><td>{curve}</td><td>{rule}</td><td>{html.escape(r.cut)}</td>"
                f"<td>{r.accuracy_original:.2f}%</td><td>{percent(r.accuracy_proxy)}</td>"
                f"<td>{percent(r.accuracy_head_refit)}</td>"
                f"<td>{percent(r.accuracy_finetuned)}</td><td>{change}</td>{verdict}"
                f"<td>{r.params_original:,} &rarr; {r.params_pruned:,}</td>"
                f"<td>{r.params_saved_pct:.2f}%</td><td>{r.flops_saved_pct:.2f}%</td>"
                f"<td><code>{html.escape(r.pruned_model)}</code></td></tr>")
    first = rows[0]
    seed_words = (f"with seed {seeds[0]}" if len(seeds) == 1 else
                  f"each line with its own seed (seeds {', '.join(map(str, seeds))} used)")
    return (f"<h2>Pruning</h2><p>Every row, the control included, got {first.head_epochs} head-only and "
            f"{first.finetune_epochs} fine-tuning epochs {seed_words}, init "
            f"{html.escape(first.init)} (SPEC 9). The <b>control</b> is the unpruned model trained with that same "
            "budget; <i>vs control</i> is each row's fine-tuned accuracy minus the control's; <i>proxy</i> is the "
            "accuracy after batch-norm recalibration alone, before any training (SPEC 19). Random cuts remove as "
            "many units of each size class as the cut they match.</p>"
            f"<table class='facts'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
            + "".join(f"<p>Order of {html.escape(label)}, first to go first: {html.escape(', '.join(order))}.</p>"
                      for label, order in load_orders(results).items()))


def _table(rows: list[LayerRow]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0].as_record())
    body = []
    for row in rows:
        cells = []
        for value in row.as_record().values():
            text = (f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int)
                    else "" if value is None else value)
            cells.append(f"<td>{html.escape(str(text))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='layers'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _manifest_html(manifest: Manifest) -> str:
    parameters = manifest.parameters
    graph = parameters.settings
    facts = [
        ("model", parameters.model),
        ("weights", f"{parameters.weights} (sha256 {parameters.weights_sha256})" if parameters.weights
         else "none: the features were given" if manifest.given_features
         else f"random initialisation, seed {graph.seed}"),
        ("data", f"{manifest.data_description} ({parameters.data}"
         + (f", sha256 {parameters.data_sha256})" if parameters.data_sha256 else ")")),
        ("normalisation", parameters.normalize),
        ("layer points", f"{len(parameters.points)} ({parameters.convention} convention)"),
        ("histograms", f"{manifest.hist_pairs:,} pairs of {graph.hist_samples} samples, {graph.bins} bins"),
        ("subgraph", f"N = {graph.vertices:,} {graph.vertex_choice} vertices (seed {graph.seed}), "
                     f"|E| = {graph.edges:,}"),
        ("Lu et al.'s Q", f"k = {graph.lu_k}, {graph.lu_batches} batches of {graph.lu_batch_size}"),
        ("run", ", ".join(f"{k} {v}" for k, v in manifest.run.to_json().items())),
        ("timings (s)", ", ".join(f"{k} {v:.1f}" for k, v in (manifest.seconds or {}).items())),
        ("versions", ", ".join(f"{k} {v}" for k, v in manifest.versions.items()) + f", sepgraph {__version__}"),
        ("created", manifest.created),
    ]
    return "<table class='facts'>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts) + "</table>"


def _html(manifest: Manifest, rows: list[LayerRow], cuts: dict[str, Cut], embedded: dict, path: Path,
          depth: list[DepthRow] | None, pruning: list[PruningRow] | None) -> str:
    title = f"sepgraph: {manifest.title}"
    pruning_html = _pruning_html(pruning, path)
    images = _images(embedded)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.5em; }} h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
table.facts th, table.facts td {{ text-align: left; }}
.scroll {{ overflow-x: auto; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 13px; color: #555; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Recommendation</h2>{_recommendation_html(rows, cuts)}{_units_html(manifest)}
{pruning_html}
{_depth_html(depth, manifest.removable_units or [])}
<h2>Figures</h2>{images}
<h2>Per layer point</h2><div class="scroll">{_table(rows)}</div>
<h2>Run</h2>{_manifest_html(manifest)}
<p><small>Generated by sepgraph {__version__}. Definitions: SPEC sections 2-8.</small></p>
</body></html>
"""
