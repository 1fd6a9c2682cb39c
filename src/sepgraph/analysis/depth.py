"""Depth measures (SPEC 22): each sample compared with itself across a run of same-shape units, the block influence
of Men et al. (2025) and the angular distance of Gromov et al. (2024), taken in the analysis's own feature pass.

Unlike M, Q, k-NN and the probe, which compare samples with each other at one point, these compare one sample's
representation where a run of units starts with where it ends. They need no pair scan: an observer sees the
batch rows of the runs' end points during the first forward pass of the extraction and keeps one cosine per
sample and run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch

from ..models.capture import Sink
from ..models.points import UnitRun
from ..models.protocol import LayerPoint
from ..parallel.workers import Workers, gather_rows
from ..results.depth_table import DepthRow


class DepthObserver:
    """Keeps, for the extracted rows ``keep`` = [lo, hi) (this rank's), each sample's cosine and angle between the
    input and the output point of every run, in float64 (SPEC 22).

    Attributes:
        points: the runs' end points, in network order: what the extraction hands to :meth:`sink`.
        cosines, angles: (hi - lo, len(runs)) float64, filled as the batches pass; angles / pi, in [0, 1].
    """

    def __init__(self, runs: Sequence[UnitRun], points: Sequence[LayerPoint], keep: tuple[int, int]):
        names = [point.name for point in points]
        ends = sorted({run.input_point for run in runs} | {run.output_point for run in runs}, key=names.index)
        position = {name: k for k, name in enumerate(ends)}
        self.points = [points[names.index(name)] for name in ends]
        self._ending: dict[int, list[tuple[int, int]]] = {}  # end point -> (run, its input point)
        for number, run in enumerate(runs):
            self._ending.setdefault(position[run.output_point], []).append((number, position[run.input_point]))
        self._inputs = {position[run.input_point] for run in runs}
        self._keep = keep
        self.cosines = np.zeros((max(0, keep[1] - keep[0]), len(runs)), dtype=np.float64)
        self.angles = np.zeros_like(self.cosines)
        self._held: dict[int, np.ndarray] = {}

    def sink(self, start: int, stop: int) -> Sink:
        """Where the batch of extracted rows ``start:stop`` of each end point goes."""
        self._held = {}
        return {k: partial(self._see, k, start, stop) for k in range(len(self.points))}

    def _see(self, k: int, start: int, stop: int, rows: torch.Tensor) -> None:
        """One end point's (batch, D) rows: the cosines and angles of the runs ending here, on the whole batch (so a
        row's value never depends on which rank keeps it), then its unit rows held while a later run's output is
        still to come."""
        lo, hi = max(self._keep[0], start), min(self._keep[1], stop)
        if hi <= lo:
            return
        unit = unit_rows64(rows.detach().cpu().numpy())  # a float64 copy: later in-place ops cannot alter it
        kept, mine = slice(lo - self._keep[0], hi - self._keep[0]), slice(lo - start, hi - start)
        for run, source in self._ending.get(k, []):
            cosines, angles = cosine_and_angle(self._held[source], unit)
            self.cosines[kept, run], self.angles[kept, run] = cosines[mine], angles[mine]
        if k in self._inputs:
            self._held[k] = unit

    def gathered(self, workers: Workers) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's cosines and angles in rank order, i.e. in the extraction order's rows (every rank gets
        all)."""
        self._held = {}
        if workers.world == 1:
            return self.cosines, self.angles
        both = torch.from_numpy(np.concatenate([self.cosines, self.angles], axis=1))
        gathered = torch.cat(gather_rows(both, workers)).cpu().numpy()
        return gathered[:, :self.cosines.shape[1]], gathered[:, self.cosines.shape[1]:]


NEAR = 1e-4
"""Where 1 - |cos| is below this, the angle is computed from the unit rows' difference and sum instead of arccos."""


def cosine_and_angle(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's cosine between the float64 unit rows ``u`` and ``v`` (n, D), clamped into [-1, 1], and angle / pi:
    arccos(cos), or 2 atan2(|u - v|, |u + v|) where the cosine is within :data:`NEAR` of +-1 (there arccos loses
    half its digits). A zero row has cosine 0, so angle 1/2, to everything (SPEC 3)."""
    cosines = np.clip(np.einsum("ij,ij->i", u, v), -1.0, 1.0)
    angles = np.arccos(cosines) / np.pi
    near = np.flatnonzero(1 - np.abs(cosines) < NEAR)
    if len(near):
        apart, together = _norms(u[near] - v[near]), _norms(u[near] + v[near])
        angles[near] = 2 * np.arctan2(apart, together) / np.pi
    zero = ~(u.any(axis=1) & v.any(axis=1))
    return np.where(zero, 0.0, cosines), np.where(zero, 0.5, angles)


def _norms(rows: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def unit_rows64(rows: np.ndarray) -> np.ndarray:
    """(n, D) float32 rows as float64 rows of norm 1 (float64 cannot overflow or underflow on float32 values); zero
    rows stay zero."""
    wide = rows.astype(np.float64)
    norms = _norms(wide)
    wide /= np.where(norms > 0, norms, 1.0)[:, None]
    return wide


def depth_rows(runs: Sequence[UnitRun], cosines: np.ndarray, angles: np.ndarray) -> list[DepthRow]:
    """Each run's mean cosine and angular distance (mean angle / pi) over the samples (SPEC 22), from the
    (n, len(runs)) per-sample values; sums exact (``math.fsum``)."""
    count = len(cosines)
    return [DepthRow(run.units, run.input_point, run.output_point, count, math.fsum(cosines[:, k]) / count,
                     math.fsum(angles[:, k]) / count) for k, run in enumerate(runs)]
