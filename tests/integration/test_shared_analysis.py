"""`sepgraph analyze` on the shared resnet20 and the CIFAR-10 JPEG export (skipped when absent)."""

import csv

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
