"""``compare`` (SPEC 24): two models on the same vertices; a model against itself gives its own CKA matrix to the bit;
the comparison renders its heatmap, both curves and compare.html; a rerun resumes."""

import numpy as np

from sepgraph import GraphSettings
from sepgraph.analysis.compare import compare
from sepgraph.report.html import render_comparison
from sepgraph.results.cka_table import load_cka_matrix

SMALL = GraphSettings(vertices=150, edges=500, hist_samples=200, lu_batch_size=50, lu_batches=2)


def test_a_model_against_itself_and_another(tmp_path):
    same = compare("resnet20", "resnet20", "digits:all", SMALL, points="lu2022", out=tmp_path / "same",
                   progress=False)
    rows, columns, matrix = load_cka_matrix(same.matrix)
    own = load_cka_matrix(same.first.path)[2]
    assert np.array_equal(load_cka_matrix(same.second.path)[2], own)
    assert rows == columns == list(same.first.manifest.parameters.points) and np.array_equal(matrix, own)
    assert not list(same.path.glob(".grams*"))

    other = compare("resnet20", "resnet32", "digits:all", SMALL, points="lu2022", out=tmp_path / "other",
                    progress=False)
    rows, columns, matrix = load_cka_matrix(other.matrix)
    assert matrix.shape == (10, 16) and len(columns) == len(other.second.rows) and columns[-1] == "layer3.4"
    assert np.all((matrix > 0) & (matrix <= 1 + 1e-6))
    first_vertices, second_vertices = (np.load(next((a.path / "edges").glob("*.npz")))["vertices"]
                                       for a in (other.first, other.second))
    assert np.array_equal(first_vertices, second_vertices)  # the same vertices
    report = render_comparison(other.path)
    assert (other.path / "figures" / "compare_cka.png").stat().st_size > 10_000
    assert (other.path / "figures" / "compare_curves.png").is_file()
    assert "a/report.html" in report.read_text() and (other.path / "a" / "report.html").is_file()
    again = compare("resnet20", "resnet32", "digits:all", SMALL, points="lu2022", out=tmp_path / "other",
                    resume=True, progress=False)
    assert np.array_equal(load_cka_matrix(again.matrix)[2], matrix)
