"""examples/quickstart.ipynb runs top to bottom (a user's torch Dataset, sg.train, sg.analyze with its figures
inline, to_pandas, sg.prune beside its control), is kept in git without outputs, and says in its first cell which
extra is missing."""

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_the_notebook_runs(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the modularity curves and the CKA heatmap, inline
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "| **unpruned** (control) |" in printed and "| M (ours) | target-params (20) |" in printed
    assert (tmp_path / "quickstart" / "prune" / "report.html").is_file()


def test_its_first_cell_names_a_missing_extra(monkeypatch):
    first = next(cell for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match=r"this notebook needs pandas: pip install 'sepgraph\[notebook\]'"):
        exec(first.source, {})
