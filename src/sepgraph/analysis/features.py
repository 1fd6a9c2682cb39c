"""Streaming feature extraction at layer points under a memory budget (SPEC 2).

Layer points are grouped so that one group's features for all chosen samples
fit the budget; each group costs one pass over the data, stopped early after its
last point. With a spill folder, one pass streams every point's rows to files
instead, and the points are read back one at a time. Features are copied out inside
the hook, so in-place operations later in the network cannot alter them, and the
model's outputs are untouched.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import torch
from torch import nn

from ..data.protocol import LabelledImages
from ..data.sources import DataLike, as_dataset
from ..devices import default_max_memory, evaluation_mode, resolve_device
from ..errors import SepgraphError
from ..models.capture import PointCapture, Sink, point_shapes
from ..models.protocol import LayerPoint
from ..progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class PointFeatures:
    """One layer point's features for the chosen samples.

    Attributes:
        index: position of the point in the analysed list.
        point: the layer point.
        shape: per-sample output shape, e.g. (C, H, W).
        features: (n, D) float32, D = prod(shape), rows in the order of the given indices.
    """

    index: int
    point: LayerPoint
    shape: tuple[int, ...]
    features: np.ndarray


class RowObserver(Protocol):
    """What sees the (batch, D) rows of its own ``points`` during an extraction's first forward pass, beside the
    points extracted (e.g. :class:`~sepgraph.analysis.depth.DepthObserver`); it must not change them."""

    points: Sequence[LayerPoint]

    def sink(self, start: int, stop: int) -> Sink:
        """Where rows ``start:stop`` of the extracted indices go, by position in ``points``."""


def feature_budget(n_samples: int, dims: Sequence[int], max_memory: int | None) -> int:
    """``max_memory``, or the default budget (:func:`~sepgraph.devices.default_max_memory`) for
    points of flattened sizes ``dims``: raised to hold the largest one when RAM allows."""
    return default_max_memory(n_samples * max(dims) * 4) if max_memory is None else max_memory


def plan_groups(dims: Sequence[int], n_samples: int, max_memory: int) -> list[list[int]]:
    """Split points (their flattened sizes ``dims``) into consecutive groups whose float32
    features for ``n_samples`` samples fit ``max_memory`` bytes."""
    groups: list[list[int]] = []
    used = math.inf
    for position, dim in enumerate(dims):
        size = n_samples * dim * 4
        if size > max_memory:
            raise SepgraphError(
                f"one layer point needs {size / 2**30:.2f} GiB for {n_samples} samples x {dim} features, more than "
                f"max_memory {max_memory / 2**30:.2f} GiB; raise it or use fewer samples",
                arguments=("max_memory",))
        if used + size > max_memory:
            groups.append([])
            used = 0
        groups[-1].append(position)
        used += size
    return groups


def extract_features(
    model: nn.Module,
    points: Sequence[LayerPoint],
    dataset: DataLike,
    indices: Sequence[int] | np.ndarray,
    *,
    normalize: str,
    batch_size: int = 256,
    device: str = "auto",
    max_memory: int | None = None,
    spill_dir: str | Path | None = None,
    progress: bool = True,
    reverse: bool = False,
    observer: RowObserver | None = None,
) -> Iterator[PointFeatures]:
    """Yield each point's features for ``dataset[indices]``, in point order (``reverse``: from the last
    point to the first, at the same cost), never holding more than ``max_memory`` bytes of features
    (default: :func:`~sepgraph.devices.default_max_memory`).

    With ``spill_dir``, a single forward pass writes every point's features to a temporary
    folder there (it needs disk for all of them) and each point is read back, then deleted,
    when it is yielded: one pass instead of one per group, with one point in memory.

    The model runs in ``eval()`` under ``torch.inference_mode()`` on ``device``. Drop each
    item (``del item``) before asking for the next: the next group's features are filled then. An ``observer`` sees
    its points' rows during the first pass, which then runs at least as deep as its deepest point.
    """
    if not points:
        raise SepgraphError("the list of layer points is empty; name at least one")
    dataset = as_dataset(dataset)
    indices = np.asarray(indices, dtype=np.int64)
    target = resolve_device(device)
    model.to(target)
    with evaluation_mode(model):
        example = dataset.tensors(indices[:1], normalize).to(target)
        shapes = point_shapes(model, points, example)
        dims = [math.prod(shape) for shape in shapes]
        groups = plan_groups(dims, len(indices), feature_budget(len(indices), dims, max_memory))
        forward_pass = _Pass(model, dataset, indices, normalize, batch_size, target, progress)
        if spill_dir is not None:
            yield from _spilled(forward_pass, points, shapes, dims, Path(spill_dir), reverse, observer)
            return
        log.info("extracting %d points in %d pass(es) over %d samples", len(points), len(groups), len(indices))
        for number, group in enumerate(groups[::-1] if reverse else groups, 1):
            arrays = {p: np.empty((len(indices), dims[p]), dtype=np.float32) for p in group}
            forward_pass(*_observed([points[p] for p in group], _into_arrays([arrays[p] for p in group]),
                                    observer if number == 1 else None),
                         desc=f"features {number}/{len(groups)}" if len(groups) > 1 else "features")
            for position in group[::-1] if reverse else group:
                yield PointFeatures(position, points[position], shapes[position], arrays.pop(position))


@dataclass
class _Pass:
    """One forward pass over ``dataset[indices]`` that hands each chosen point's rows to a sink."""

    model: nn.Module
    dataset: LabelledImages
    indices: np.ndarray
    normalize: str
    batch_size: int
    device: torch.device
    progress: bool

    def __call__(self, points: Sequence[LayerPoint], sink: Callable[[int, int], Sink], desc: str) -> None:
        """``sink(start, stop)`` says where rows ``start:stop`` of each point go."""
        capture = PointCapture(self.model, points, stop_early=True)
        batches = self.dataset.batches(self.indices, self.batch_size, self.normalize)
        total = math.ceil(len(self.indices) / self.batch_size)
        start = 0
        try:
            with torch.inference_mode():
                for images, _ in progress_bar(batches, total=total, desc=desc, unit="batch", disable=not self.progress,
                                      leave=False):
                    stop = start + len(images)
                    capture.forward(self.model, images.to(self.device, non_blocking=True), sink(start, stop))
                    start = stop
        finally:
            capture.remove()


