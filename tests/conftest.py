"""Shared fixtures: the real data beside the project, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sepgraph.devices import processor
from sepgraph.graph.gemm import DEFAULT_GEMM, choose_engine
from sepgraph.pruning.table import PruningRow
from sepgraph.results.layer_row import LayerRow

DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SHARED_DATA = Path(os.environ.get("SEPGRAPH_SHARED_DATA", DEFAULT_SHARED_DATA))


def pytest_report_header() -> list[str]:
    """The machine in the header of every run, so a failure in a CI log names its processor and engine."""
    return [f"processor: {processor().describe()}",
            f"gemm {DEFAULT_GEMM} -> {choose_engine(DEFAULT_GEMM).library}"]


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (or $SEPGRAPH_SHARED_DATA); skips the test when it is absent."""
    if not (SHARED_DATA / "cifar10-jpeg" / "cifar10_test.npz").is_file():
        pytest.skip(f"shared real data not found at {SHARED_DATA.resolve()} (set SEPGRAPH_SHARED_DATA)")
    return SHARED_DATA.resolve()


def layer_row(index: int = 0, name: str = "p", **values) -> LayerRow:
    """A :class:`LayerRow` with the given measurements and neutral values elsewhere, for tests of the
    stages that read rows (criterion, claims, figures)."""
    neutral = dict(dim=1, hist=(0,) * 10, below_zero=0, mean_sim=0.0, share_below_0_1=0.0, r=0.0, AQ=0.0, EQ=0.0,
                   M=0.0, newman_q=0.0, lu_q_mean=0.0, lu_q_std=0.0, lu_q_batches=(), knn_acc=None, probe_acc=None,
                   cka_prev=None, cka_last=None, shape=(1,), zero_vectors=0, seconds={})
    return LayerRow(index=index, name=name, **(neutral | values))


def pruning_row(**values) -> PruningRow:
    """A :class:`PruningRow` with the given columns and neutral values elsewhere, for tests of what reads tables."""
    neutral = dict(model="m", curve="unpruned", kind="control", rule="", parameter=None, cut="", pruned_model="m",
                   points_removed=0, units_removed=0, init="finetune", accuracy_original=0.0,
                   accuracy_head_refit=0.0, accuracy_finetuned=0.0, accuracy_vs_control=0.0, head_epochs=1,
                   finetune_epochs=2, seed=0, params_original=1, params_pruned=1, params_saved_pct=0.0,
                   flops_original=1, flops_pruned=1, flops_saved_pct=0.0, train_seconds=0.0, weights="")
    return PruningRow(**(neutral | values))
