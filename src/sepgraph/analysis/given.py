"""Features a user already has, measured as an analysis measures a model's (SPEC 24).

:class:`GivenFeatures` holds, per layer point in network order, how to get that point's (N, D) features: an array,
a memory-mapped ``.npy`` file, an ``.npz`` member, or a function returning one. A point is read when it is measured
and dropped before the next is read, so memory holds one point, as a model's extraction does; :meth:`check` reads
every point once before anything is written (counts, shapes, finite values, and the digest a resume checks).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SepgraphError
from ..models.protocol import LayerPoint
from .features import PointFeatures

FeatureArray = np.ndarray | Callable[[], np.ndarray]
"""One point's (N, ...) features, or a function that returns them when the point is measured."""
FeaturesLike = Mapping[str, FeatureArray] | Sequence[tuple[str, FeatureArray]] | str | Path
"""Points' features by name: a mapping or (name, features) pairs, an ``.npz`` file, or a folder of ``.npy`` files
(sorted by file name; a leading number and underscore, ``003_``, orders them and is not part of the name)."""
NUMBERED = re.compile(r"^(\d+)_")
"""The leading number of a folder's file names, which orders the points and is not part of their names."""
CHECK_ROWS = 4096
"""Rows checked for finite values at a time (bounds the check's temporary)."""


@dataclass(frozen=True)
class GivenFeatures:
    """Each point's features by name, in network order, read one point at a time (SPEC 24).

    Attributes:
        names: the points' names, in network order (``cka_prev`` compares neighbours, ``cka_last`` the last).
        loaders: for each point, what returns its (N, ...) features.
        spec: how the manifest names them: the file or folder, or ``features`` for objects in memory.
    """

    names: tuple[str, ...]
    loaders: tuple[Callable[[], np.ndarray], ...]
    spec: str

    @classmethod
    def of(cls, features: FeaturesLike, points: Sequence[str] | None = None) -> GivenFeatures:
        """From any :data:`FeaturesLike`; ``points`` gives the network order (default: the order given, a folder's
        files by their leading number) and may leave points out."""
        spec, pairs = _pairs(features)
        names = [name for name, _ in pairs]
        _refuse_repeats(names, "features")
        if not pairs or (points is not None and not points):
            raise SepgraphError(f"no features in {spec!r}: give at least one layer point's (N, D) array",
                                arguments=("features",))
        loaders = {name: _loader(value) for name, value in pairs}
        if points is not None:
            _refuse_repeats(list(points), "points")
            unknown = [name for name in points if name not in loaders]
            if unknown:
                raise SepgraphError(f"points {', '.join(map(repr, unknown))} are not among the features "
                                    f"({', '.join(names)}); name only those", arguments=("points",))
            names = list(points)
        return cls(tuple(names), tuple(loaders[name] for name in names), spec)

    def load(self, position: int, samples: int) -> np.ndarray:
        """Point ``position``'s features as (samples, ...) float32, refused in one line when the count differs."""
        name = self.names[position]
        try:
            array = np.asarray(self.loaders[position]())
        except SepgraphError:
            raise
        except Exception as error:  # a user's function or file: any failure is theirs to fix
            raise SepgraphError(f"the features of point {name!r} could not be read ({type(error).__name__}: "
                                f"{error})", arguments=("features",)) from error
        if array.ndim < 2 or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise SepgraphError(f"the features of point {name!r} have shape {array.shape} and dtype {array.dtype}; "
                                "give real numbers, one row per sample: (N, D) or (N, C, H, W)",
                                arguments=("features",))
        if len(array) != samples:
            raise SepgraphError(f"point {name!r} has features of {len(array):,} samples, but labels has "
                                f"{samples:,}; give every point the same samples, in the labels' order",
                                arguments=("labels",))
        return array.astype(np.float32, copy=False)

    def check(self, samples: int) -> tuple[list[tuple[int, ...]], str]:
        """Read every point once: each point's per-sample shape, and the sha256 of every point's float32 rows (in
        order) that names this content in the manifest. Non-finite values are refused in one line."""
        digest = hashlib.sha256()
        shapes = []
        for position, name in enumerate(self.names):
            array = self.load(position, samples)
            for start in range(0, samples, CHECK_ROWS):
                rows = np.ascontiguousarray(array[start:start + CHECK_ROWS])
                if not np.isfinite(rows).all():
                    row = start + int(np.flatnonzero(~np.isfinite(rows).reshape(len(rows), -1).all(1))[0])
                    raise SepgraphError(f"the features of point {name!r} are not finite (NaN or infinite) at "
                                        f"sample {row:,}; remove or repair those samples", arguments=("features",))
                digest.update(rows.tobytes())
            shapes.append(tuple(int(size) for size in array.shape[1:]))
            del array
        return shapes, digest.hexdigest()

    def points(self) -> list[LayerPoint]:
        """The points as layer points (named by themselves)."""
        return [LayerPoint(name, name) for name in self.names]

    def features(self, points: Sequence[LayerPoint], indices: np.ndarray, samples: int
                 ) -> Iterator[PointFeatures]:
        """Each of ``points``' (len(indices), D) float32 rows ``indices``, from the last point to the first, one
        point read at a time."""
        for index in range(len(points) - 1, -1, -1):
            position = self.names.index(points[index].name)
            array = self.load(position, samples)
            shape = tuple(int(size) for size in array.shape[1:])
            rows = np.ascontiguousarray(array[indices].reshape(len(indices), math.prod(shape)), dtype=np.float32)
            del array
            yield PointFeatures(index, points[index], shape, rows)


def _pairs(features: FeaturesLike) -> tuple[str, list[tuple[str, FeatureArray]]]:
    """(spec, (name, features) pairs) of any :data:`FeaturesLike`."""
    if isinstance(features, (str, Path)):
        path = Path(features)
        if path.is_dir():
            files = sorted(path.glob("*.npy"), key=_file_order)
            return str(path), [(NUMBERED.sub("", file.stem), lambda file=file: np.load(file, mmap_mode="r"))
                               for file in files]
        if path.suffix == ".npz" and path.is_file():
            with np.load(path) as archive:
                keys = list(archive.files)
            return str(path), [(key, lambda key=key: _member(path, key)) for key in keys]
        raise SepgraphError(f"features {str(path)!r} are neither an .npz file nor a folder of .npy files; save each "
                            "point's (N, D) array under its name", arguments=("features",))
    pairs = list(features.items()) if isinstance(features, Mapping) else list(features)
    if not all(isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) for pair in pairs):
        raise SepgraphError("features must map point names to arrays: a dict, (name, array) pairs, an .npz file "
                            "or a folder of .npy files", arguments=("features",))
    return "features", pairs


def _file_order(file: Path) -> tuple[int, str]:
    """A folder's files by their leading number (``2_`` before ``10_``), then by name."""
    number = NUMBERED.match(file.stem)
    return (int(number.group(1)) if number else -1, file.stem)


def _member(path: Path, key: str) -> np.ndarray:
    """One array of an ``.npz`` file, read alone."""
    with np.load(path) as archive:
        return archive[key]


def _loader(value: FeatureArray) -> Callable[[], np.ndarray]:
    return value if callable(value) else lambda: value


def _refuse_repeats(names: list[str], argument: str) -> None:
    """One line naming a point given twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SepgraphError(f"point {name!r} is given twice in {argument}; give each layer point once",
                                arguments=(argument,))
        seen.add(name)
