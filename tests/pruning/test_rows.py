import csv
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import layer_row
from sepgraph import GraphSettings, ImageDataset, SepgraphError, analyze, create_model, load_dataset, load_weights
from sepgraph.cli import main
from sepgraph.models.checkpoints import save_weights
from sepgraph.pruning.halves import analyse_selection
from sepgraph.pruning.options import PruningOptions
from sepgraph.pruning.rows import compare_pruning, plan_pruning
from sepgraph.pruning.table import PruningRow
from sepgraph.report.html import ReportSettings, render_report
from sepgraph.training.loop import train
from sepgraph.training.recipe import Recipe


def subset(spec: str, count: int) -> ImageDataset:
    full = load_dataset(spec)
    keep = np.arange(0, len(full), max(1, len(full) // count))[:count]
    return ImageDataset.from_arrays(full.read(keep), full.labels[keep], full.classes, description=full.description,
                                     spec=f"{spec}[:{count}]")


@pytest.fixture(scope="module")
def trained_analysis(tmp_path_factory):
    """train -> analyze on the embedded digits, a few seconds on two cores."""
    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    model = create_model("resnet20")
    train_set = subset("digits:train", 400)
    train(model, train_set, normalize="none", recipe=Recipe(epochs=2, lr=0.05, batch_size=100), out=root / "train",
          progress=False)
    save_weights(model, root / "model.pt")
    analyse_selection("resnet20", "digits:test", GraphSettings(vertices=150, edges=600, lu_batch_size=50,
                                                               lu_batches=2),
                      weights=root / "model.pt", normalize="none", points="lu2022", out=root / "analysis",
                      progress=False)
    return root, train_set


def test_train_analyze_prune_end_to_end(trained_analysis):
    root, train_set = trained_analysis
    table = compare_pruning(root / "analysis", train_set, PruningOptions(rules=["peak"], head_epochs=1),
                            recipe=Recipe(epochs=1, lr=0.02, batch_size=100), progress=False)
    assert [row.curve for row in table] == ["unpruned", "M (ours)", "Lu et al.'s Q"]
    with open(root / "analysis" / "pruning.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == PruningRow.columns() and len(rows) == 3
    control = table[0]
    assert (control.kind, control.pruned_model, control.params_saved_pct) == ("control", "resnet20", 0.0)
    assert control.accuracy_vs_control == 0.0 and control.finetune_epochs == 1
    for row in table:
        assert 0 <= row.accuracy_head_refit <= 100 and 0 <= row.accuracy_finetuned <= 100
        assert row.accuracy_vs_control == pytest.approx(row.accuracy_finetuned - control.accuracy_finetuned)
        assert row.params_saved_pct == pytest.approx(100 * (1 - row.params_pruned / row.params_original))
        assert (row.head_epochs, row.finetune_epochs, row.seed) == (1, 1, 0)  # every row trained alike
        rebuilt = create_model(row.pruned_model)
        load_weights(rebuilt, root / "analysis" / row.weights)
        if row.points_removed:
            assert row.params_pruned < row.params_original and row.flops_pruned < row.flops_original
            assert row.pruned_model.startswith("resnet20+truncate=")
        elif row.kind != "control":
            assert row.cut.startswith("no cut") and row.weights == control.weights
    markdown = (root / "analysis" / "pruning.md").read_text()
    assert "| **unpruned** (control) |" in markdown and "| M (ours) |" in markdown and "vs control" in markdown


def test_rows_are_reused_and_the_control_is_trained_once(trained_analysis):
    root, train_set = trained_analysis
    recipe = Recipe(epochs=1, lr=0.02, batch_size=100)
    first = compare_pruning(root / "analysis", train_set, PruningOptions(rules=["peak"]), recipe=recipe,
                            progress=False)
    finished = {row.weights: (root / "analysis" / row.weights).with_name("row.json").stat().st_mtime_ns
                for row in first}
    again = compare_pruning(root / "analysis", train_set, PruningOptions(rules=["peak", "plateau"]), recipe=recipe,
                            progress=False)
    assert again[: len(first)] == first  # the same rows, read back rather than trained again
    assert all((root / "analysis" / w).with_name("row.json").stat().st_mtime_ns == t for w, t in finished.items())
    other_seed = compare_pruning(root / "analysis", train_set, PruningOptions(rules=["peak"]),
                                 recipe=Recipe(epochs=1, lr=0.02, batch_size=100, seed=1), progress=False)
    assert other_seed[0].weights != first[0].weights  # another setting is another model


def test_a_plan_tells_which_rows_it_would_read_back(trained_analysis):
    root, train_set = trained_analysis
    recipe = Recipe(epochs=0, batch_size=100, seed=3)
    plan = plan_pruning(root / "analysis", train_set, PruningOptions(rules=["peak"], head_epochs=0), recipe=recipe,
                        progress=False)
    control, criterion = plan.candidates[:2]
    assert not plan.is_trained(control) and not plan.is_trained(criterion)
    plan.row(criterion)
    assert plan.is_trained(criterion) and not plan.is_trained(control)
    assert not plan.is_trained(criterion, replace(recipe, seed=4))  # another seed is another model


def test_delta_rule_removes_blocks_and_equal_units_and_references(trained_analysis):
    root, train_set = trained_analysis
    options = PruningOptions(rules=[("delta", 1.0)], equal_units=True, head_epochs=0,
                             reference_cuts=["resnet20+remove=layer1.1", "remove=layer3.2"])
    table = compare_pruning(root / "analysis", train_set, options, recipe=Recipe(epochs=0), progress=False)
    assert [row.kind for row in table] == ["control", "criterion", "criterion", "equal-units", "equal-units",
                                              "reference", "reference"]
    # tau 1.0 is the whole range: every removable block goes, under either curve
    everything = "resnet20+remove=" + ",".join(
        f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3) if not (s > 1 and b == 0))
    assert table[1].pruned_model == everything and table[1].units_removed == 7
    assert table[1].accuracy_finetuned == table[1].accuracy_head_refit
    assert table[3].units_removed == table[4].units_removed  # the equal-units pair removes as many units
    assert (table[5].pruned_model, table[6].pruned_model) == ("resnet20+remove=layer1.1",
                                                                    "resnet20+remove=layer3.2")
    assert (table[5].units_removed, table[5].points_removed) == (1, 1)  # lu2022: one point per block
    with pytest.raises(SepgraphError, match="names model 'resnet56'"):
        compare_pruning(root / "analysis", train_set, PruningOptions(reference_cuts=["resnet56+remove=layer1.1"]),
                        progress=False)
    with pytest.raises(SepgraphError, match="cannot remove layer2.0; the removable units are layer1.0"):
        compare_pruning(root / "analysis", train_set, PruningOptions(reference_cuts=["remove=layer1.1,layer2.0"]),
                        progress=False)


def test_prune_command_and_bad_init(trained_analysis, capsys):
    root, _ = trained_analysis
    with pytest.raises(SepgraphError, match="init must be"):
        PruningOptions(init="random")
    code = main(["prune", str(root / "analysis"), "--train-data", "digits:train", "--epochs", "0",
                 "--head-epochs", "0", "--rule", "delta=0.5", "--rule", "peak", "--reference-cut", "remove=layer1.1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| **unpruned** (control) |" in out and "delta (0.5)" in out and "report.html" in out
    report = (root / "analysis" / "report.html").read_text()
    assert "Pruning" in report and "(control)" in report and "contribution to M" in report
    with pytest.raises(SystemExit):
        main(["prune", str(root / "analysis"), "--train-data", "digits:train", "--rule", "delta=x"])
    assert "expected RULE=NUMBER" in capsys.readouterr().err


def test_prune_runs_the_analysis_first_when_asked(trained_analysis, tmp_path, capsys):
    root, _ = trained_analysis
    out = tmp_path / "fresh"
    code = main(["prune", str(out), "--model", "resnet20", "--weights", str(root / "model.pt"), "--data",
                 "digits:test", "--normalize", "none", "--train-data", "digits:train", "--epochs", "0",
                 "--head-epochs", "0", "--rule", "peak", "--vertices", "100", "--edges", "300",
                 "--lu-batch-size", "40", "--lu-batches", "2"])
    assert code == 0 and (out / "layers.csv").is_file() and (out / "pruning.csv").is_file()
    assert main(["prune", str(tmp_path / "other"), "--model", "resnet20", "--train-data", "digits:train"]) == 2
    assert "--model needs --data" in capsys.readouterr().err


def test_equal_units_pair_removes_as_many_units_as_m_does():
    from sepgraph.models.points import removable_units
    from sepgraph.pruning.candidates import candidates

    model = create_model("resnet20")
    units = removable_units(model, "blocks")
    names = ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    m_rises = [0.1, 0.0, 0.1, 0.1, 0.0, 0.1, 0.1, 0.1, 0.1]  # M: layer1.1 and layer2.1 add nothing
    q_rises = [0.0, 0.05, 0.01, 0.1, 0.005, 0.02, 0.1, 0.3, 0.03]  # Q: three units at or below 0.02 x range
    rows = [layer_row(k, n, M=float(np.cumsum([0] + m_rises)[k]), lu_q_mean=float(np.cumsum([0] + q_rises)[k]))
            for k, n in enumerate(names)]
    found = candidates("resnet20", rows, units, PruningOptions(rules=[("delta", 0.02)], equal_units=True))
    criterion = {c.curve: c for c in found if c.kind == "criterion"}
    equal = {c.curve: c for c in found if c.kind == "equal-units"}
    assert criterion["M (ours)"].spec.pruning == "remove=layer1.1,layer2.1"
    assert criterion["Lu et al.'s Q"].units_removed == 3
    assert equal["M (ours)"] == replace_kind(criterion["M (ours)"], "equal-units")
    assert equal["Lu et al.'s Q"].spec.pruning == "remove=layer1.0,layer2.1"  # Q's two smallest contributions


def replace_kind(candidate, kind):
    from dataclasses import replace

    return replace(candidate, kind=kind)


def test_any_curve_gets_its_own_cut_under_the_same_rule():
    """SPEC 16: one candidate per curve and rule; CKA to the last point is read like any rising curve."""
    from dataclasses import replace

    from sepgraph.models.points import removable_units
    from sepgraph.pruning.candidates import candidates

    model = create_model("resnet20")
    units = removable_units(model, "blocks")
    names = ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    rises = {"M": [0.1, 0.0, 0.1, 0.1, 0.0, 0.1, 0.1, 0.1, 0.1], "knn_acc": [0.1] * 9,
             "probe_acc": [0.2, 0.1, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
             "cka_last": [0.3, 0.3, 0.3, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0]}
    curve = {key: np.cumsum([0] + values) for key, values in rises.items()}
    rows = [layer_row(k, n, M=curve["M"][k], lu_q_mean=curve["M"][k], knn_acc=curve["knn_acc"][k],
                      probe_acc=curve["probe_acc"][k], cka_prev=None, cka_last=curve["cka_last"][k])
            for k, n in enumerate(names)]
    found = candidates("resnet20", rows, units, PruningOptions(rules=["plateau", ("delta", 0.02)],
                                                               curves=("M", "knn_acc", "probe_acc", "cka_last")))
    by = {(c.curve, c.rule): c for c in found}
    assert by[("k-NN accuracy", "plateau")].spec.pruning is None  # still rising at the last point
    assert by[("linear probe", "delta")].spec.pruning == "remove=layer1.2"
    assert by[("CKA to the last point", "plateau")].spec.pruning == "truncate=layer2.0"  # flat from there on
    assert by[("M (ours)", "delta")].spec.pruning == "remove=layer1.1,layer2.1"
    with pytest.raises(SepgraphError, match="has no probe_acc values"):
        candidates("resnet20", [replace(row, probe_acc=None) for row in rows], units,
                   PruningOptions(curves=("probe_acc",)))
    with pytest.raises(SepgraphError, match="curves 'M,q'"):
        PruningOptions(curves=("M", "q"))


def test_target_cuts_with_magnitude_and_random_beside_the_control(trained_analysis):
    """SPEC 19 end to end: every criterion cut at a target, random cuts of the same size, the proxy of each row."""
    root, train_set = trained_analysis
    options = PruningOptions(curves=("M", "random", "magnitude"), target_params=[30], random_seeds=2, head_epochs=0)
    table = compare_pruning(root / "analysis", train_set, options, recipe=Recipe(epochs=1, lr=0.02, batch_size=100),
                            progress=False)
    with open(root / "analysis" / "pruning.csv") as handle:
        header = next(csv.reader(handle))
    assert header == PruningRow.columns() and {"accuracy_proxy", "matches"} <= set(header)
    kinds = [row.kind for row in table]
    assert kinds[:3] == ["control", "criterion", "criterion"] and set(kinds[3:]) == {"random"}
    criteria = {row.curve: row for row in table if row.kind == "criterion"}
    assert set(criteria) == {"M (ours)", "weight magnitude"}
    for row in criteria.values():
        assert row.rule == "target-params" and row.parameter == 30 and row.params_saved_pct >= 30
        randoms = [other for other in table if other.matches == row.curve]
        assert len(randoms) >= 1 and all(other.params_pruned == row.params_pruned for other in randoms)
        assert all(other.flops_pruned == row.flops_pruned for other in randoms)
    for row in table:
        assert 0 <= row.accuracy_proxy <= 100 and row.accuracy_finetuned is not None
        assert (row.matches != "") == (row.kind == "random")
    markdown = (root / "analysis" / "pruning.md").read_text()
    assert " matching M (ours)" in markdown and "Order of M (ours), first to go first" in markdown
    report = render_report(root / "analysis", ReportSettings()).read_text()
    assert "Order of weight magnitude, first to go first" in report and "matching M (ours)" in report
    assert "Accuracy after fine-tuning against parameters saved" in report
    assert (root / "analysis" / "figures" / "pruning.png").stat().st_size > 10_000


def test_proxy_only_trains_nothing_and_writes_no_weights(trained_analysis, capsys):
    root, _ = trained_analysis
    before = sorted(path.relative_to(root) for path in root.rglob("*"))
    code = main(["prune", str(root / "analysis"), "--train-data", "digits:train", "--proxy-only",
                 "--target-params", "20", "--target-flops", "40", "--curves", "M,lu_q,magnitude,random",
                 "--random-seeds", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Nothing was trained" in out and "proxy.csv" in out
    created = sorted(str(path) for path in {path.relative_to(root) for path in root.rglob("*")} - set(before))
    assert created[:3] == ["analysis/proxy", "analysis/proxy-orders.json", "analysis/proxy.csv"]
    assert created[3] == "analysis/proxy.md" and all(name.endswith(".json") for name in created[4:])  # no weights
    measured = {path: path.stat().st_mtime_ns for path in (root / "analysis" / "proxy").iterdir()}
    assert main(["prune", str(root / "analysis"), "--train-data", "digits:train", "--proxy-only",
                 "--target-params", "20", "--target-flops", "40", "--curves", "M,lu_q,magnitude,random",
                 "--random-seeds", "3"]) == 0
    assert {path: path.stat().st_mtime_ns for path in (root / "analysis" / "proxy").iterdir()} == measured
    with open(root / "analysis" / "proxy.csv") as handle:
        rows = [PruningRow.from_csv(record) for record in csv.DictReader(handle)]
    assert all(row.accuracy_finetuned is None and row.weights == "" and row.accuracy_proxy is not None
               for row in rows)
    assert {row.rule for row in rows if row.kind != "control"} == {"target-params", "target-flops"}


@pytest.mark.parametrize(("flags", "message"), [
    (["--target-params", "0"], "--target-params 0: a target is the share of parameters to save"),
    (["--target-params", "100"], "a percentage above 0 and below 100"),
    (["--target-flops", "nan"], "--target-flops nan: a target is the share of FLOPs to save"),
    (["--target-params", "-5"], "a percentage above 0 and below 100"),
    (["--target-params", "99"], "--target-params 99: the most a cut can reach is"),
    (["--target-params", "30", "--curves", "M,random", "--random-seeds", "0"], "--random-seeds must be at least 1"),
    (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--selection-fraction", "1"], "--selection-fraction 1: the share of the evaluation images"),
    (["--curves", "M,magnitude", "--rule", "plateau", "--target-params", "30"],
     "'magnitude' is a unit score with no curve, so the plateau rule cannot cut by it"),
    (["--curves", "M,angular", "--rule", "plateau", "--target-params", "30"],
     "'angular' is a distance per run of units with no curve, so the plateau rule cannot cut by it"),
    (["--target-params", "60", "--curves", "M,angular"],
     "--target-params 60: no run of consecutive same-shape units reaches it for criterion 'angular' (the most one "
     "saves is 54.86%); choose a smaller target, or cut by block_influence, M or another criterion instead"),
    (["--proxy-only"], "--proxy-only measures removal cuts and the default rule, plateau, truncates; give "
                       "--target-params"),
    (["--proxy-only", "--rule", "peak"], "--proxy-only: --rule peak truncates, and a truncated model needs a new "
                                         "head trained before it can be measured; use --target-params"),
])
def test_bad_pruning_options_are_one_line_and_write_nothing(trained_analysis, tmp_path, capsys, flags, message):
    root, _ = trained_analysis
    before = sorted(root.rglob("*"))
    assert main(["prune", str(root / "analysis"), "--train-data", "digits:train", "--epochs", "0", *flags]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sepgraph: error: ")]
    assert len(errors) == 1 and message in errors[0], errors
    assert sorted(root.rglob("*")) == before
    fresh = tmp_path / "fresh"  # checked before an analysis of --model starts: no folder, no manifest
    assert main(["prune", str(fresh), "--model", "resnet20", "--data", "digits:test", "--train-data",
                 "digits:train", *flags]) == 2
    assert not fresh.exists()


@pytest.mark.parametrize("fraction", [0.5, 0.3])
def test_the_halves_never_overlap_and_are_stratified_and_seeded(fraction):
    from sepgraph.data.samples import split_halves

    labels = load_dataset("digits:test").labels
    selection, report = split_halves(labels, fraction, seed=4)
    assert not np.intersect1d(selection, report).size and len(selection) + len(report) == len(labels)
    for label in np.unique(labels):
        members = int((labels == label).sum())
        assert int((labels[selection] == label).sum()) == round(fraction * members)
    assert np.array_equal(split_halves(labels, fraction, seed=4)[0], selection)
    assert not np.array_equal(split_halves(labels, fraction, seed=5)[0], selection)
    for bad in (0, 1, 1.5, -0.2, float("nan")):
        with pytest.raises(SepgraphError, match="selection_fraction .* strictly between 0 and 1"):
            split_halves(labels, bad)
        with pytest.raises(SepgraphError, match="selection_fraction"):
            PruningOptions(selection_fraction=bad)


def test_the_report_half_only_measures_accuracies(trained_analysis, monkeypatch):
    """Poisoning every report-half image of the set the comparison loads changes the reported accuracies and no
    choice: the same cuts, the same random draws, the same orders (ablation included)."""
    from sepgraph.data.sources import DataSource
    from sepgraph.pruning import halves as module

    root, train_set = trained_analysis
    halves = module.Halves.read(root / "analysis")
    assert halves is not None and halves.data == "digits:test"
    whole = load_dataset("digits:test")
    images = whole.read(np.arange(len(whole)))
    images[list(halves.report)] = 255 - images[list(halves.report)]
    poisoned = ImageDataset.from_arrays(images, whole.labels, whole.classes, spec="digits:test")
    options = PruningOptions(curves=("M", "magnitude", "ablation", "random"), target_params=[30], proxy_only=True)
    clean = compare_pruning(root / "analysis", train_set, options, progress=False)
    orders = (root / "analysis" / "proxy-orders.json").read_text()
    monkeypatch.setattr(module.Halves, "half", lambda self, whole, name: whole.subset(
        np.asarray(getattr(self, name)), f"{self.data}[{name}]"))  # the poisoned set is not the recorded one
    monkeypatch.setattr(DataSource, "load", lambda source: poisoned if source.spec == "digits:test" else
                        load_dataset(source.spec))
    dirty = compare_pruning(root / "analysis", train_set, options, progress=False)
    assert (root / "analysis" / "proxy-orders.json").read_text() == orders
    assert [row.pruned_model for row in clean] == [row.pruned_model for row in dirty]
    assert [row.accuracy_proxy for row in clean] != [row.accuracy_proxy for row in dirty]
    assert clean[0].accuracy_original != dirty[0].accuracy_original


def test_an_analysis_that_chose_report_half_vertices_is_refused(trained_analysis, tmp_path, capsys):
    root, _ = trained_analysis
    whole = tmp_path / "whole"
    analyze("resnet20", "digits:test", GraphSettings(vertices=150, edges=600, lu_batch_size=50, lu_batches=2),
            weights=root / "model.pt", normalize="none", points="lu2022", out=whole, progress=False)
    before = sorted(whole.rglob("*"))
    assert main(["prune", str(whole), "--train-data", "digits:train", "--target-params", "20", "--proxy-only"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sepgraph: error: ")]
    assert len(errors) == 1 and "used 364 images of 'digits:test'" in errors[0]  # every image: hist_samples all
    assert "in the report half" in errors[0] and "--test-data" in errors[0]
    assert sorted(whole.rglob("*")) == before


def test_more_seeds_on_a_rerun_train_only_the_new_ones(trained_analysis):
    root, train_set = trained_analysis
    recipe = Recipe(epochs=1, lr=0.02, batch_size=100, seed=7)
    one = compare_pruning(root / "analysis", train_set, PruningOptions(rules=["peak"], head_epochs=0), recipe=recipe,
                          progress=False)
    finished = {row.weights: (root / "analysis" / row.weights).with_name("row.json").stat().st_mtime_ns
                for row in one}
    two = compare_pruning(root / "analysis", train_set, PruningOptions(rules=["peak"], head_epochs=0, seeds=2),
                          recipe=recipe, progress=False)
    assert [row.seed for row in two] == [7, 8] * len(one)
    assert [row for row in two if row.seed == 7] == one  # read back, not trained again
    assert all((root / "analysis" / w).with_name("row.json").stat().st_mtime_ns == t for w, t in finished.items())
    controls = {row.seed: row.accuracy_finetuned for row in two if row.kind == "control"}
    for row in two:
        assert row.accuracy_vs_control == pytest.approx(row.accuracy_finetuned - controls[row.seed])
    assert "(2 seeds)" in (root / "analysis" / "pruning.md").read_text()
    with pytest.raises(SepgraphError, match="seeds must be at least 1, got 0"):
        PruningOptions(seeds=0)


def test_depth_criteria_cut_by_the_analysis_depth_file_and_show_in_the_report(trained_analysis, tmp_path, capsys):
    import shutil

    from sepgraph.results.depth_table import load_depth

    root, train_set = trained_analysis
    options = PruningOptions(curves=("M", "block_influence", "angular", "random"), target_params=[30],
                             proxy_only=True, random_seeds=2)
    table = compare_pruning(root / "analysis", train_set, options, progress=False)
    depth = load_depth(root / "analysis")
    influence, angular = (next(row for row in table if row.curve == label and row.kind == "criterion")
                          for label in ("block influence (ShortGPT)", "angular distance (Gromov et al.)"))
    chosen = next(run for run in depth if run.units == tuple(angular.cut.removeprefix("remove ").split(", ")))
    assert chosen.units == ("layer3.1", "layer3.2")  # resnet20's one run that saves 30%: stage 3's identity blocks
    assert angular.params_saved_pct >= 30
    assert influence.params_saved_pct >= 30 and any(row.matches == influence.curve for row in table)
    report = render_report(root / "analysis", ReportSettings()).read_text()
    assert "Depth criteria (SPEC 22)" in report and "block influence" in report
    assert (root / "analysis" / "figures" / "depth.png").stat().st_size > 10_000
    old = tmp_path / "old"  # a folder written before SPEC 22: one line naming how to add the measures
    shutil.copytree(root / "analysis", old)
    (old / "depth.csv").unlink()
    assert main(["prune", str(old), "--train-data", "digits:train", "--proxy-only", "--target-params", "30",
                 "--curves", "M,angular"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sepgraph: error: ")]
    assert len(errors) == 1 and "has no depth measures (depth.csv, SPEC 22)" in errors[0] and "--resume" in errors[0]


def test_halves_recorded_under_the_field_s_first_name_still_read(tmp_path):
    import json

    from sepgraph.pruning.halves import Halves

    halves = Halves.of(load_dataset("digits:test"), 0.5, 0)
    record = {"data": halves.data, "sha256": halves.digest, "fraction": 0.5, "seed": 0,
              "selection": list(halves.selection), "report": list(halves.report)}
    (tmp_path / "halves.json").write_text(json.dumps(record))
    assert Halves.read(tmp_path) == halves


def test_ablation_scores_are_measured_once_per_folder_and_seed(trained_analysis, monkeypatch):
    from sepgraph.pruning import rows as module

    root, train_set = trained_analysis
    options = PruningOptions(curves=("ablation",), target_params=[20], proxy_only=True)
    first = compare_pruning(root / "analysis", train_set, options, progress=False)
    assert len(list((root / "analysis" / "scores").glob("ablation-*.json"))) >= 1

    def measured_again(*_args, **_kwargs):
        raise AssertionError("the ablation scores were measured again")

    monkeypatch.setattr(module, "ablation_scores", measured_again)
    again = compare_pruning(root / "analysis", train_set, options, progress=False)
    assert [row.pruned_model for row in again] == [row.pruned_model for row in first]
    with pytest.raises(AssertionError, match="measured again"):  # another seed: other recalibration images
        compare_pruning(root / "analysis", train_set, options, recipe=Recipe(seed=5), progress=False)