def _observed(points: list[LayerPoint], sink: Callable[[int, int], Sink], observer: RowObserver | None
              ) -> tuple[list[LayerPoint], Callable[[int, int], Sink]]:
    """A pass's points and sink with an observer's points added; a point both want goes to both."""
    if observer is None:
        return points, sink
    merged = points + [point for point in observer.points if point not in points]
    where = [merged.index(point) for point in observer.points]

    def both(start: int, stop: int) -> Sink:
        ours, theirs = dict(sink(start, stop)), observer.sink(start, stop)
        for k, position in enumerate(where):
            ours[position] = _each(ours[position], theirs[k]) if position in ours else theirs[k]
        return ours

    return merged, both


def _each(*sinks: Callable[[torch.Tensor], object]) -> Callable[[torch.Tensor], None]:
    def call(rows: torch.Tensor) -> None:
        for sink in sinks:
            sink(rows)
    return call


def _into_arrays(arrays: list[np.ndarray]) -> Callable[[int, int], Sink]:
    """Rows ``start:stop`` of point i are copied into ``arrays[i][start:stop]``."""
    buffers = [torch.from_numpy(array) for array in arrays]
    return lambda start, stop: {i: buffer[start:stop].copy_ for i, buffer in enumerate(buffers)}


def _into_files(handles: list[BinaryIO]) -> Callable[[int, int], Sink]:
    """Rows of point i are appended to ``handles[i]`` as raw float32 (batches arrive in order)."""
    sink = {i: lambda rows, handle=handle: handle.write(rows.contiguous().cpu().numpy())
            for i, handle in enumerate(handles)}
    return lambda _start, _stop: sink


def _spilled(forward_pass: _Pass, points: Sequence[LayerPoint], shapes: list[tuple[int, ...]], dims: list[int],
             spill_dir: Path, reverse: bool, observer: RowObserver | None) -> Iterator[PointFeatures]:
    """All points in one pass (seen by ``observer`` too), each point's rows appended to its own file; then read back
    one by one (from the last with ``reverse``)."""
    n_samples = len(forward_pass.indices)
    needed = n_samples * sum(dims) * 4
    if not spill_dir.is_dir():
        raise SepgraphError(f"spill_dir {str(spill_dir)!r} is not a folder; create it or choose another",
                            arguments=("spill_dir",))
    free = shutil.disk_usage(spill_dir).free
    if needed > free:
        raise SepgraphError(
            f"spill_dir {str(spill_dir)!r} has {free / 2**30:.1f} GiB free, but spilling {len(points)} points x "
            f"{n_samples} samples needs {needed / 2**30:.1f} GiB; free space, choose another folder or do without "
            "spilling",
            arguments=("spill_dir",))
    log.info("extracting %d points in 1 pass over %d samples, %.1f GiB spilled to %s", len(points), n_samples,
             needed / 2**30, spill_dir)
    with tempfile.TemporaryDirectory(prefix="sepgraph-spill-", dir=spill_dir) as folder:
        paths = [Path(folder) / f"{position:04d}.f32" for position in range(len(points))]
        handles = [open(path, "wb") for path in paths]
        try:
            forward_pass(*_observed(list(points), _into_files(handles), observer), desc="features (spilled)")
        finally:
            for handle in handles:
                handle.close()
        positions = range(len(points) - 1, -1, -1) if reverse else range(len(points))
        for position in positions:  # no local may hold a point while the next one is read
            yield PointFeatures(position, points[position], shapes[position],
                                _read_back(paths[position], (n_samples, dims[position])))


def _read_back(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A spilled point's features; the file is deleted once read."""
    features = np.fromfile(path, dtype=np.float32).reshape(shape)
    path.unlink()
    return features
