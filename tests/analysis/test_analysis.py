import csv
import json
import weakref
from dataclasses import replace

import numpy as np
import pytest

from sepgraph import GraphSettings, LayerRow, RunSettings, SepgraphError
from sepgraph.analysis.run import analyze
from sepgraph.cli import main

SMALL = GraphSettings(vertices=200, edges=600, hist_samples=300, lu_batch_size=50, lu_batches=3)


def small(out, settings=SMALL, **options):
    """resnet20 (random weights) on all digits at the lu2022 points, with SMALL's graph."""
    return analyze("resnet20", "digits:all", settings, points="lu2022", out=out, progress=False, **options)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return small(tmp_path_factory.mktemp("analysis") / "run")


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_results_folder_layout_and_invariants(finished):
    path = finished.path
    rows = read_csv(path / "layers.csv")
    with open(path / "layers.csv") as handle:
        assert handle.readline().strip().split(",") == LayerRow.csv_columns(10)
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
    assert set(manifest["seconds"]) == {"features", "similarity", "modularity", "peers", "total"}


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
    assert isinstance(table, pandas.DataFrame) and list(table.columns) == LayerRow.csv_columns(10) and len(table) == 10


def test_same_seed_same_bytes(finished, tmp_path):
    again = small(tmp_path / "again")
    assert (again.path / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
    for first in (finished.path / "edges").glob("*.npz"):
        with np.load(first) as a, np.load(again.path / "edges" / first.name) as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_other_seed_other_vertices(finished, tmp_path):
    other = small(tmp_path / "other", replace(SMALL, seed=1))
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
        small(copy)
    with pytest.raises(SepgraphError, match=r"parameters changed \(edges: 600 -> 500\)"):
        small(copy, replace(SMALL, edges=500), resume=True)
    small(copy, resume=True)
    assert (copy / "rows" / "000_stem.conv.json").stat().st_mtime_ns == stamp
    assert (copy / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
    small(copy, resume=True)  # nothing missing: nothing recomputed
    assert (copy / "rows" / "000_stem.conv.json").stat().st_mtime_ns == stamp
    small(copy, overwrite=True)
    assert (copy / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()


@pytest.mark.parametrize("change, message", [
    ({"edges": 19901}, "edges 19901 must be between 1 and the 19900 pairs"),
    ({"edges": 0}, "edges 0 must be between 1"),
    ({"vertices": 1}, "vertices must be at least 2"),
    ({"lu_k": 50}, "lu_k 50"),
    ({"lu_batches": 0}, "lu_batches 0"),
    ({"bins": 0}, "bins"),
    ({"hist_samples": 1}, "hist_samples"),
    ({"vertex_choice": "random"}, "vertex_choice 'random'"),
    ({"seed": -1}, "seed"),
])
def test_graph_settings_check_themselves(change, message):
    with pytest.raises(SepgraphError, match=message):
        replace(SMALL, **change)


@pytest.mark.parametrize("change, message", [
    ({"vertices": 5, "edges": 3, "knn_k": 2}, "fewer than the 10 classes"),
    ({"vertices": 5000}, "cannot choose 5000 vertices"),
])
def test_settings_the_data_cannot_meet_fail_before_writing(tmp_path, change, message):
    with pytest.raises(SepgraphError, match=message):
        small(tmp_path / "never", replace(SMALL, **change))
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
    import sepgraph.analysis.run

    extract, alive = sepgraph.analysis.run.extract_features, []

    def watched(*args, **kwargs):
        for item in extract(*args, **kwargs):
            features = weakref.ref(item.features)
            yield item
            del item  # the caller asks for the next point: nothing may hold this one any more
            alive.append(features() is not None)

    monkeypatch.setattr(sepgraph.analysis.run, "extract_features", watched)
    small(tmp_path / "run", run=RunSettings(spill_dir=tmp_path if spill else None))
    assert alive == [False] * 10  # the 10 points, from the last: no extraction apart for cka_last


def test_spilled_analysis_is_byte_identical(finished, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    spilled = small(tmp_path / "spilled", run=RunSettings(spill_dir=spill))
    assert (spilled.path / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
    assert spilled.manifest.run.spill_dir == str(spill) and list(spill.iterdir()) == []


def test_a_failed_run_says_so_in_its_manifest(tmp_path, monkeypatch):
    import sepgraph.analysis.run

    measure, calls = sepgraph.analysis.run.measure_point, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise SepgraphError("the third point failed")
        return measure(*args, **kwargs)

    monkeypatch.setattr(sepgraph.analysis.run, "measure_point", failing)
    with pytest.raises(SepgraphError, match="third point"):
        small(tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"] == "SepgraphError: the third point failed"
    monkeypatch.undo()
    finished = small(tmp_path / "run", resume=True)
    assert finished.manifest.status == "complete" and finished.manifest.error is None


def test_rows_travel_as_layer_rows(finished):
    row = finished.rows[4]
    assert isinstance(row, LayerRow) and len(row.hist) == 10 and len(row.lu_q_batches) == 3
    assert row.lu_q_mean == pytest.approx(np.mean(row.lu_q_batches))
    assert LayerRow.from_json(json.loads(json.dumps(row.to_json()))) == row
    stored = json.loads(next((finished.path / "rows").glob("004_*.json")).read_text())
    assert set(stored) == {field for field in row.to_json()} and "lu_q" not in stored


def test_older_formats_are_read_with_empty_peer_measures(finished, tmp_path):
    """Format 1 (hist_k keys, share_below_0.1, lu_q for the batches) and format 2 (no knn_acc, probe_acc,
    cka_prev, cka_last) are read; resuming them asks for --overwrite (their parameters lack knn_k)."""
    import shutil

    from sepgraph.results.folder import load_results

    old = tmp_path / "old"
    shutil.copytree(finished.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    parameters = {k: v for k, v in manifest["parameters"].items() if k not in ("knn_k", "probe_ridge")}
    (old / "manifest.json").write_text(json.dumps(manifest | {"format_version": 1, "parameters": parameters}))
    for path in (old / "rows").glob("*.json"):
        row = json.loads(path.read_text())
        hist = row.pop("hist")
        row |= {f"hist_{b}": count for b, count in enumerate(hist)}
        row["share_below_0.1"], row["lu_q"] = row.pop("share_below_0_1"), row.pop("lu_q_batches")
        row["wrong_edge_share"] = 1 - row["r"]
        for key in ("knn_acc", "probe_acc", "cka_prev", "cka_last"):
            del row[key]
        path.write_text(json.dumps(row))
    empty = dict(knn_acc=None, probe_acc=None, cka_prev=None, cka_last=None)
    assert load_results(old)[1] == [replace(row, **empty) for row in finished.rows]
    with pytest.raises(SepgraphError, match="results format 1, this sepgraph writes 3; use --overwrite"):
        small(old, resume=True)
    (old / "manifest.json").write_text(json.dumps(manifest | {"format_version": 7}))
    with pytest.raises(SepgraphError, match="results format 7; this sepgraph reads formats 1, 2, 3"):
        load_results(old)


def test_the_manifest_is_one_typed_record(finished):
    """manifest.json reads back as a Manifest whose JSON form is the file's, key for key and in order; older
    formats read with today's attributes (their peer measures' settings at the defaults)."""
    from sepgraph.results.folder import load_results
    from sepgraph.results.formats import upgraded_manifest
    from sepgraph.results.manifest import Manifest

    stored = json.loads((finished.path / "manifest.json").read_text())
    manifest = load_results(finished.path)[0]
    assert manifest == finished.manifest and list(manifest.to_json().items()) == list(stored.items())
    assert manifest.parameters.settings == SMALL
    assert manifest.layers[4].name == finished.rows[4].name and manifest.run.peak_rss_bytes[0] > 0
    old = {k: v for k, v in stored["parameters"].items() if k not in ("knn_k", "probe_ridge", "gemm", "data_sha256")}
    first_run = {"device": "cpu", "max_memory": 1 << 30, "batch_size": 256, "torch_threads": 2}  # format 1's
    upgraded = Manifest.from_json(upgraded_manifest({k: v for k, v in stored.items() if k != "removable_units"}
                                                    | {"format_version": 1, "parameters": old, "run": first_run}))
    assert upgraded.parameters.settings.knn_k == 10 and upgraded.parameters.gemm is None
    assert upgraded.removable_units is None and not upgraded.given_features
    assert upgraded.run.processes == 1 and upgraded.run.tile_rows is None
    few = Manifest.from_json(upgraded_manifest(stored | {"parameters": old | {"vertices": 8, "edges": 20}}))
    assert few.parameters.settings.knn_k == 7  # k-NN was never measured; a default its vertices allow


def test_an_interrupted_run_says_so(tmp_path, monkeypatch, capsys):
    import sepgraph.analysis.run

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sepgraph.analysis.run, "measure_point", interrupted)
    argv = ["analyze", "--model", "resnet20", "--data", "digits:all", "--vertices", "100", "--edges", "300",
            "--hist-samples", "200", "--lu-batch-size", "50", "--lu-batches", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("sepgraph: interrupted")
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "interrupted"


def test_resume_with_gaps_gives_the_same_table(finished, tmp_path):
    """Points missing in the middle: their cka_prev needs the Gram of a point that is not recomputed."""
    import shutil

    copy = tmp_path / "gaps"
    shutil.copytree(finished.path, copy)
    for stem in ("003_", "004_", "007_"):
        next((copy / "rows").glob(f"{stem}*.json")).unlink()
    (copy / "layers.csv").unlink()
    resumed = small(copy, resume=True)
    assert [replace(r, seconds={}) for r in resumed.rows] == [replace(r, seconds={}) for r in finished.rows]
    assert (copy / "layers.csv").read_bytes() == (finished.path / "layers.csv").read_bytes()
