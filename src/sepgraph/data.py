"""Datasets named by one spec string, explicit normalisation, and vertex choice (SPEC 2).

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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoints import file_sha256
from .errors import SepgraphError

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


def load_dataset(
    spec: str, data_root: str | Path = "data", download: bool = False, image_size: int | None = None
) -> ImageDataset:
    """Load a dataset from its spec string (see the module docstring)."""
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
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise SepgraphError(
            f"dataset file {str(path)!r}: 'images' must be N x H x W x C uint8 with C = 1 or 3, "
            f"got shape {images.shape} dtype {images.dtype}"
        )
    labels = check_labels(labels, len(images), str(path), classes)
    sha256 = file_sha256(path)
    return ImageDataset(
        spec=spec,
        description=KNOWN_FILES.get(sha256, f"npz file {path.name}"),
        labels=labels,
        classes=classes or [str(c) for c in range(int(labels.max()) + 1)],
        _images=images,
        sha256=sha256,
    )


def check_labels(labels: np.ndarray, count: int, source: str, classes: Sequence[str] | None = None) -> np.ndarray:
    """Validate labels: (count,) non-negative integers, below ``len(classes)`` when names are given."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != count:
        raise SepgraphError(f"{source}: expected {count} labels (one per image), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise SepgraphError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    if count and labels.min() < 0:
        raise SepgraphError(f"{source}: labels must be >= 0, found {labels.min()}")
    if classes is not None and count and labels.max() >= len(classes):
        raise SepgraphError(f"{source}: label {labels.max()} is out of range for {len(classes)} class names")
    return labels.astype(np.int64)


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
