"""Which samples an analysis uses (SPEC 2, 4, 7): the vertices, Lu et al.'s batches, and the order in
which an analysis extracts their features.

Every choice is a pure function of the labels, the settings and the seed, so the same seed gives the
same samples on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import SepgraphError
from ..settings import GraphSettings


def select_vertices(
    labels: np.ndarray, count: int, method: str = "stratified", seed: int = 0, num_classes: int | None = None
) -> np.ndarray:
    """Choose the analysis's vertices (SPEC 2), once per analysis.

    Args:
        labels: (N,) int64 classes of the whole dataset.
        count: number of vertices; ``stratified`` gives each class ``count // C`` samples and
            one more to the first ``count % C`` classes.
        method: ``stratified`` (seeded) or ``first`` (the first ``count`` in dataset order).
        seed: seed of the stratified choice.
        num_classes: C; defaults to ``labels.max() + 1``.

    Returns:
        (count,) int64 dataset indices, ascending.
    """
    labels = np.asarray(labels)
    if count < 1 or count > len(labels):
        raise SepgraphError(f"cannot choose {count} vertices from a dataset of {len(labels)} samples")
    if method == "first":
        return np.arange(count, dtype=np.int64)
    if method != "stratified":
        raise SepgraphError(f"unknown vertex choice {method!r}; use 'stratified' or 'first'")
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if count < num_classes:
        raise SepgraphError(
            f"{count} vertices are fewer than the {num_classes} classes; stratified choice needs at least one per class"
        )
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        wanted = count // num_classes + (label < count % num_classes)
        if len(members) < wanted:
            raise SepgraphError(
                f"class {label} has {len(members)} samples but stratified choice of {count} vertices needs "
                f"{wanted}; choose fewer vertices or --vertex-choice first"
            )
        chosen.append(rng.choice(members, size=wanted, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def check_fraction(fraction: float) -> None:
    """A selection half's share of each class (SPEC 21): strictly between 0 and 1."""
    if not 0 < fraction < 1:
        raise SepgraphError(f"selection_fraction {fraction:g}: the share of the evaluation images that chooses the "
                            "cuts must lie strictly between 0 and 1 (e.g. 0.5)", arguments=("selection_fraction",))


def split_halves(labels: np.ndarray, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation images split into a *selection* half and a *report* half (SPEC 21), stratified and seeded:
    from each class of n samples, round(fraction x n) drawn by ``seed`` go to the selection half (at least one and
    at most n - 1 where n >= 2), the rest to the report half.

    Returns:
        (selection, report): int64 dataset indices, each ascending, disjoint, together every sample.
    """
    check_fraction(fraction)
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 2])
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(max(round(fraction * len(members)), 1), max(len(members) - 1, 1))
        chosen.append(rng.choice(members, size=count, replace=False))
    selection = np.sort(np.concatenate(chosen)).astype(np.int64)
    return selection, np.setdiff1d(np.arange(len(labels), dtype=np.int64), selection)


def lu_batch_indices(
    labels: np.ndarray, batch_size: int = 500, batches: int = 5, method: str = "stratified", seed: int = 0,
    num_classes: int | None = None,
) -> list[np.ndarray]:
    """Disjoint vertex batches for Lu et al.'s modularity (SPEC 7).

    ``stratified`` (default): ``batches * batch_size`` samples chosen as in
    :func:`select_vertices`, then dealt out class by class so every batch holds
    equal shares of each class. ``first``: consecutive slices of the first samples
    (Lu et al.'s script).

    Returns:
        ``batches`` arrays of (batch_size,) int64 dataset indices, each ascending.
    """
    if batch_size < 2 or batches < 1:
        raise SepgraphError(f"Lu et al.'s Q needs batches of at least 2 samples, got {batches} x {batch_size}")
    chosen = select_vertices(labels, batch_size * batches, method, seed, num_classes)
    if method == "first":
        return [np.sort(part) for part in np.split(chosen, batches)]
    shuffled = np.random.default_rng([seed, 1]).permutation(chosen)
    by_class = shuffled[np.argsort(np.asarray(labels)[shuffled], kind="stable")]
    return [np.sort(by_class[b::batches]) for b in range(batches)]


@dataclass
class SampleSets:
    """The samples of one analysis (SPEC 2, 7) as dataset indices.

    ``order`` is the union whose features are extracted once per layer point: the vertices
    first, so that their unit rows are a slice rather than a copy, then the other samples in
    index order.
    """

    order: np.ndarray
    hist_indices: np.ndarray
    vertices: np.ndarray
    batches: list[np.ndarray]
    labels: np.ndarray

    @classmethod
    def choose(cls, labels: np.ndarray, num_classes: int, settings: GraphSettings) -> SampleSets:
        """The samples ``settings`` ask for among a dataset's (N,) int64 ``labels``."""
        choice, seed = settings.vertex_choice, settings.seed
        vertex_set = select_vertices(labels, settings.vertices, choice, seed, num_classes)
        if settings.hist_samples == "all":
            hist_set = np.arange(len(labels), dtype=np.int64)
        else:
            hist_set = select_vertices(labels, settings.hist_samples, choice, seed, num_classes)
        batch_sets = lu_batch_indices(labels, settings.lu_batch_size, settings.lu_batches, choice, seed, num_classes)
        others = np.setdiff1d(np.concatenate([hist_set, *batch_sets]), vertex_set)
        return cls(np.concatenate([vertex_set, others]), hist_set, vertex_set, batch_sets, labels)

    @cached_property
    def _row_of(self) -> np.ndarray:
        row_of = np.full(int(self.order.max()) + 1, -1, dtype=np.int64)
        row_of[self.order] = np.arange(len(self.order))
        return row_of

    @cached_property
    def hist_mask(self) -> np.ndarray:
        """(len(order),) bool: the rows of ``order`` whose pairs the histogram counts."""
        mask = np.zeros(len(self.order), dtype=bool)
        mask[self.positions(self.hist_indices)] = True
        return mask

    def positions(self, indices: np.ndarray) -> np.ndarray:
        """Rows of ``indices`` within ``order``."""
        return self._row_of[indices]

    @property
    def hist_positions(self) -> np.ndarray | None:
        """(H,) int64 rows of ``order`` whose pairs the histogram counts; None when that is every row."""
        return None if len(self.hist_indices) == len(self.order) else self.positions(self.hist_indices)
