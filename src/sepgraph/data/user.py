"""A user's own ``torch.utils.data.Dataset`` as sepgraph's data (SPEC 2, 23): items ``(image_tensor, label)`` after the
user's transform, read by index, so sample choice and every result stay as exact as the transform is deterministic.

The tensors are model-ready: no named normalisation is applied, and sepgraph's crop and flip are off for training
unless asked for (the user's transform brings its own augmentation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import torch

from ..errors import SepgraphError
from .dataset import OWN_TRANSFORM, class_indices


@dataclass
class TorchDataset:
    """A map-style dataset whose items are ``(tensor (C, H, W), int)``, with its labels read once.

    Attributes:
        dataset: the user's dataset.
        labels: (N,) int64 classes (given, or read from every item once).
        classes: class names (default: the label values).
        spec, description: how reports and manifests name it.
        crop_and_flip: let sepgraph's training augmentation (SPEC 10) act on top of the user's transform.
    """

    dataset: torch.utils.data.Dataset
    labels: np.ndarray
    classes: list[str]
    spec: str = "dataset"
    description: str = "a torch Dataset"
    crop_and_flip: bool = False
    shape: tuple[int, ...] = field(default=())

    @classmethod
    def of(cls, dataset: torch.utils.data.Dataset, labels: Sequence[int] | np.ndarray | None = None,
           classes: Sequence[str] | None = None, *, spec: str = "dataset", description: str | None = None,
           crop_and_flip: bool = False) -> TorchDataset:
        """Wrap ``dataset``: its first item fixes the shape every item must have; without ``labels``, every item is
        read once for its label (and checked)."""
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise SepgraphError(f"{spec}: a {type(dataset).__name__} is not a map-style dataset (it needs __len__ and "
                                "__getitem__); wrap an iterable one in a list or give arrays")
        count = len(dataset)
        if count == 0:
            raise SepgraphError(f"{spec}: the dataset is empty")
        shape = tuple(_item(dataset, 0, spec)[0].shape)
        if labels is None:
            labels = [_label(dataset, index, spec, shape) for index in range(count)]
        elif len(labels) != count:
            raise SepgraphError(f"{spec}: {len(labels)} labels were given for a dataset of {count} items; give one "
                                "label per item, or none to read them from the items")
        indices, names = class_indices(np.asarray(labels), count, spec, classes)
        return cls(dataset, indices, names, spec, description or f"{type(dataset).__name__} ({count:,} items)",
                   crop_and_flip, shape)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalization(self, _normalize: str) -> str:
        """What the results record as the normalisation: the dataset's own transform, whatever was named."""
        return OWN_TRANSFORM

    def tensors(self, indices: Sequence[int] | np.ndarray, _normalize: str = "none") -> torch.Tensor:
        """The items at ``indices`` as (n, C, H, W) float32, as the user's transform made them."""
        return torch.stack([self._image(int(index)) for index in indices]).float().contiguous()

    def training_batch(self, indices: np.ndarray, _normalize: str, augment) -> torch.Tensor:
        """The items at ``indices`` for one training step: sepgraph's ``augment`` only where ``crop_and_flip`` (its
        padding is 0, which after the user's normalisation is the mean colour, not black)."""
        images = self.tensors(indices)
        return augment(images) if self.crop_and_flip and augment is not None else images

    def batches(self, indices: Sequence[int] | np.ndarray, batch_size: int, _normalize: str = "none"
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images (b, C, H, W) float32, labels (b,) int64) over ``indices`` in order."""
        indices = np.asarray(indices, dtype=np.int64)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            yield self.tensors(chunk), torch.from_numpy(self.labels[chunk])

    @property
    def sha256(self) -> str:
        """What identifies the data in manifests and row keys: no file, so its content (:attr:`digest`)."""
        return self.digest

    @cached_property
    def digest(self) -> str:
        """sha256 of the labels and every item's tensor (each item read once more)."""
        content = hashlib.sha256(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        for index in range(len(self)):
            content.update(self._image(index).float().contiguous().numpy().tobytes())
        return content.hexdigest()

    def subset(self, indices: np.ndarray, spec: str, description: str | None = None) -> TorchDataset:
        """The items at ``indices`` as a dataset of their own (``torch.utils.data.Subset``)."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, dataset=torch.utils.data.Subset(self.dataset, indices.tolist()),
                       labels=self.labels[indices], spec=spec, description=description or self.description)

    def _image(self, index: int) -> torch.Tensor:
        return _item(self.dataset, index, self.spec, self.shape)[0]


def _item(dataset: torch.utils.data.Dataset, index: int, spec: str, shape: tuple[int, ...] | None = None
          ) -> tuple[torch.Tensor, object]:
    """Item ``index`` as (image tensor (C, H, W), label), its image of ``shape`` when given, or one line naming what
    it is instead."""
    item = dataset[index]
    if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], torch.Tensor) \
            or item[0].dim() != 3:
        what = (f"a {type(item).__name__} of {len(item)}" if isinstance(item, (tuple, list)) else
                f"a {type(item).__name__}")
        first = f" whose first element is a {type(item[0]).__name__}" + (
            f" of shape {tuple(item[0].shape)}" if isinstance(item[0], torch.Tensor) else "") \
            if isinstance(item, (tuple, list)) and item else ""
        raise SepgraphError(f"{spec}: item {index} is {what}{first}, not (image tensor C x H x W, int label); add "
                            "a transform such as torchvision's ToTensor() and return (image, label)")
    if shape is not None and tuple(item[0].shape) != shape:
        raise SepgraphError(f"{spec}: item {index} is an image of shape {tuple(item[0].shape)}, but item 0 is "
                            f"{shape}; make the transform give every image one size (e.g. Resize and CenterCrop)")
    return item[0], item[1]


def _label(dataset: torch.utils.data.Dataset, index: int, spec: str, shape: tuple[int, ...]) -> int:
    """Item ``index``'s label, checking that the item is (tensor of ``shape``, integer)."""
    label = _item(dataset, index, spec, shape)[1]
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
        return int(label)
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    raise SepgraphError(f"{spec}: item {index}'s label is {label!r} ({type(label).__name__}), not an int; return "
                        "(image, class index)")
