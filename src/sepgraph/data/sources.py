"""Datasets named by one spec string, loaded into an :class:`~sepgraph.data.dataset.ImageDataset`.

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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import SepgraphError
from ..files import file_sha256
from .dataset import ImageDataset, read_image_file

KNOWN_FILES = {
    "20f8fc9d257311defb318f79b796cd3819d3582184217e2cddf4e14fe22b9cd0": "CIFAR-10 test (JPEG q75 export)",
    "a539944c6d5bc374aab6a09b9f0604951b1638adfedd25a9f9efdf13aa5619f2": "CIFAR-10 train (JPEG q75 export)",
}
"""Files recognised by their sha256, so results name them honestly (lossy JPEG, not CIFAR-10)."""

SPLITS = ("test", "train", "all")


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
        raise SepgraphError(f"image_size must be at least 1, got {image_size}", arguments=("image_size",))
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
