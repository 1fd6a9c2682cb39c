"""Shared fixtures: the real data beside the project, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SHARED_DATA = Path(os.environ.get("SEPGRAPH_SHARED_DATA", DEFAULT_SHARED_DATA))


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (or $SEPGRAPH_SHARED_DATA); skips the test when it is absent."""
    if not (SHARED_DATA / "cifar10-jpeg" / "cifar10_test.npz").is_file():
        pytest.skip(f"shared real data not found at {SHARED_DATA.resolve()} (set SEPGRAPH_SHARED_DATA)")
    return SHARED_DATA.resolve()
