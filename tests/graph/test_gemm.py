"""The engines of the tile products (SPEC 3): the choice is a rule, overridable and checked; both engines
agree with a float64 oracle to float32 rounding on random and adversarial rows; threads change no byte."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sepgraph.errors import SepgraphError
from sepgraph.graph import gemm
from sepgraph.graph.gemm import CHECKED_OPENBLAS, GemmEngine, choose_engine
from sepgraph.graph.rows import unit_rows
from sepgraph.graph.scan import ScanRequest, scan_pairs

needs_openblas = pytest.mark.skipif(gemm.numpy_openblas() is None, reason="numpy here has no OpenBLAS")


def test_a_named_engine_is_taken_and_an_unknown_one_named_in_the_error():
    assert choose_engine("torch").name == "torch"
    with pytest.raises(SepgraphError, match="gemm 'mkl' is not an engine; use one of auto, torch, openblas"):
        choose_engine("mkl")
    with pytest.raises(SepgraphError, match="CPU only"):
        choose_engine("openblas", torch.device("cuda"))


@pytest.mark.parametrize(("version", "intel", "expected"), [
    ("0.3.31.188.0", False, "openblas"), ("0.4.0", False, "openblas"),  # checked, on an AMD processor
    ("0.3.20", False, "torch"), ("0.3.30.dev", False, "torch"),  # older than the version checked here
    ("0.3.31", True, "torch"),  # Intel: torch's MKL has its AVX-512 path
])
def test_auto_is_a_rule_of_the_machine(monkeypatch, version, intel, expected):
    monkeypatch.setattr(gemm, "numpy_openblas", lambda: (version, "SkylakeX"))
    monkeypatch.setattr(gemm, "_intel_cpu", lambda: intel)
    chosen = choose_engine("auto", torch.device("cpu"))
    assert chosen.name == expected
    assert chosen == choose_engine("auto", torch.device("cpu"))  # the same on every call
    assert choose_engine("auto", torch.device("cuda")).name == "torch"
    if expected == "openblas":
        assert chosen.library == f"openblas {version} SkylakeX"


def test_auto_falls_back_to_torch_without_openblas(monkeypatch):
    monkeypatch.setattr(gemm, "numpy_openblas", lambda: None)
    monkeypatch.setattr(gemm, "_intel_cpu", lambda: False)
    assert choose_engine("auto").name == "torch"
    with pytest.raises(SepgraphError, match="not built with OpenBLAS"):
        choose_engine("openblas")


def test_the_checked_version_is_the_one_these_tests_ran_on_or_older():
    found = gemm.numpy_openblas()
    if found is not None:
        assert gemm._openblas_checked(found[0]) or tuple(map(int, found[0].split(".")[:3])) < CHECKED_OPENBLAS


def rows_of(kind: str, rng: np.random.Generator) -> np.ndarray:
    """(700, 300) float32 rows: random, with duplicates and zero rows, or at extreme scales."""
    rows = rng.standard_normal((700, 300)).astype(np.float32)
    if kind == "adversarial":
        rows[100:200] = rows[0]  # ties
        rows[300:310] = 0.0  # zero rows
        rows[400:500] *= np.float32(1e-30)
        rows[500:600] *= np.float32(1e30)
    return rows


@needs_openblas
@pytest.mark.parametrize("kind", ["random", "adversarial"])
@pytest.mark.parametrize("name", ["torch", "openblas"])
def test_each_engine_agrees_with_float64(name, kind):
    normed, _ = unit_rows(torch.from_numpy(rows_of(kind, np.random.default_rng(3))))
    exact = normed.double() @ normed.double().T
    engine = choose_engine(name)
    for left, right, diagonal in ((normed[:600], normed, False), (normed, normed, True)):
        product = engine.product(left, right, diagonal=diagonal).double()
        wanted = exact[: len(left)]
        if diagonal:
            product, wanted = product.triu(), wanted.triu()
        assert product.shape == wanted.shape
        assert float((product - wanted).abs().max()) < 300 * 2.0 ** -24  # D = 300 float32 roundings


@needs_openblas
def test_openblas_bytes_do_not_depend_on_threads():
    normed, _ = unit_rows(torch.from_numpy(rows_of("random", np.random.default_rng(4))))
    one, two = (GemmEngine("openblas", "openblas", threads) for threads in (1, 2))
    for left, diagonal in ((normed[:600], False), (normed, True)):
        assert torch.equal(one.product(left, normed, diagonal), two.product(left, normed, diagonal))


@needs_openblas
def test_a_scan_on_openblas_counts_what_the_oracle_counts():
    normed, _ = unit_rows(torch.from_numpy(rows_of("random", np.random.default_rng(5))))
    request = ScanRequest(bins=10, edges=500, vertices=400)
    threads = torch.get_num_threads()
    try:
        scans = []
        for count in (1, 2):
            torch.set_num_threads(count)
            scans.append(scan_pairs(normed, request, max_memory=64 * 256 * 256, gemm="openblas"))  # tiles of 256
    finally:
        torch.set_num_threads(threads)
    first, second = scans
    assert np.array_equal(first.histogram.counts, second.histogram.counts)
    assert np.array_equal(first.subgraph.w, second.subgraph.w) and np.array_equal(first.subgraph.i, second.subgraph.i)
    similarity = (normed.double() @ normed.double().T).numpy()
    upper = similarity[np.triu_indices(len(similarity), 1)]
    assert first.histogram.pairs == len(upper)
    assert abs(int(first.histogram.below_zero) - int((upper < 0).sum())) <= 2  # float32 against float64 at edges


class FakeController:
    """threadpoolctl's listing of loaded BLAS libraries, in a given order."""

    def __init__(self, pools):
        self.pools = pools

    def info(self):
        return self.pools


