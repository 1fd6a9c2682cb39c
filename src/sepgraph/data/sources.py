"""Datasets named by one spec string, loaded into an :class:`~sepgraph.data.dataset.ImageDataset`.

Dataset specs (CLI ``--data`` and the API alike):

- ``digits[:test|train|all]``: scikit-learn's bundled handwritten digits (real data,
  no download), 8x8 grey upsampled to 32x32 RGB; the embedded default.
- ``cifar10[:test|train]``: torchvision's CIFAR-10 under ``data_root`` (downloads only
  with ``download=True``).
- ``npz:PATH``: arrays ``images`` (N x H x W x C uint8) and ``labels`` (N ints),
  optionally ``classes`` (names).
- ``imagefolder:PATH``: one sub-folder per class (torchvision's ImageFolder layout).
- ``py:package.module:function``: a function of the user's, called with no arguments, that returns a map-style
  ``torch.utils.data.Dataset`` of ``(image_tensor, label)`` (its own transform; SPEC 23) or an
  :class:`~sepgraph.data.dataset.ImageDataset`.
- ``hf:PATH[:split]``: a Hugging Face dataset saved with ``save_to_disk`` (the optional ``datasets`` package), its
  ``image`` and ``label`` columns (others named by ``DataSource.image_column`` / ``label_column``).

Anything that takes data takes a spec, a :class:`DataSource`, a loaded dataset (the
:class:`~sepgraph.data.protocol.LabelledImages` seam) or a user's map-style torch ``Dataset``: :data:`DataLike`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import SepgraphError
from ..files import file_sha256
from .dataset import ImageDataset, read_image_file
from .protocol import LabelledImages
from .user import TorchDataset

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
    image_column: str = "image"
    label_column: str = "label"

    def load(self) -> LabelledImages:
        return load_dataset(self.spec, self.root, self.download, self.image_size, self.image_column,
                            self.label_column)


DataLike = str | DataSource | LabelledImages | torch.utils.data.Dataset
"""What every stage takes as data (SPEC 23): a spec, a :class:`DataSource`, a loaded dataset or a user's Dataset."""


def as_dataset(data: DataLike) -> LabelledImages:
    """A loaded dataset from a spec string, a :class:`DataSource`, a loaded dataset (returned as it is) or a user's
    map-style torch Dataset (:class:`~sepgraph.data.user.TorchDataset`, its labels read once)."""
    if isinstance(data, LabelledImages):
        return data
    if isinstance(data, torch.utils.data.Dataset):
        return TorchDataset.of(data)
    if isinstance(data, (str, DataSource)):
        return (data if isinstance(data, DataSource) else DataSource(data)).load()
    raise SepgraphError(f"data of type {type(data).__name__} is not a dataset: give a spec string, a DataSource, an "
                        "ImageDataset or a map-style torch.utils.data.Dataset of (image tensor, label)",
                        arguments=("data",))


def load_dataset(
    spec: str, data_root: str | Path = "data", download: bool = False, image_size: int | None = None,
    image_column: str = "image", label_column: str = "label",
) -> LabelledImages:
    """Load a dataset from its spec string (see the module docstring)."""
    if image_size is not None and image_size < 1:
        raise SepgraphError(f"image_size must be at least 1, got {image_size}", arguments=("image_size",))
    kind, _, argument = spec.partition(":")
    if kind == "py" and argument:
        return _python(spec, argument)
    if kind == "hf" and argument:
        return _hugging_face(spec, argument, image_column, label_column, image_size)
    if kind == "digits":
        return _digits(spec, argument or "test")
    if kind == "cifar10":
        return _cifar10(spec, argument or "test", Path(data_root), download)
    if kind == "npz" and argument:
        return _npz(spec, Path(argument))
    if kind == "imagefolder" and argument:
        return _imagefolder(spec, Path(argument), image_size)
    raise SepgraphError(
        f"unknown dataset {spec!r}; use digits[:test|train|all], cifar10[:test|train], npz:PATH, imagefolder:PATH, "
        "py:MODULE:FUNCTION or hf:PATH[:SPLIT]"
    )


