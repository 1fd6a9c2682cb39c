"""Streaming feature extraction at layer points under a memory budget (SPEC 2).

Layer points are grouped so that one group's features for all chosen samples
fit the budget; each group costs one pass over the data, stopped early after its
last point. Features are copied out inside the hook, so in-place operations later
in the network cannot alter them, and the model's outputs are untouched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import ImageDataset, to_tensor
from .devices import default_max_memory, resolve_device
from .errors import SepgraphError, input_shape_error
from .points import LayerPoint

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


class _StopForward(Exception):
    """Raised inside a hook once a batch's last wanted point is captured."""


class _Capture:
    """Forward hooks that copy chosen module calls into per-point output slots."""

    def __init__(self, model: nn.Module, points: Sequence[LayerPoint], stop_early: bool):
        modules = dict(model.named_modules())
        for point in points:
            if point.module not in modules:
                raise SepgraphError(
                    f"unknown layer {point.module!r} (point {point.name!r}): the model has no such module"
                )
        self.points = list(points)
        self.stop_early = stop_early
        self.outputs: dict[int, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        wanted: dict[str, dict[int, int]] = {}
        for position, point in enumerate(points):
            wanted.setdefault(point.module, {})[point.call] = position
        self.handles = [
            modules[name].register_forward_hook(self._hook(name, calls)) for name, calls in wanted.items()
        ]
        self.sink: dict[int, torch.Tensor] | None = None
        self.done: set[int] = set()

    def _hook(self, name: str, calls: dict[int, int]):
        def hook(_module, _inputs, output):
            call = self.calls.get(name, 0)
            self.calls[name] = call + 1
            if call not in calls:
                return
            if not isinstance(output, torch.Tensor):
                raise SepgraphError(
                    f"layer {name!r} returns a {type(output).__name__}, not a tensor; choose another module"
                )
            position = calls[call]
            if self.sink is not None:
                self.sink[position].copy_(output.reshape(output.shape[0], -1))
            else:
                self.outputs[position] = output.detach().clone()
            self.done.add(position)
            if self.stop_early and len(self.done) == len(self.points):
                raise _StopForward

        return hook

    def run(self, model: nn.Module, batch: torch.Tensor, sink: dict[int, torch.Tensor] | None = None) -> None:
        """One forward pass; captured outputs go to ``sink`` slices or ``self.outputs``."""
        self.calls, self.done, self.sink, self.outputs = {}, set(), sink, {}
        try:
            model(batch)
        except _StopForward:
            pass
        if len(self.done) < len(self.points):
            point = next(p for i, p in enumerate(self.points) if i not in self.done)
            raise SepgraphError(
                f"layer point {point.name!r} (module {point.module!r}, call {point.call}) did not run in the "
                "forward pass; check the module name and call number"
            )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def point_shapes(
    model: nn.Module, points: Sequence[LayerPoint], example: torch.Tensor
) -> list[tuple[int, ...]]:
    """Per-sample output shape of each point, from one forward pass on ``example`` (1, C, H, W).

    Also checks that the model accepts such inputs and that every point runs.
    """
    capture = _Capture(model, points, stop_early=True)
    try:
        with torch.inference_mode():
            capture.run(model.eval(), example)
    except RuntimeError as error:
        raise input_shape_error(example.shape[1:], error) from error
    finally:
        capture.remove()
    return [tuple(capture.outputs[i].shape[1:]) for i in range(len(points))]


def plan_groups(dims: Sequence[int], samples: int, max_memory: int) -> list[list[int]]:
    """Split points (their flattened sizes ``dims``) into consecutive groups whose float32
    features for ``samples`` samples fit ``max_memory`` bytes."""
    groups: list[list[int]] = []
    used = math.inf
    for position, dim in enumerate(dims):
        size = samples * dim * 4
        if size > max_memory:
            raise SepgraphError(
                f"one layer point needs {size / 2**30:.2f} GiB for {samples} samples x {dim} features, more than "
                f"--max-memory {max_memory / 2**30:.2f} GiB; raise --max-memory or use fewer samples"
            )
        if used + size > max_memory:
            groups.append([])
            used = 0
        groups[-1].append(position)
        used += size
    return groups


def extract_features(
    model: nn.Module,
    points: Sequence[LayerPoint],
    dataset: ImageDataset,
    indices: Sequence[int] | np.ndarray,
    *,
    normalize: str,
    batch_size: int = 256,
    device: str = "auto",
    max_memory: int | None = None,
    progress: bool = True,
) -> Iterator[PointFeatures]:
    """Yield each point's features for ``dataset[indices]``, in point order, never holding
    more than ``max_memory`` bytes of features (default: :func:`~sepgraph.devices.default_max_memory`).

    The model runs in ``eval()`` under ``torch.inference_mode()`` on ``device``. Drop each
    item (``del item``) before asking for the next: the next group's features are filled then.
    """
    if not points:
        raise SepgraphError("the list of layer points is empty; name at least one")
    indices = np.asarray(indices, dtype=np.int64)
    target = resolve_device(device)
    was_training = model.training
    model.eval().to(target)
    try:
        example = to_tensor(dataset.read(indices[:1]), normalize).to(target)
        shapes = point_shapes(model, points, example)
        dims = [math.prod(shape) for shape in shapes]
        budget = default_max_memory(len(indices) * max(dims) * 4) if max_memory is None else max_memory
        groups = plan_groups(dims, len(indices), budget)
        log.info("extracting %d points in %d pass(es) over %d samples", len(points), len(groups), len(indices))
        for number, group in enumerate(groups, 1):
            arrays = {p: np.empty((len(indices), dims[p]), dtype=np.float32) for p in group}
            _fill(model, [points[p] for p in group], [arrays[p] for p in group], dataset, indices,
                  normalize, batch_size, target,
                  desc=f"features {number}/{len(groups)}" if len(groups) > 1 else "features",
                  progress=progress)
            for position in group:
                yield PointFeatures(position, points[position], shapes[position], arrays.pop(position))
    finally:
        model.train(was_training)


def _fill(model, points, arrays, dataset, indices, normalize, batch_size, device, desc, progress) -> None:
    """One pass over the data, copying each point's outputs into its array."""
    buffers = [torch.from_numpy(array) for array in arrays]
    capture = _Capture(model, points, stop_early=True)
    batches = dataset.batches(indices, batch_size, normalize)
    total = math.ceil(len(indices) / batch_size)
    start = 0
    try:
        with torch.inference_mode():
            for images, _ in tqdm(batches, total=total, desc=desc, unit="batch", disable=not progress, leave=False):
                stop = start + len(images)
                capture.run(model, images.to(device, non_blocking=True),
                            sink={i: buffer[start:stop] for i, buffer in enumerate(buffers)})
                start = stop
    finally:
        capture.remove()
