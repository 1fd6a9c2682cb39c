"""`sepgraph analyze` on the shared resnet20 and the CIFAR-10 JPEG export (skipped when absent)."""

import csv
import json

import pytest

from sepgraph.cli import main


@pytest.mark.integration
def test_analyze_shared_resnet20(shared_data, tmp_path, capsys):
    out = tmp_path / "resnet20"
    code = main(["analyze", "--model", "resnet20", "--weights", f"{shared_data}/weights/resnet20-12fca82f.th",
                 "--data", f"npz:{shared_data}/cifar10-jpeg/cifar10_test.npz", "--normalize", "imagenet",
                 "--vertices", "500", "--edges", "3000", "--hist-samples", "1000", "--lu-batch-size", "200",
                 "--out", str(out)])
    assert code == 0
    with open(out / "layers.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 19
    for row in rows:
        assert sum(int(row[f"hist_{b}"]) for b in range(10)) + int(row["below_zero"]) == 1000 * 999 // 2
        assert int(row["below_zero"]) == 0  # every paper point is after a ReLU
        assert 0 < float(row["r"]) <= 1 and float(row["AQ"]) > 0
    first, last = rows[0], rows[-1]
    # the trained network separates classes at its end far better than at its stem
    assert float(last["r"]) > 0.6 > float(first["r"])
    assert float(last["M"]) > 5 * float(first["M"]) and float(last["lu_q_mean"]) > float(first["lu_q_mean"])
    # SPEC 8: every removable block of the shared resnet20 gets a contribution on both curves
    manifest = json.loads((out / "manifest.json").read_text())
    assert [u["name"] for u in manifest["removable_units"]] == [
        "layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    # SPEC 21: an analysis of the whole test set may not choose cuts whose accuracies that set reports
    test, train = (f"npz:{shared_data}/cifar10-jpeg/cifar10_{part}.npz" for part in ("test", "train"))
    nothing = ["--epochs", "0", "--head-epochs", "0", "--rule", "delta=0.5", "--no-augment"]
    assert main(["prune", str(out), "--train-data", train, *nothing]) == 2
    assert "in the report half whose accuracies would be reported" in capsys.readouterr().err
    out = tmp_path / "halves"
    code = main(["prune", str(out), "--model", "resnet20", "--weights", f"{shared_data}/weights/resnet20-12fca82f.th",
                 "--data", test, "--normalize", "imagenet", "--vertices", "500", "--edges", "3000", "--hist-samples",
                 "1000", "--lu-batch-size", "200", "--train-data", train, *nothing])
    assert code == 0
    halves = json.loads((out / "halves.json").read_text())
    assert len(halves["selection"]) == len(halves["report"]) == 5000
    with open(out / "pruning.csv") as handle:
        table = list(csv.DictReader(handle))
    control = table[0]
    assert (control["curve"], control["kind"]) == ("unpruned", "control")
    assert float(control["accuracy_finetuned"]) == float(control["accuracy_original"])  # nothing trained
    assert 79.5 < float(control["accuracy_original"]) < 82.5  # the report half of a set the model scores 81.03% on
    for row in table[1:]:
        assert row["pruned_model"].startswith("resnet20+remove=") and float(row["params_saved_pct"]) > 0
        assert float(row["accuracy_vs_control"]) == pytest.approx(
            float(row["accuracy_finetuned"]) - float(control["accuracy_finetuned"]))
    recommendation = json.loads((out / "recommendation.json").read_text())
    assert len(recommendation["M"]["contributions"]) == 7 and recommendation["M"]["rule"] == "delta"
