"""The one data seam (SPEC 2, 23): what the analysis, training and evaluation need from a dataset, whatever it is made
of (uint8 arrays or files with a named normalisation, a user's torch Dataset, a Hugging Face dataset on disk)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class LabelledImages(Protocol):
    """A labelled image set read by index: its length, labels and class names, and batches of model-ready tensors.

    Attributes:
        spec, description: how manifests and reports name it.
        labels: (N,) int64 class indices into ``classes``.
        sha256: hash of its backing file, when there is one.
    """

    spec: str
    description: str
    labels: np.ndarray
    classes: list[str]
    sha256: str | None

    def __len__(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def digest(self) -> str:
        """sha256 of what it holds (its labels and every image), computed once."""

    def normalization(self, normalize: str) -> str:
        """What results record as the normalisation when ``normalize`` is named."""

    def tensors(self, indices: Sequence[int] | np.ndarray, normalize: str) -> torch.Tensor:
        """(n, C, H, W) float32, model-ready, for the samples at ``indices``."""

    def training_batch(self, indices: np.ndarray, normalize: str,
                       augment: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
        """One training step's images, with sepgraph's augmentation where the data takes it."""

    def batches(self, indices: Sequence[int] | np.ndarray, batch_size: int, normalize: str
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) over ``indices`` in order, ``batch_size`` at a time."""

    def subset(self, indices: np.ndarray, spec: str, description: str | None = None) -> LabelledImages:
        """The samples at ``indices`` as a dataset of their own."""
