import csv
import json
import weakref

import numpy as np
import pytest

from sepgraph import SepgraphError
from sepgraph.analysis import analyze
from sepgraph.cli import main
from sepgraph.results import csv_columns

SMALL = dict(data="digits:all", vertices=200, edges=600, hist_samples=300, lu_batch_size=50, lu_batches=3,
             convention="lu2022", progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "run"
    return analyze("resnet20", out=out, **SMALL)


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_results_folder_layout_and_invariants(finished):
    path = finished.path
    rows = read_csv(path / "layers.csv")
    with open(path / "layers.csv") as handle:
        assert handle.readline().strip().split(",") == csv_columns(10)
    assert [r["name"] for r in rows] == ["stem.conv"] + [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    pairs = 300 * 299 // 2
    for row in rows:
        counts = sum(int(row[f"hist_{b}"]) for b in range(10)) + int(row["below_zero"])
        assert counts == pairs
        assert 0 <= float(row["r"]) <= 1 and -0.5 <= float(row["newman_q"]) <= 1
        assert float(row["M"]) == pytest.approx(float(row["r"]) * float(row["AQ"]) * (1 - float(row["EQ"])))
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["parameters"]["vertices"] == 200
    assert manifest["parameters"]["points"][0] == "stem.conv" and "torch" in manifest["versions"]
    assert set(manifest["seconds"]) >= {"features", "histogram", "subgraph", "lu", "total"}


def test_edge_files(finished):
    files = sorted((finished.path / "edges").glob("*.npz"))
    assert [f.name for f in files[:2]] == ["000_stem.conv.npz", "001_layer1.0.npz"]
    with np.load(files[-1]) as edges:
        assert edges["i"].shape == edges["j"].shape == edges["w"].shape == (600,)
        assert np.all(edges["i"] < edges["j"]) and edges["j"].max() < 200
        assert edges["vertices"].shape == (200,) and np.all(np.diff(edges["vertices"]) > 0)
        assert np.bincount(edges["labels"]).tolist() == [20] * 10
        assert np.all(np.diff(edges["w"]) <= 0)


def test_api_table_is_pandas_friendly(finished):
    pandas = pytest.importorskip("pandas")
    table = finished.to_pandas()
    assert isinstance(table, pandas.DataFrame) and list(table.columns) == csv_columns(10) and len(table) == 10


def test_same_seed_same_bytes(finished, tmp_path):
    again = analyze("resnet20", out=tmp_path / "again", **SMALL)
    assert (again.path / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
    for first in (finished.path / "edges").glob("*.npz"):
        with np.load(first) as a, np.load(again.path / "edges" / first.name) as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_other_seed_other_vertices(finished, tmp_path):
    other = analyze("resnet20", out=tmp_path / "other", seed=1, **SMALL)
    with np.load(next((other.path / "edges").glob("000_*"))) as a, np.load(
            next((finished.path / "edges").glob("000_*"))) as b:
        assert not np.array_equal(a["vertices"], b["vertices"])


def test_resume_recomputes_only_missing_layers(finished, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished.path, copy)
    for row in sorted((copy / "rows").glob("*.json"))[6:]:
        row.unlink()
    (copy / "layers.csv").unlink()
    stamp = (copy / "rows" / "000_stem.conv.json").stat().st_mtime_ns
    with pytest.raises(SepgraphError, match="not empty; pass --resume"):
        analyze("resnet20", out=copy, **SMALL)
    with pytest.raises(SepgraphError, match=r"parameters changed \(edges: 600 -> 500\)"):
        analyze("resnet20", out=copy, resume=True, **{**SMALL, "edges": 500})
    analyze("resnet20", out=copy, resume=True, **SMALL)
    assert (copy / "rows" / "000_stem.conv.json").stat().st_mtime_ns == stamp
    assert (copy / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
    analyze("resnet20", out=copy, resume=True, **SMALL)  # nothing missing: nothing recomputed
    assert (copy / "rows" / "000_stem.conv.json").stat().st_mtime_ns == stamp
    analyze("resnet20", out=copy, overwrite=True, **SMALL)
    assert (copy / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()


@pytest.mark.parametrize("change, message", [
    ({"edges": 19901}, "--edges 19901 must be between 1 and the 19900 pairs"),
    ({"vertices": 5, "edges": 3}, "fewer than the 10 classes"),
    ({"vertices": 5000}, "cannot choose 5000 vertices"),
    ({"lu_k": 50}, "--lu-k 50"),
    ({"bins": 0}, "--bins"),
])
def test_bad_parameters_fail_before_writing(tmp_path, change, message):
    with pytest.raises(SepgraphError, match=message):
        analyze("resnet20", out=tmp_path / "never", **{**SMALL, **change})
    assert not (tmp_path / "never").exists()


def test_analyze_command(tmp_path, capsys):
    code = main(["analyze", "--model", "resnet20", "--data", "digits:all", "--vertices", "100", "--edges", "300",
                 "--hist-samples", "200", "--lu-batch-size", "50", "--lu-batches", "2", "--convention", "blocks",
                 "--out", str(tmp_path / "cli")])
    assert code == 0
    out = capsys.readouterr().out
    assert "10 layer points" in out and str(tmp_path / "cli") in out
    assert len(read_csv(tmp_path / "cli" / "layers.csv")) == 10


@pytest.mark.parametrize("spill", [False, True])
def test_each_point_is_released_before_the_next_is_extracted(tmp_path, monkeypatch, spill):
    import sepgraph.analysis

    extract, alive = sepgraph.analysis.extract_features, []

    def watched(*args, **kwargs):
        for item in extract(*args, **kwargs):
            features = weakref.ref(item.features)
            yield item
            del item  # the caller asks for the next point: nothing may hold this one any more
            alive.append(features() is not None)

    monkeypatch.setattr(sepgraph.analysis, "extract_features", watched)
    analyze("resnet20", out=tmp_path / "run", spill_dir=tmp_path if spill else None, **SMALL)
    assert alive == [False] * 10


def test_spilled_analysis_is_byte_identical(finished, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    spilled = analyze("resnet20", out=tmp_path / "spilled", spill_dir=spill, **SMALL)
    assert (spilled.path / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
    assert spilled.manifest["run"]["spill_dir"] == str(spill) and list(spill.iterdir()) == []