@needs_openblas
@pytest.mark.parametrize("scipy_first", [True, False])
def test_numpy_openblas_is_numpy_own_whatever_the_listing_order(monkeypatch, scipy_first):
    """scipy's copy of OpenBLAS (older, in a sibling folder of the same site-packages) is never taken for numpy's."""
    own = next(name for name in gemm._numpy_blas_files() if "openblas" in name)
    site = Path(np.__file__).resolve().parents[1]
    numpy_pool = {"internal_api": "openblas", "filepath": str(site / "numpy.libs" / own), "version": "0.3.31.188.0",
                  "architecture": "Zen"}
    scipy_pool = {"internal_api": "openblas", "filepath": str(site / "scipy.libs" / "libscipy_openblas-6cdc3b4a.so"),
                  "version": "0.3.30", "architecture": "Haswell"}
    listing = [scipy_pool, numpy_pool] if scipy_first else [numpy_pool, scipy_pool]
    monkeypatch.setattr(gemm, "_controller", lambda: FakeController(listing))
    gemm.numpy_openblas.cache_clear()
    try:
        assert gemm.numpy_openblas() == ("0.3.31.188.0", "Zen")
    finally:
        gemm.numpy_openblas.cache_clear()


def test_a_library_outside_numpy_dependencies_is_not_numpy_own(tmp_path):
    assert not gemm._is_numpy_library("/usr/lib/libopenblas.so.0", frozenset({"libscipy_openblas64_-1.so"}))
    assert gemm._is_numpy_library("/any/where/libopenblas.so.0", frozenset({"libopenblas.so.0"}))
    not_elf = tmp_path / "module.dylib"
    not_elf.write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))
    assert gemm.needed_libraries(not_elf) is None  # then numpy's own vendored folder, exactly, decides
    numpy_dir = Path(np.__file__).resolve().parent
    assert gemm._is_numpy_library(str(numpy_dir.parent / "numpy.libs" / "libopenblas.so"), None)
    assert not gemm._is_numpy_library(str(numpy_dir.parent / "scipy.libs" / "libopenblas.so"), None)


LISTING = """
import sys
if sys.argv[1] == "before":
    import scipy.linalg, sklearn.datasets
from sepgraph.graph import gemm
if sys.argv[1] == "after":
    import scipy.linalg, sklearn.datasets
sklearn.datasets.load_digits()
gemm._controller.cache_clear()
order = [pool["filepath"] for pool in gemm._controller().info() if pool.get("internal_api") == "openblas"]
print(order, gemm.choose_engine("auto").library)
"""


@needs_openblas
@pytest.mark.parametrize("imported", ["before", "after"])
def test_auto_chooses_the_same_in_every_process_whatever_was_imported(imported):
    """In fresh processes with scipy and scikit-learn imported before or after sepgraph, under several hash seeds:
    first the seeds are shown to list the libraries in different orders (so the test cannot pass by luck), then
    every process chose the same engine."""
    pytest.importorskip("sklearn")
    seen: dict[str, set[str]] = {}
    for seed in range(12):
        result = subprocess.run([sys.executable, "-c", LISTING, imported], capture_output=True, text=True,
                                env={**os.environ, "PYTHONHASHSEED": str(seed)}, check=True)
        order, _, engine = result.stdout.strip().rpartition("] ")
        seen.setdefault(order, set()).add(engine)
        if len(seen) > 1 and seed >= 4:
            break
    assert len(seen) > 1, f"every hash seed listed the libraries in one order {list(seen)}: the test proves nothing"
    assert len(set.union(*seen.values())) == 1, seen
