"""The same analysis under ``--gemm auto`` whatever else the process is (docs/robustness.md): one or two threads,
hash seeds 5 and 17, scikit-learn (and with it scipy's own OpenBLAS) imported before sepgraph or not; four runs
that pair every two of those settings both ways write the same bytes."""

import os
import subprocess
import sys

from sepgraph.graph.gemm import choose_engine

ARGS = ["analyze", "--model", "resnet20", "--data", "digits:all", "--normalize", "none", "--vertices", "300",
        "--edges", "1500", "--lu-batch-size", "100", "--lu-batches", "3", "--max-memory", "200M", "--no-report"]

RUN = """
import sys
if sys.argv[1] == "sklearn first":
    import sklearn.datasets
from sepgraph.cli import main
sys.exit(main(sys.argv[2:]))
"""

WAYS = [("1", "5", "sepgraph first"), ("1", "17", "sklearn first"), ("2", "5", "sklearn first"),
        ("2", "17", "sepgraph first")]


def test_auto_writes_the_same_bytes_every_way(tmp_path):
    folders = []
    for threads, seed, imported in WAYS:
        out = tmp_path / f"threads{threads}-seed{seed}-{imported.replace(' ', '-')}"
        environment = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", RUN, imported, *ARGS, "--out", str(out)], env=environment,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        folders.append(out)
    first, *others = folders
    edges = sorted(path.name for path in (first / "edges").iterdir())
    assert edges and (first / "layers.csv").is_file()
    for other in others:
        assert (other / "layers.csv").read_bytes() == (first / "layers.csv").read_bytes(), other.name
        assert (other / "depth.csv").read_bytes() == (first / "depth.csv").read_bytes(), other.name
        assert sorted(path.name for path in (other / "edges").iterdir()) == edges
        for name in edges:
            assert (other / "edges" / name).read_bytes() == (first / "edges" / name).read_bytes(), (other.name, name)
    assert f'"{choose_engine("auto").library}"' in (first / "manifest.json").read_text()
