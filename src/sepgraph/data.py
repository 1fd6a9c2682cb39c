"""Datasets named by one spec string, and explicit normalisation.

Dataset specs (CLI ``--data`` and the API alike):

- ``digits[:test|train|all]``: scikit-learn's bundled handwritten digits (real data,
  no download), 8x8 grey upsampled to 32x32 RGB; the embedded default.
- ``cifar10[:test|train]``: torchvision's CIFAR-10 under ``data_root`` (downloads only
  with ``download=True``).
- ``npz:PATH``: arrays ``images`` (N x H x W x C uint8) and ``labels`` (N ints),
  optionally ``classes`` (names).
- ``imagefolder:PATH``: one sub-folder per class (torchvision's ImageFolder layout).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .errors import SepgraphError
from .files import file_sha256

log = logging.getLogger(__name__)

NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": ((0.0,), (1.0,)),
}
"""Per-channel (mean, std) applied after scaling pixels to [0, 1]; SPEC 10 gives the CIFAR-10 values."""

KNOWN_FILES = {
    "20f8fc9d257311defb318f79b796cd3819d3582184217e2cddf4e14fe22b9cd0": "CIFAR-10 test (JPEG q75 export)",
    "a539944c6d5bc374aab6a09b9f0604951b1638adfedd25a9f9efdf13aa5619f2": "CIFAR-10 train (JPEG q75 export)",
}
"""Files recognised by their sha256, so results name them honestly (lossy JPEG, not CIFAR-10)."""

SPLITS = ("test", "train", "all")


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
    _paths: list[str] | None = field(default=None, repr=False)
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

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Images at ``indices`` as (n, H, W, C) uint8."""
        if self._images is not None:
            return self._images[np.asarray(indices, dtype=np.int64)]
        return np.stack([self._read_file(self._paths[i]) for i in indices])

    def _read_file(self, path: str) -> np.ndarray:
        image = read_image_file(path, self.image_size)
        if image.shape != self._file_shape:
            raise SepgraphError(
                f"image {path!r} is {image.shape[1]}x{image.shape[0]} but the first image is "
                f"{self._file_shape[1]}x{self._file_shape[0]}; pass --image-size to resize and centre-crop them all"
            )
        return image

    def batches(
        self, indices: Sequence[int] | np.ndarray, batch_size: int, normalize: str
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images (b, C, H, W) float32 normalised, labels (b,) int64) over ``indices`` in order."""
        indices = np.asarray(indices, dtype=np.int64)
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            yield to_tensor(self.read(chunk), normalize), torch.from_numpy(self.labels[chunk])


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


def read_image_file(path: str, image_size: int | None = None) -> np.ndarray:
    """One image file as (H, W, 3) uint8; with ``image_size``, shorter side resized to it, then centre-cropped."""
    from PIL import Image

    with Image.open(path) as image:
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
    if name not in NORMALIZATIONS:
        raise SepgraphError(f"unknown normalisation {name!r}; choose one of {', '.join(NORMALIZATIONS)}")
    return NORMALIZATIONS[name]


@dataclass(frozen=True)
class DataSource:
    """Where a dataset comes from: its spec string and how to read it (the CLI's data options).

    Attributes:
        spec: see the module docstring.
        root: where torchvision datasets live.
        download: allow torchvision to download.
        image_size: resize and centre-crop image-folder images to this size.
    """

    spec: str
    root: str | Path = "data"
    download: bool = False
    image_size: int | None = None

    def load(self) -> ImageDataset:
        return load_dataset(self.spec, self.root, self.download, self.image_size)


def as_dataset(data: str | DataSource | ImageDataset) -> ImageDataset:
    """A loaded dataset from a spec string, a :class:`DataSource` or a dataset (returned as it is)."""
    if isinstance(data, ImageDataset):
        return data
    return (data if isinstance(data, DataSource) else DataSource(data)).load()


def load_dataset(
    spec: str, data_root: str | Path = "data", download: bool = False, image_size: int | None = None
) -> ImageDataset:
    """Load a dataset from its spec string (see the module docstring)."""
    if image_size is not None and image_size < 1:
        raise SepgraphError(f"--image-size must be at least 1, got {image_size}")
    kind, _, argument = spec.partition(":")
    if kind == "digits":
        return _digits(spec, argument or "test")
    if kind == "cifar10":
        return _cifar10(spec, argument or "test", Path(data_root), download)
    if kind == "npz" and argument:
        return _npz(spec, Path(argument))
    if kind == "imagefolder" and argument:
        return _imagefolder(spec, Path(argument), image_size)
    raise SepgraphError(
        f"unknown dataset {spec!r}; use digits[:test|train|all], cifar10[:test|train], npz:PATH or imagefolder:PATH"
    )


def _check_split(spec: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise SepgraphError(f"dataset {spec!r}: unknown split {split!r}; choose one of {', '.join(allowed)}")


def _digits(spec: str, split: str) -> ImageDataset:
    """scikit-learn's 1,797 digits; every fifth sample of each class is the test split."""
    _check_split(spec, split, SPLITS)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    keep = {"test": rank % 5 == 0, "train": rank % 5 != 0, "all": np.ones(len(labels), bool)}[split]
    grey = torch.from_numpy(bunch.images[keep].astype(np.float32) / 16.0).unsqueeze(1)
    large = torch.nn.functional.interpolate(grey, size=(32, 32), mode="bilinear", align_corners=False)
    images = (large.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).repeat(1, 1, 1, 3).numpy()
    return ImageDataset(
        spec=spec,
        description=f"scikit-learn digits ({split}, 8x8 upsampled to 32x32 RGB)",
        labels=labels[keep],
        classes=[str(d) for d in range(10)],
        _images=np.ascontiguousarray(images),
    )


def _cifar10(spec: str, split: str, root: Path, download: bool) -> ImageDataset:
    _check_split(spec, split, ("test", "train"))
    from torchvision.datasets import CIFAR10

    try:
        data = CIFAR10(str(root), train=split == "train", download=download)
    except RuntimeError as error:
        raise SepgraphError(
            f"CIFAR-10 was not found under {str(root)!r}: pass --data-root to where it is, "
            "or --download to fetch it"
        ) from error
    return ImageDataset(
        spec=spec,
        description=f"CIFAR-10 {split} (torchvision)",
        labels=np.asarray(data.targets, dtype=np.int64),
        classes=list(data.classes),
        _images=data.data,
    )


def _npz(spec: str, path: Path) -> ImageDataset:
    if not path.is_file():
        raise SepgraphError(f"dataset file {str(path)!r} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise SepgraphError(f"dataset file {str(path)!r} is not a readable .npz archive: {error}") from error
    with archive:
        for key in ("images", "labels"):
            if key not in archive.files:
                raise SepgraphError(
                    f"dataset file {str(path)!r} has no {key!r} array (it has: {', '.join(archive.files)}); "
                    "an npz dataset needs 'images' (N x H x W x C uint8) and 'labels' (N ints)"
                )
        images, labels = archive["images"], archive["labels"]
        classes = [str(c) for c in archive["classes"]] if "classes" in archive.files else None
    sha256 = file_sha256(path)
    return replace(ImageDataset.from_arrays(images, labels, classes, spec=spec,
                                            description=KNOWN_FILES.get(sha256, f"npz file {path.name}")),
                   sha256=sha256)


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


def _imagefolder(spec: str, root: Path, image_size: int | None) -> ImageDataset:
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise SepgraphError(f"image folder {str(root)!r} does not exist")
    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as error:
        raise SepgraphError(f"image folder {str(root)!r}: {error}") from error
    paths = [path for path, _ in folder.samples]
    return ImageDataset(
        spec=spec,
        description=f"image folder {root.name}",
        labels=np.asarray(folder.targets, dtype=np.int64),
        classes=list(folder.classes),
        _paths=paths,
        image_size=image_size,
        _file_shape=read_image_file(paths[0], image_size).shape,
    )