def _python(spec: str, target: str) -> LabelledImages:
    """``py:package.module:function``: the dataset the user's function returns."""
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not function_name:
        raise SepgraphError(f"dataset {spec!r}: write py:package.module:function (a function with no arguments that "
                            "returns a torch Dataset)", arguments=("data",))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 (a user's module: any failure to import it is named in one line)
        raise SepgraphError(f"dataset {spec!r}: cannot import {module_name!r} ({error}); put it on PYTHONPATH or "
                            "install it", arguments=("data",)) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise SepgraphError(f"dataset {spec!r}: module {module_name!r} has no function {function_name!r}",
                            arguments=("data",))
    try:
        inspect.signature(function).bind()
    except (TypeError, ValueError) as error:
        raise SepgraphError(f"dataset {spec!r}: {function_name}() cannot be called with no arguments ({error}); "
                            "give a function that takes none", arguments=("data",)) from error
    made = function()
    if isinstance(made, (ImageDataset, TorchDataset)):
        return replace(made, spec=spec)
    if isinstance(made, torch.utils.data.Dataset) and hasattr(made, "__len__"):
        return TorchDataset.of(made, spec=spec, description=f"{type(made).__name__} from {target}")
    raise SepgraphError(f"dataset {spec!r}: {function_name}() returned a {type(made).__name__}, not a map-style "
                        "torch.utils.data.Dataset of (image tensor, label); return one", arguments=("data",))


def _hugging_face(spec: str, target: str, image_column: str, label_column: str, image_size: int | None
                  ) -> ImageDataset:
    """``hf:PATH[:split]``: a Hugging Face dataset saved to disk, its images read by index (PIL or arrays), its labels
    read once; class names from a ``ClassLabel`` column where it has one."""
    try:
        import datasets
    except ImportError as error:
        raise SepgraphError(f"dataset {spec!r} needs the 'datasets' package: pip install 'sepgraph[hf]'",
                            arguments=("data",)) from error
    path, _, split = target.partition(":")
    if not Path(path).exists():
        raise SepgraphError(f"dataset {spec!r}: {path!r} does not exist (an hf: dataset is a folder written by "
                            "save_to_disk)", arguments=("data",))
    try:
        loaded = datasets.load_from_disk(path)
    except (FileNotFoundError, ValueError) as error:
        raise SepgraphError(f"dataset {spec!r}: {path!r} is not a dataset saved with save_to_disk ({error})",
                            arguments=("data",)) from error
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SepgraphError(f"dataset {spec!r}: name a split, one of {', '.join(loaded)} (hf:PATH:SPLIT)",
                                arguments=("data",))
        loaded = loaded[split]
    elif split:
        raise SepgraphError(f"dataset {spec!r}: {path!r} holds one dataset without splits; leave out ':{split}'",
                            arguments=("data",))
    missing = [column for column in (image_column, label_column) if column not in loaded.column_names]
    if missing:
        raise SepgraphError(f"dataset {spec!r} has no column {missing[0]!r} (it has: "
                            f"{', '.join(loaded.column_names)}); name the image and label columns (--image-column, "
                            "--label-column)", arguments=("data",))
    feature = loaded.features[label_column]
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    labels = np.asarray(loaded[label_column])
    if np.issubdtype(labels.dtype, np.integer) and len(labels) and labels.min() < 0:
        raise SepgraphError(f"dataset {spec!r}: {int((labels < 0).sum()):,} items have label {int(labels.min())} "
                            "(unlabelled); choose a labelled split", arguments=("data",))
    table = loaded.select_columns([image_column])

    def read(index: int) -> np.ndarray:
        image = table[int(index)][image_column]
        return _as_rgb(image, image_size, f"{spec} item {index}")

    first = read(0)
    return replace(ImageDataset.from_reader(read, labels, names, spec=spec,
                                            description=f"Hugging Face dataset {Path(path).name}"
                                            + (f" ({split})" if split else ""), first=first),
                   image_size=image_size)


def _as_rgb(image: object, image_size: int | None, what: str) -> np.ndarray:
    """A PIL image or an (H, W[, C]) uint8 array as (H, W, 3) uint8, resized and centre-cropped to ``image_size``."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise SepgraphError(f"{what}: the image column holds a {type(image).__name__}, not an image; name the image "
                            "column (--image-column)", arguments=("data",))
    return read_image_file(image, image_size)


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
    return replace(ImageDataset.from_reader(lambda index: read_image_file(paths[index], image_size),
                                            np.asarray(folder.targets, dtype=np.int64), list(folder.classes),
                                            spec=spec, description=f"image folder {root.name}"),
                   image_size=image_size)
