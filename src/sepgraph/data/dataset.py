"""A labelled image set read by index, and explicit normalisation (SPEC 2, 10).

:class:`ImageDataset` holds (N, H, W, C) uint8 images (in memory or as files) and (N,) int64 labels; batches
are scaled to [0, 1] and normalised by name, the name recorded with every result.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..errors import SepgraphError

log = logging.getLogger(__name__)

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0,), (1.0,)),
}
"""Per-channel (mean, std) applied after scaling pixels to [0, 1]; SPEC 10 gives the CIFAR-10 values."""
OWN_TRANSFORM = "the dataset's own transform"
"""What results record as the normalisation of a user's dataset (SPEC 23): its transform made the tensors
model-ready."""

@dataclass
class ImageDataset:
    """A labelled image set read by index.

    Attributes:
        spec: the spec string it was loaded from.
        description: what the data is, for reports (e.g. ``CIFAR-10 test (JPEG q75 export)``).
        labels: (N,) int64 class of every sample.
        classes: class names, ``labels`` index into them.
        sha256: hash of the backing file, when there is one.
    """

    spec: str
    description: str
    labels: np.ndarray
    classes: list[str]
    _images: np.ndarray | None = field(default=None, repr=False)
    _reader: Callable[[int], np.ndarray] | None = field(default=None, repr=False)
    image_size: int | None = None
    _file_shape: tuple[int, ...] | None = field(default=None, repr=False)
    sha256: str | None = None

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, classes: Sequence[str] | None = None, *,
                    description: str = "in-memory images", spec: str = "arrays") -> ImageDataset:
        """A dataset held in memory.

        Args:
            images: (N, H, W, C) uint8 with C = 1 or 3, or (N, H, W) grey.
            labels: (N,) integer classes; without ``classes`` they may be any integers (e.g. {3, 7, 100}),
                which become classes 0..C-1 in ascending order, named by their original values.
            classes: names of classes 0..C-1 when ``labels`` already index them.
            description, spec: how reports and manifests name the data.
        """
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
            raise SepgraphError(
                f"{spec}: images must be N x H x W x C uint8 with C = 1 or 3, got shape {images.shape} "
                f"dtype {images.dtype}"
            )
        labels, names = class_indices(labels, len(images), spec, classes)
        return cls(spec=spec, description=description, labels=labels, classes=names,
                   _images=np.ascontiguousarray(images))

    @classmethod
    def from_reader(cls, read: Callable[[int], np.ndarray], labels: np.ndarray, classes: Sequence[str] | None = None,
                    *, spec: str, description: str, first: np.ndarray | None = None) -> ImageDataset:
        """A dataset read image by image: ``read(i)`` gives image i as (H, W, 3) uint8 (files, a Hugging Face
        dataset); every image must have the shape of the first (``first``, if already read)."""
        labels, names = class_indices(labels, len(labels), spec, classes)
        shape = (read(0) if first is None else first).shape
        return cls(spec=spec, description=description, labels=labels, classes=names, _reader=read,
                   _file_shape=shape)

    def __len__(self) -> int:
        return len(self.labels)

    @cached_property
    def digest(self) -> str:
        """sha256 of what the dataset holds, computed once: its file's hash where it has one, else of its labels and
        every image (read 1,024 at a time), so two in-memory sets with the same name but other pixels differ."""
        if self.sha256 is not None:
            return self.sha256
        content = hashlib.sha256(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        for start in range(0, len(self), 1024):
            content.update(np.ascontiguousarray(self.read(np.arange(start, min(start + 1024, len(self))))).tobytes())
        return content.hexdigest()

    def subset(self, indices: np.ndarray, spec: str, description: str | None = None) -> ImageDataset:
        """The samples at ``indices`` (in that order) as a dataset of their own, named ``spec`` and described as
        ``description`` (default: as the whole); the class names are kept, the file hash is not (no file)."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, spec=spec, description=description or self.description, labels=self.labels[indices],
                       _images=None if self._images is None else self._images[indices],
                       _reader=None if self._reader is None else _reindexed(self._reader, indices), sha256=None)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Images at ``indices`` as (n, H, W, C) uint8."""
        if self._images is not None:
            return self._images[np.asarray(indices, dtype=np.int64)]
        return np.stack([self._read_one(int(i)) for i in indices])

    def _read_one(self, index: int) -> np.ndarray:
        image = self._reader(index)
        if image.shape != self._file_shape:
            raise SepgraphError(
                f"{self.spec}: image {index} is {image.shape[1]}x{image.shape[0]} but the first image is "
                f"{self._file_shape[1]}x{self._file_shape[0]}; pass image_size to resize and centre-crop them all",
                arguments=("image_size",))
        return image

    def normalization(self, normalize: str) -> str:
        """What the results record as the normalisation: the one named (checked)."""
        normalization(normalize)
        return normalize

    def tensors(self, indices: Sequence[int] | np.ndarray, normalize: str) -> torch.Tensor:
        """The images at ``indices`` model-ready: (n, C, H, W) float32, scaled to [0, 1] and normalised."""
        return to_tensor(self.read(indices), normalize)

    def training_batch(self, indices: np.ndarray, normalize: str,
                       augment: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
        """The images at ``indices`` for one training step: scaled, ``augment``-ed (on [0, 1] pixels), normalised."""
        images = scale(self.read(indices))
        return normalise(augment(images) if augment is not None else images, normalize)

    def batches(
        self, indices: Sequence[int] | np.ndarray, batch_size: int, normalize: str
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images (b, C, H, W) float32 normalised, labels (b,) int64) over ``indices`` in order."""
        indices = np.asarray(indices, dtype=np.int64)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            yield self.tensors(chunk, normalize), torch.from_numpy(self.labels[chunk])


