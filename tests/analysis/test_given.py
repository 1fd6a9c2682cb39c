"""Given features (SPEC 24): ``measure`` gives exactly ``analyze``'s numbers for the same features, from arrays,
functions, an .npz file or a folder of .npy files, in any order; the layer x layer CKA matrix matches the rows' CKAs
to the bit and an independent float64 oracle, in passes of any memory budget, through resumes; bad features are
refused in one line with nothing written."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from oracles import oracle_cka
from sepgraph import GraphSettings, load_dataset
from sepgraph.analysis.cka_matrix import GRAMS_FOLDER, GramStore, cka_matrix
from sepgraph.analysis.features import extract_features
from sepgraph.analysis.run import analyze, measure
from sepgraph.errors import SepgraphError
from sepgraph.graph.peers import CenteredGram
from sepgraph.models.factory import build_model
from sepgraph.models.points import layer_points
from sepgraph.results.cka_table import CKA_FILE, load_cka_matrix
from sepgraph.results.folder import load_results

SMALL = GraphSettings(vertices=200, edges=600, hist_samples=300, lu_batch_size=50, lu_batches=3)
FILES = ("layers.csv", CKA_FILE)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """resnet20 (random weights) on the digits at the lu2022 points: its analysis, and its features as float32
    arrays of every sample by point name (network order)."""
    data = load_dataset("digits:all")
    model = build_model("resnet20", 10, None, 0).model
    points = layer_points(model, "lu2022", None, example_input=data.tensors(np.arange(1), "cifar10"))
    features = {item.point.name: item.features.reshape(len(data.labels), *item.shape)
                for item in extract_features(model, points, data, np.arange(len(data.labels)), normalize="cifar10",
                                             progress=False)}
    analysis = analyze(model, data, SMALL, points="lu2022",
                       out=tmp_path_factory.mktemp("given") / "model", progress=False)
    return analysis, features, data


def same_files(first, second, names=FILES):
    return all((first / name).read_bytes() == (second / name).read_bytes() for name in names)


def test_measure_gives_analyze_numbers_from_any_form(analysed, tmp_path):
    analysis, features, data = analysed
    order = list(features)
    shuffled = dict(reversed(list(features.items())))  # arriving in another order: points= gives the network's
    given = measure(shuffled, data.labels, SMALL, points=order, classes=data.classes, out=tmp_path / "dict",
                    progress=False)
    untimed = [replace(row, seconds={}) for row in analysis.rows]
    assert same_files(analysis.path, given.path) and [replace(row, seconds={}) for row in given.rows] == untimed
    assert given.manifest.given_features and given.manifest.parameters.points == tuple(order)
    assert given.to_pandas()["M"].tolist() == analysis.to_pandas()["M"].tolist()

    np.savez(tmp_path / "features.npz", **features)
    folder = tmp_path / "npy"
    folder.mkdir()
    for number, (name, array) in enumerate(features.items()):
        np.save(folder / f"{number:03d}_{name}.npy", array)
    calls = []
    functions = [(name, lambda name=name: calls.append(name) or features[name]) for name in order]
    for source, points in ((tmp_path / "features.npz", None), (folder, None), (functions, None)):
        result = measure(source, data.labels, SMALL, points=points, out=tmp_path / "other", overwrite=True,
                         progress=False)
        assert same_files(analysis.path, result.path)
    assert calls[len(order)] == order[-1], "the last point is measured first (its Gram gives every cka_last)"
    assert len(calls) == 2 * len(order), "each function is called once to check, once to measure"


def test_the_cka_matrix_holds_the_rows_ckas_and_the_oracle(analysed):
    analysis, features, data = analysed
    rows, columns, matrix = load_cka_matrix(analysis.path)
    assert rows == columns == [row.name for row in analysis.rows] and np.array_equal(matrix, matrix.T)
    for row in analysis.rows:
        assert matrix[row.index, -1] == row.cka_last
        assert row.cka_prev is None or matrix[row.index, row.index - 1] == row.cka_prev
    assert np.allclose(np.diag(matrix), 1.0, atol=1e-6)
    with np.load(next((analysis.path / "edges").glob("*.npz"))) as edges:
        vertices = edges["vertices"]
    flat = [features[name].reshape(len(data.labels), -1)[vertices].astype(np.float64) for name in rows]
    for i, j in ((0, 9), (3, 4), (2, 7), (8, 8)):
        assert matrix[i, j] == pytest.approx(oracle_cka(flat[i], flat[j]), abs=2e-5)
    assert not (analysis.path / GRAMS_FOLDER).exists()


def test_the_matrix_in_passes_of_any_budget(tmp_path):
    rng = np.random.default_rng(0)
    store = GramStore(tmp_path / "grams")
    for position in range(7):
        x = rng.standard_normal((40, 5 + position)).astype(np.float32) * 10.0 ** (position - 3)
        x[3] = 0.0
        similarity = torch.from_numpy(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)).float()
        store.put(position, CenteredGram.of(similarity @ similarity.T, torch.from_numpy(np.linalg.norm(x, axis=1))))
    whole = cka_matrix(store, 7, max_memory=2**30)
    assert np.array_equal(cka_matrix(store, 7, max_memory=1), whole)  # one Gram at a time
    assert np.array_equal(cka_matrix(store, 7, max_memory=3 * store.gram_bytes()), whole)
    assert np.array_equal(cka_matrix(store, 7, store, 7, max_memory=1), whole)  # as a cross matrix


def test_an_older_folder_gets_its_matrix_from_a_resume(analysed, tmp_path):
    analysis, _, data = analysed
    old = tmp_path / "old"
    shutil.copytree(analysis.path, old)
    (old / CKA_FILE).unlink()  # written before SPEC 24: no matrix, no Grams
    resumed = analyze(build_model("resnet20", 10, None, 0).model, data, SMALL,
                      points="lu2022", out=old, resume=True, progress=False)
    assert same_files(analysis.path, resumed.path) and not (old / GRAMS_FOLDER).exists()
    assert load_results(old)[0].status == "complete"


@pytest.mark.parametrize(("bad", "message"), [
    (lambda f: f | {"layer1.0": f["layer1.0"][:-1]}, "point 'layer1.0' has features of 1,796 samples, but labels "
                                                      "has 1,797"),
    (lambda f: f | {"layer2.0": np.where(np.arange(1797)[:, None, None, None] == 5, np.nan, f["layer2.0"])},
     "the features of point 'layer2.0' are not finite .NaN or infinite. at sample 5"),
    (lambda f: f | {"stem.conv": np.full_like(f["stem.conv"], np.inf)}, "'stem.conv' are not finite"),
    (lambda f: list(f.items()) + [("layer1.0", f["layer1.0"])], "point 'layer1.0' is given twice in features"),
    (lambda f: {"x": np.zeros(1797)}, "have shape .1797,. and dtype float64; give real numbers"),
    (lambda f: {"x": lambda: 1 / 0}, "could not be read .ZeroDivisionError"),
    (lambda f: {}, "no features in 'features'"),
])
def test_bad_features_are_refused_before_anything_is_written(analysed, tmp_path, bad, message):
    _, features, data = analysed
    with pytest.raises(SepgraphError, match=message):
        measure(bad(features), data.labels, SMALL, out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("labels", "points", "message"), [
    (np.zeros(1796, dtype=np.int64), None, "has features of 1,797 samples, but labels has 1,796"),
    (np.full(1797, 0.5), None, "labels must be one non-negative integer class per sample"),
    (None, ["layer1.0", "layer1.0"], "point 'layer1.0' is given twice in points"),
    (None, ["layer9"], "points 'layer9' are not among the features"),
])
def test_bad_labels_and_points_are_refused(analysed, tmp_path, labels, points, message):
    _, features, data = analysed
    with pytest.raises(SepgraphError, match=message):
        measure(features, data.labels if labels is None else labels, SMALL, points=points, out=tmp_path / "out",
                progress=False)
    assert not (tmp_path / "out").exists()


def test_the_command_line_measures_a_file(analysed, tmp_path):
    from sepgraph.cli import main

    analysis, features, data = analysed
    np.savez(tmp_path / "features.npz", **features)
    np.save(tmp_path / "labels.npy", data.labels)
    flags = ["--vertices", "200", "--edges", "600", "--hist-samples", "300", "--lu-batch-size", "50",
             "--lu-batches", "3"]
    assert main(["measure", str(tmp_path / "features.npz"), "--labels", str(tmp_path / "labels.npy"), *flags,
                 "--out", str(tmp_path / "cli")]) == 0
    assert same_files(analysis.path, tmp_path / "cli") and (tmp_path / "cli" / "figures" / "cka.png").is_file()


def test_a_folder_is_read_in_its_files_numeric_order(tmp_path):
    from sepgraph.analysis.given import GivenFeatures

    for name in ("10_late", "2_early", "1_first"):
        np.save(tmp_path / f"{name}.npy", np.ones((4, 3), np.float32))
    assert GivenFeatures.of(tmp_path).names == ("first", "early", "late")
    with pytest.raises(SepgraphError, match="no features in"):
        GivenFeatures.of(tmp_path, points=[])
