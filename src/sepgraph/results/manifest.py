"""``manifest.json`` as one typed record (SPEC 12): what was analysed, with what, how it ran and how long it took.

:class:`Manifest` owns the file's keys as :class:`~sepgraph.results.layer_row.LayerRow` owns ``layers.csv``'s
columns: every reader takes attributes, and only :meth:`Manifest.to_json`/:meth:`Manifest.from_json` know the JSON
form (older formats are brought to today's by :func:`~sepgraph.results.formats.upgraded_manifest`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..models.protocol import RemovableUnit
from ..settings import GraphSettings
from .formats import FORMAT_VERSION, upgraded_manifest

GIVEN_FEATURES = "features"
"""What the manifest records where a model would stand when the features were given (SPEC 24)."""


@dataclass(frozen=True)
class Parameters:
    """What decides an analysis's numbers; a resume must match every field (SPEC 12).

    Attributes:
        model: the model's name (a zoo name or the module's class), or :data:`GIVEN_FEATURES`.
        weights, weights_sha256: the weights file and its sha256, None without one.
        data, data_sha256: the data's spec and what identifies its content (None where it has no file).
        normalize: the normalisation the inputs got (or what the data's own transform did).
        convention: the layer-point convention (SPEC 1), ``explicit`` for a list of names or given features.
        points: the layer points' names, in network order.
        settings: the graph settings (SPEC 2-7), recorded field by field.
        num_classes: the model's head size (pruning rebuilds it); the data's classes are :attr:`Manifest.classes`.
        gemm: what computed the tile products (another library computes other floats), None before it was recorded.
    """

    model: str
    weights: str | None
    weights_sha256: str | None
    data: str
    data_sha256: str | None
    normalize: str
    convention: str
    points: tuple[str, ...]
    settings: GraphSettings
    num_classes: int
    gemm: str | None

    def to_json(self) -> dict[str, object]:
        """The manifest's ``parameters``: every field under its name, the settings' fields inline."""
        head = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("settings", "num_classes",
                                                                                        "gemm")}
        return head | {"points": list(self.points)} | asdict(self.settings) | {"num_classes": self.num_classes,
                                                                               "gemm": self.gemm}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Parameters:
        """Inverse of :meth:`to_json`."""
        own = {f.name: data.get(f.name) for f in fields(cls) if f.name != "settings"}
        return cls(**own | {"points": tuple(data["points"]), "settings": GraphSettings.from_parameters(data)})


@dataclass
class RunRecord:
    """How an analysis ran (never part of its numbers): device, memory budget, batches, processes and tiles.

    Attributes:
        peak_rss_bytes: each process's peak resident memory, once the analysis is complete.
    """

    device: str
    max_memory: int
    spill_dir: str | None
    batch_size: int | None
    torch_threads: int
    processes: int
    tile_rows: int | None
    gemm: str | None = None
    gemm_threads: int | None = None
    peak_rss_bytes: list[int] | None = None

    def to_json(self) -> dict[str, object]:
        """The manifest's ``run``; the peak memory only once it is known."""
        record = asdict(self)
        if self.peak_rss_bytes is None:
            del record["peak_rss_bytes"]
        return record


@dataclass(frozen=True)
class PointRecord:
    """One point of a complete analysis as the manifest lists it: its shape, zero vectors and stage seconds."""

    name: str
    shape: tuple[int, ...]
    zero_vectors: int
    seconds: dict[str, float]


@dataclass
class Manifest:
    """One analysis's ``manifest.json`` (SPEC 12).

    Attributes:
        status: ``running``, ``complete``, ``failed`` or ``interrupted`` (then :attr:`error` says why).
        removable_units: the model's removable units under the analysed convention (SPEC 8), None where it has none.
        refused_units: a model outside the zoo's residual blocks that are never offered, with why (SPEC 25).
        hist_pairs: pairs the histograms count.
        seconds: per stage and in total, once complete; ``layers`` likewise, one record per point.
    """

    sepgraph: str
    created: str
    status: str
    parameters: Parameters
    data_description: str
    classes: list[str]
    removable_units: list[RemovableUnit] | None
    hist_pairs: int
    run: RunRecord
    versions: dict[str, str]
    seconds: dict[str, float] | None = None
    layers: list[PointRecord] | None = None
    error: str | None = None
    format_version: int = FORMAT_VERSION
    refused_units: dict[str, str] | None = None

    def to_json(self) -> dict[str, object]:
        """The file's content, in a fixed key order; fields not yet known are left out."""
        record: dict[str, object] = {"format_version": self.format_version, "sepgraph": self.sepgraph,
                                     "created": self.created, "status": self.status,
                                     "parameters": self.parameters.to_json(),
                                     "data_description": self.data_description, "classes": list(self.classes),
                                     "removable_units": None if self.removable_units is None
                                     else [asdict(unit) for unit in self.removable_units],
                                     "hist_pairs": self.hist_pairs, "run": self.run.to_json(),
                                     "versions": dict(self.versions)}
        if self.refused_units is not None:
            record["refused_units"] = dict(self.refused_units)
        if self.seconds is not None:
            record["seconds"] = dict(self.seconds)
        if self.layers is not None:
            record["layers"] = [asdict(layer) | {"shape": list(layer.shape)} for layer in self.layers]
        if self.error is not None:
            record["error"] = self.error
        return record

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Manifest:
        """Inverse of :meth:`to_json`, for any readable results format (older ones upgraded first)."""
        data = upgraded_manifest(data)
        units = data.get("removable_units")
        layers = data.get("layers")
        return cls(sepgraph=data["sepgraph"], created=data["created"], status=data["status"],
                   parameters=Parameters.from_json(data["parameters"]), data_description=data["data_description"],
                   classes=list(data["classes"]),
                   removable_units=None if units is None else [RemovableUnit(**unit) for unit in units],
                   hist_pairs=data["hist_pairs"], run=RunRecord(**data["run"]), versions=dict(data["versions"]),
                   seconds=data.get("seconds"),
                   layers=None if layers is None else [PointRecord(layer["name"], tuple(layer["shape"]),
                                                                   layer["zero_vectors"], layer["seconds"])
                                                       for layer in layers],
                   error=data.get("error"), format_version=data["format_version"],
                   refused_units=data.get("refused_units"))

    @property
    def title(self) -> str:
        """What the figures and the report are of: the model (or the given features) on the data."""
        what = "given features" if self.given_features else self.parameters.model
        return f"{what} on {self.data_description}"

    @property
    def given_features(self) -> bool:
        """Whether the features were given rather than extracted from a model (SPEC 24)."""
        return self.parameters.model == GIVEN_FEATURES