def to_tensor(images: np.ndarray, normalize: str) -> torch.Tensor:
    """(n, H, W, C) uint8 -> (n, C, H, W) float32, scaled to [0, 1] then normalised."""
    return normalise(scale(images), normalize)


def scale(images: np.ndarray) -> torch.Tensor:
    """(n, H, W, C) uint8 -> (n, C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def normalise(images: torch.Tensor, normalize: str) -> torch.Tensor:
    """Apply a named per-channel normalisation, in place, to (n, C, H, W) float32 images in [0, 1]."""
    mean, std = normalization(normalize)
    channels = images.shape[1]
    if len(mean) not in (1, channels):
        raise SepgraphError(
            f"normalisation {normalize!r} has {len(mean)} channels but the images have {channels}; "
            "use --normalize none or images with matching channels"
        )
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return images.sub_(mean_t).div_(std_t).contiguous()


def _reindexed(read: Callable[[int], np.ndarray], indices: np.ndarray) -> Callable[[int], np.ndarray]:
    """A reader of a subset: its image i is image ``indices[i]`` of ``read``."""
    return lambda index: read(int(indices[index]))


def read_image_file(path: str | object, image_size: int | None = None) -> np.ndarray:
    """One image file (or an open PIL image) as (H, W, 3) uint8; with ``image_size``, shorter side resized to it,
    then centre-cropped."""
    from PIL import Image

    with (Image.open(path) if isinstance(path, (str, Path)) else nullcontext(path)) as image:
        image = image.convert("RGB")
        if image_size is not None:
            scale = image_size / min(image.size)
            size = (max(image_size, round(image.width * scale)), max(image_size, round(image.height * scale)))
            image = image.resize(size, Image.BILINEAR)
            left, top = (image.width - image_size) // 2, (image.height - image_size) // 2
            image = image.crop((left, top, left + image_size, top + image_size))
        return np.asarray(image, dtype=np.uint8)


def normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of a named normalisation."""
    if name == OWN_TRANSFORM:
        raise SepgraphError("these images need a named normalisation, but the model's data was read through its own "
                            "transform (a torch Dataset, SPEC 23); give this data as such a Dataset too",
                            arguments=("normalize",))
    if name not in NORMALIZATIONS:
        raise SepgraphError(f"unknown normalisation {name!r}; choose one of {', '.join(NORMALIZATIONS)}")
    return NORMALIZATIONS[name]


def class_indices(labels: np.ndarray, count: int, source: str, classes: Sequence[str] | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """Validate labels and return them as (count,) int64 class indices with the class names (SPEC 2).

    With ``classes``, labels must already be indices below ``len(classes)``. Without, labels that are
    exactly 0..C-1 stay as they are (names "0".."C-1"); any other set of values (e.g. {3, 7, 100}, or 0..9
    with a class absent) becomes classes 0..C-1 in ascending order of value, named by the values, and a
    warning says so: a model trained on the original values would then read other classes.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != count:
        raise SepgraphError(f"{source}: expected {count} labels (one per image), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise SepgraphError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    if classes is not None:
        if count and (labels.min() < 0 or labels.max() >= len(classes)):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise SepgraphError(f"{source}: label {bad} is out of range for {len(classes)} class names "
                                f"(with 'classes', labels index them: 0 to {len(classes) - 1})")
        return labels.astype(np.int64), [str(name) for name in classes]
    values, indices = np.unique(labels, return_inverse=True)
    if len(values) and not np.array_equal(values, np.arange(len(values))):
        shown = ", ".join(f"{v} -> {k}" for k, v in enumerate(values[:6].tolist()))
        shown += ", ..." if len(values) > 6 else ""
        log.warning("%s: labels are not 0..%d, so they became classes by ascending value (%s); add a 'classes' "
                    "array to keep them as class indices", source, len(values) - 1, shown)
    return indices.astype(np.int64), [str(value) for value in values]
