"""The engines of the tile products (SPEC 3): the choice is a rule, overridable and checked; both engines
agree with a float64 oracle to float32 rounding on random and adversarial rows; threads change no byte."""

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
