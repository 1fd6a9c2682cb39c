import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from sepgraph import GraphSettings, SepgraphError
from sepgraph.analysis.run import analyze
from sepgraph.cli import main
from sepgraph.pruning.criterion import apply_rule, recommend
from sepgraph.report.figures import histogram_grid, histogram_heatmap, modularity_curves, ring_graphs, ring_positions
from sepgraph.report.html import ReportSettings, render_report
from sepgraph.results.folder import edges_path, load_results

SMALL = GraphSettings(vertices=120, edges=400, hist_samples=200, lu_batch_size=40, lu_batches=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    analyze("resnet20", "digits:all", SMALL, points="lu2022", out=out, progress=False)
    return out


def visible_axes(figure):
    return [axis for axis in figure.axes if axis.get_visible()]


def test_figures_have_one_panel_per_layer_point(folder):
    manifest, rows = load_results(folder)
    assert len(visible_axes(histogram_grid(rows, "t"))) == len(rows) == 10

    def load(index, name):
        with np.load(edges_path(folder, index, name)) as archive:
            return {k: archive[k] for k in archive.files}

    rings = ring_graphs(rows, load, manifest.classes, "t")
    assert len(visible_axes(rings)) == 10
    collections = visible_axes(rings)[-1].collections
    assert sum(len(c.get_segments()) for c in collections if hasattr(c, "get_segments")) == 400
    subset = ring_graphs(rows, load, manifest.classes, "t", max_edges=50)
    assert "strongest 50 edges drawn" in subset.get_suptitle()
    heatmap = histogram_heatmap(rows, "t")
    assert len(heatmap.axes[0].get_yticklabels()) == 10
    curves = modularity_curves(rows, recommend(rows), "t")
    assert len(curves.axes) == 5  # M with Q on a twin axis, terms, the field's measures (SPEC 13-15), similarity
    assert "the field's measures" in curves.axes[2].get_ylabel()


def test_ring_positions_keep_classes_contiguous():
    labels = np.array([2, 0, 1, 0, 2, 1, 0])
    xy = ring_positions(labels)
    assert np.allclose(np.hypot(xy[:, 0], xy[:, 1]), 1.0)
    angle = np.mod(np.arctan2(xy[:, 1], xy[:, 0]), 2 * np.pi)
    order = np.argsort(angle)
    assert labels[order].tolist() == sorted(labels.tolist())


def test_report_is_self_contained_with_table_and_images(folder):
    report = render_report(folder)
    text = report.read_text()
    assert text.count("data:image/png;base64,") == 6  # a zoo model: its depth figure (SPEC 22), the CKA heatmap
    assert "<table class='layers'>" in text and text.count("<tr>") >= 10 + 1
    assert "layer3.2" in text and "scikit-learn digits" in text and "Depth criteria (SPEC 22)" in text
    assert not re.search(r"(src|href)=['\"]https?://", text)  # nothing to fetch: opens offline
    for name in ("modularity", "histograms", "histogram_heatmap", "rings", "depth"):
        assert (folder / "figures" / f"{name}.png").stat().st_size > 10_000
    assert (folder / "recommendation.json").is_file()


@pytest.mark.parametrize("file_format, magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_other_formats(folder, tmp_path, file_format, magic):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    render_report(copy, ReportSettings(file_format=file_format, ring_edges=100))
    assert (copy / "figures" / f"rings.{file_format}").read_bytes().startswith(magic)


def test_report_command_and_errors(folder, tmp_path, capsys):
    assert main(["report", str(folder), "--rule", "peak"]) == 0
    assert "report.html" in capsys.readouterr().out
    with pytest.raises(SepgraphError, match="not a sepgraph results folder"):
        render_report(tmp_path)
    with pytest.raises(SepgraphError, match="unknown figure format"):
        ReportSettings(file_format="jpg")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(folder, incomplete)
    next((incomplete / "rows").glob("003_*")).unlink()
    with pytest.raises(SepgraphError, match=r"not complete: layer point 3 .*--resume"):
        render_report(incomplete)


def test_recommendation_uses_one_rule_on_both_curves(folder):
    _, rows = load_results(folder)
    cuts = recommend(rows, "peak")
    assert cuts["M"] == apply_rule([r.M for r in rows], "peak")
    assert cuts["lu_q"] == apply_rule([r.lu_q_mean for r in rows], "peak")


def test_report_renders_in_headless_chromium(folder, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium to run this test)")
    report = render_report(folder)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1200,1600", report.as_uri()], capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape == (1600, 1200)
    assert (pixels < 128).mean() > 0.01  # text and figures drawn, not a blank page


def test_wrong_edges_stay_distinct_in_grayscale():
    from matplotlib.colors import to_rgb

    from sepgraph.report.figures import WRONG, class_colours

    def luminance(colour):
        red, green, blue = to_rgb(colour)
        return 0.299 * red + 0.587 * green + 0.114 * blue

    assert min(luminance(c) for c in class_colours(12)) - luminance(WRONG) > 0.2


def test_the_pruning_figure_draws_each_cut_its_random_band_and_the_control():
    from conftest import pruning_row
    from sepgraph.report.figures import pruning_tradeoff

    def row(kind, curve, accuracy, saved=0.0, seed=0, model="m", matches="", parameter=30.0):
        return pruning_row(kind=kind, curve=curve, accuracy_finetuned=accuracy, params_saved_pct=saved, seed=seed,
                           pruned_model=model, matches=matches, rule="" if kind == "control" else "target-params",
                           parameter=None if kind == "control" else parameter)

    rows = [row("control", "unpruned", value, seed=seed) for seed, value in enumerate((89.0, 90.0, 91.0))]
    rows += [row("criterion", "M (ours)", value, 31.0, seed, "m+a") for seed, value in enumerate((86.0, 87.0, 88.0))]
    rows += [row("criterion", "M (ours)", 80.0, 57.0, 0, "m+b", parameter=50.0),
             row("criterion", "Lu et al.'s Q", 88.0, 36.0, 0, "m+c"),
             row("random", "random (size-matched)", 84.0, 31.0, 0, "m+d", "M (ours)"),
             row("random", "random (size-matched)", 85.5, 31.0, 0, "m+e", "M (ours)"),
             row("random", "random (size-matched)", 86.0, 31.0, 0, "m+a", "M (ours)"),  # M's own units: no cross
             row("criterion", "weight magnitude", None, 40.0, 0, "m+f"),  # not trained: left out
             row("criterion", "k-NN accuracy", 88.0, 36.0, 0, "m+c"),  # Q's cut: one marker for both
             row("criterion", "CKA to the last point", 87.0, 31.0, 1, "m+a")]  # M's cut at one of its seeds
    figure = pruning_tradeoff({"m, 6 epochs": rows}, "a title")
    axis = figure.axes[0]
    markers = sorted((bar.lines[0].get_xydata()[0].tolist(), bar.lines[2][0].get_segments()[0][:, 1].tolist())
                     for bar in axis.containers)
    assert markers == [([31.0, 87.0], [86.0, 88.0]), ([36.0, 88.0], [88.0, 88.0]), ([57.0, 80.0], [80.0, 80.0])]
    labels = [text.get_text() for text in axis.get_legend().get_texts()]
    assert labels == ["unpruned control (3 seeds)", "random cuts of the same size (band: lowest to highest)",
                      "M (ours) = CKA to the last point", "M (ours)", "Lu et al.'s Q = k-NN accuracy",
                      "at least 30% of the parameters saved",
                      "at least 50% of the parameters saved"]  # two rules: colour keys criterion, shape rule
    shapes = {bar.lines[0].get_xydata()[0][0]: bar.lines[0].get_marker() for bar in axis.containers}
    assert shapes == {31.0: "o", 36.0: "o", 57.0: "s"}
    one_rule = pruning_tradeoff({"30% only": [r for r in rows if r.parameter != 50.0]}, "t").axes[0]
    assert [text.get_text() for text in one_rule.get_legend().get_texts()][2:] == [
        "M (ours) = CKA to the last point", "Lu et al.'s Q = k-NN accuracy"]
    backwards = pruning_tradeoff({"30% only": [r for r in reversed(rows) if r.parameter != 50.0]}, "t")
    assert [text.get_text() for text in backwards.axes[0].get_legend().get_texts()][2:] == [
        "M (ours) = CKA to the last point", "Lu et al.'s Q = k-NN accuracy"]  # the criteria's order, not the rows'
    assert backwards.get_size_inches()[1] == pytest.approx(4.2 + 0.16 * 4)  # a long label: one column, 4 lines
    short = pruning_tradeoff({"M alone": [r for r in rows if r.curve in ("unpruned", "M (ours)")]}, "t")
    assert short.get_size_inches()[1] == pytest.approx(4.2 + 0.16 * 2)  # 4 short labels in two columns
    close = pruning_tradeoff({"close": [rows[0], replace(rows[3], accuracy_finetuned=89.1)]}, "t").axes[0]
    assert close.get_ylim()[1] - close.get_ylim()[0] == pytest.approx(2.0)  # 0.1 point apart: a 2-point axis
    one_size = pruning_tradeoff({"one size": [rows[0], rows[3], replace(rows[6], params_saved_pct=31.0)]}, "t").axes[0]
    assert one_size.get_xlim() == pytest.approx((29.0, 33.0))  # cuts of one size: a 4-point axis about it
    assert axis.get_xlim()[1] - axis.get_xlim()[0] > 26.0  # a real spread of sizes keeps its own limits
    assert sorted(axis.lines[1].get_ydata()) == [84.0, 85.5]  # each random cut a cross
    band = axis.collections[0].get_paths()[0].vertices
    assert (band[:, 0].min(), band[:, 0].max(), band[:, 1].min(), band[:, 1].max()) == pytest.approx(
        (30.61, 31.39, 84.0, 85.5))  # half width: 1.5% of the spread of sizes, 57 - 31
    assert axis.lines[0].get_ydata()[0] == 90.0
    delta = [pruning_row(kind=kind, curve=curve, rule=rule, parameter=tau, pruned_model=model, accuracy_finetuned=80.0,
                         params_saved_pct=saved)
             for kind, curve, rule, tau, model, saved in (
                 ("criterion", "M (ours)", "delta", 0.02, "m+a", 30.0),
                 ("equal-units", "M (ours)", "delta", 0.02, "m+a", 30.0),
                 ("equal-units", "Lu et al.'s Q", "delta", 0.035, "m+b", 33.0),  # its own tau, the same rule
                 ("equal-units", "k-NN accuracy", "delta", 0.041, "m+b", 33.0),
                 ("reference", "reference", "", None, "m+c", 40.0))]
    legend = [text.get_text() for text in pruning_tradeoff({"d": delta}, "t").axes[0].get_legend().get_texts()]
    assert legend == ["M (ours)", "M (ours) at equal units", "Lu et al.'s Q at equal units = k-NN accuracy at equal "
                      "units", "reference", "delta (0.02)", "delta at equal units", "reference cut"]
    empty = pruning_tradeoff({"nothing trained": [row for row in rows if row.accuracy_finetuned is None]},
                             "t").axes[0]
    assert not empty.containers and empty.get_legend() is None


def test_the_report_pruning_table_gives_a_cut_its_verdict_once_over_its_seeds(tmp_path):
    from conftest import pruning_row
    from sepgraph.report.html import _pruning_html

    rows = [pruning_row(seed=seed, accuracy_finetuned=value) for seed, value in enumerate((90.0, 90.1, 90.2))]
    rows += [pruning_row(kind="criterion", curve="M (ours)", rule="target-params", parameter=30.0, pruned_model="m+a",
                         seed=seed, accuracy_finetuned=value) for seed, value in enumerate((90.0, 90.1, 90.2))]
    text = _pruning_html(rows, tmp_path)
    assert text.count("<td rowspan='3'>") == 2  # the control's "-" and M's verdict, each over three seed lines
    assert "<td rowspan='3'>equal accuracy with the control" in text and "seeds 0, 1, 2" in text
    assert text.count("<tr>") == 1 + 6
    assert "older sepgraph" in _pruning_html(None, tmp_path) and _pruning_html([], tmp_path) == ""
    drawn = [pruning_row(kind="random", curve="random (size-matched)", matches="M (ours)", pruned_model=model)
             for model in ("m+a", "m+b")]  # the first drew M's own units
    lines = _pruning_html(rows + drawn, tmp_path).split("<tr>")[-2:]
    assert [line.count("(its own units: not counted, SPEC 20)") for line in lines] == [1, 0]
    apart = _pruning_html([rows[3], rows[0], rows[4]], tmp_path)  # M's seeds not together: a verdict on each line
    assert "rowspan" not in apart and apart.count("<td>undecided (1 seed; no noise level)</td>") == 2
