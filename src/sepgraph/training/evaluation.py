"""Accuracy of a model on a dataset (``sepgraph eval``)."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.sources import DataLike, as_dataset
from ..devices import evaluation_mode, resolve_device
from ..errors import SepgraphError, input_shape_error
from ..progress import progress_bar


@dataclass
class Evaluation:
    """Top-1 accuracy (percent), mean cross-entropy, counts and wall time of one evaluation."""

    accuracy: float
    loss: float
    correct: int
    total: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(
    model: nn.Module,
    dataset: DataLike,
    *,
    normalize: str,
    indices: np.ndarray | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
) -> Evaluation:
    """Top-1 accuracy of ``model`` on ``dataset`` (or its ``indices``), in ``eval()`` mode."""
    dataset = as_dataset(dataset)
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise SepgraphError("cannot evaluate on an empty dataset")
    if batch_size < 1:
        raise SepgraphError(f"batch_size must be at least 1, got {batch_size}", arguments=("batch_size",))
    target = resolve_device(device)
    model.to(target)
    correct, loss_sum, start = 0, 0.0, time.perf_counter()
    batches = dataset.batches(indices, batch_size, normalize)
    with evaluation_mode(model):
        with torch.inference_mode():
            for images, labels in progress_bar(batches, total=math.ceil(len(indices) / batch_size), desc="eval",
                                       unit="batch", disable=not progress, leave=False):
                try:
                    logits = model(images.to(target))
                except RuntimeError as error:
                    raise input_shape_error(images.shape[1:], error) from error
                labels = labels.to(target)
                if int(labels.max()) >= logits.shape[1]:
                    raise SepgraphError(
                        f"label {int(labels.max())} is out of range for a model with {logits.shape[1]} outputs"
                    )
                correct += int((logits.argmax(1) == labels).sum())
                loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
    total = len(indices)
    return Evaluation(100.0 * correct / total, loss_sum / total, correct, total, time.perf_counter() - start)
