"""Unit rows for cosine similarity, and row norms that are exact at any finite scale (SPEC 3)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import SepgraphError

SMALLEST_FLOAT32_NORM = 1e-12
"""Rows with a smaller (or non-finite) float32 norm are normalised in float64. Entries whose squares underflow
(below 1e-19) add at most D x 1.2e-38 to a squared norm of at least 1e-24: under 1e-7 relative for D <= 1e7."""


def unit_rows(features: torch.Tensor | np.ndarray, inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-normalise features for cosine similarity (SPEC 3).

    Args:
        features: (N, D) float32; with ``inplace`` a float32 tensor or array is overwritten.

    Returns:
        (N, D) float32 unit rows (zero rows stay zero, so their similarity to every
        vector is 0) and the (N,) bool mask of zero rows. Rows of any finite scale are
        normalised: rows below :data:`SMALLEST_FLOAT32_NORM` or with a non-finite float32 norm go
        through float64.
    """
    tensor = torch.as_tensor(features)
    if tensor.ndim != 2:
        raise SepgraphError(f"features must be a 2-D (samples x dims) array, got shape {tuple(tensor.shape)}")
    if not inplace or tensor.dtype != torch.float32:
        tensor = tensor.to(torch.float32, copy=True)
    norms, unsafe = float32_row_norms(tensor)
    rows = torch.nonzero(unsafe).squeeze(1)  # a NaN or Inf entry makes its row's norm non-finite: among these
    if len(rows) and not all(bool(torch.isfinite(tensor[chunk]).all()) for chunk in rows.split(1024)):
        raise SepgraphError("features contain NaN or Inf (did the model diverge, or the input overflow?)")
    norms = norms.unsqueeze(1)
    tensor.div_(norms.masked_fill_(unsafe.unsqueeze(1), 1.0))
    zero = torch.zeros(len(tensor), dtype=torch.bool, device=tensor.device)
    if len(rows):
        exact = tensor[rows].double()
        exact_norms = torch.linalg.vector_norm(exact, dim=1, keepdim=True)
        zero[rows] = (exact_norms == 0).squeeze(1)
        tensor[rows] = exact.div_(exact_norms.masked_fill_(exact_norms == 0, 1.0)).float()
    return tensor, zero


def float32_row_norms(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) float32 norms of the rows of (N, D) float32 ``tensor`` and the (N,) bool mask of those not to trust.

    A float32 sum of squares overflows (inf) for entries near 1e19 and loses entries below 1e-19 (their squares
    are subnormal), which matters only when the norm itself is tiny: such rows (zero rows too) are marked, for
    float64 (:func:`unit_rows`, :func:`exact_row_norms`); every other norm is used as it is.
    """
    norms = torch.linalg.vector_norm(tensor, dim=1)
    return norms, ~torch.isfinite(norms) | (norms < SMALLEST_FLOAT32_NORM)


def exact_row_norms(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N,) float64 row norms of (N, D) float32 features: float32 where that is exact enough, float64 where not."""
    tensor = torch.as_tensor(features)
    norms, unsafe = float32_row_norms(tensor)
    norms = norms.double()
    rows = torch.nonzero(unsafe).squeeze(1)
    if len(rows):
        norms[rows] = torch.linalg.vector_norm(tensor[rows].double(), dim=1)
    return norms
