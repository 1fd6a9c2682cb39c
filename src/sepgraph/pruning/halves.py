"""The selection and report halves of the evaluation images (SPEC 21): the analysis whose curves choose the cuts
sees only the selection half; only the report half's accuracies are reported."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..analysis.run import Analysis, analyze
from ..data.dataset import ImageDataset
from ..data.samples import select_vertices, split_halves
from ..data.sources import DataSource, as_dataset
from ..errors import SepgraphError
from ..files import atomic_text
from ..settings import GraphSettings

HALVES_FILE = "halves.json"
"""Where a results folder records its halves."""


@dataclass(frozen=True)
class Halves:
    """How one evaluation set was split (SPEC 21).

    Attributes:
        data: the whole set's spec; sha256: its file's hash (None where it has no file).
        fraction, seed: the selection half's share of each class and the split's seed.
        selection, report: ascending indices into the whole set, disjoint, together all of it.
    """

    data: str
    sha256: str | None
    fraction: float
    seed: int
    selection: tuple[int, ...]
    report: tuple[int, ...]

    @classmethod
    def of(cls, data: ImageDataset, fraction: float, seed: int) -> Halves:
        selection, report = split_halves(data.labels, fraction, seed)
        return cls(data.spec, data.sha256, fraction, seed, tuple(selection.tolist()), tuple(report.tolist()))

    def half(self, whole: ImageDataset, name: str) -> ImageDataset:
        """The ``selection`` or ``report`` half of ``whole`` (the set these halves split, checked by hash)."""
        if self.sha256 is not None and whole.sha256 != self.sha256:
            raise SepgraphError(f"the halves recorded split {self.data!r} (sha256 {self.sha256[:12]}...), not "
                                f"{whole.spec!r}; give the data the analysis was made of")
        return whole.subset(np.asarray(getattr(self, name)), f"{self.data}[{name} {self.fraction:g} seed {self.seed}]")

    def write(self, folder: Path) -> None:
        atomic_text(folder / HALVES_FILE, json.dumps(asdict(self)) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Halves | None:
        path = folder / HALVES_FILE
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return cls(**{**record, "selection": tuple(record["selection"]), "report": tuple(record["report"])})


def analyse_selection(model: str, data: str | DataSource | ImageDataset, settings: GraphSettings | None = None, *,
                      fraction: float = 0.5, seed: int = 0, out: str | Path, **analysis: object) -> Analysis:
    """:func:`~sepgraph.analysis.run.analyze` of the selection half of ``data`` into ``out`` (resumed where it
    stopped), and the halves recorded there (``halves.json``); ``analysis``: ``analyze``'s other arguments."""
    whole = as_dataset(data)
    halves = Halves.of(whole, fraction, seed)
    result = analyze(model, halves.half(whole, "selection"), settings, out=out, resume=True, **analysis)
    halves.write(Path(out))
    return result


def selection_set(results: Path, parameters: dict, like: DataSource | None) -> ImageDataset:
    """The images every choice is made on (SPEC 21): the selection half recorded in ``results``, else the analysis's
    own data (which chose the cuts already)."""
    halves = Halves.read(results)
    spec = parameters["data"] if halves is None else halves.data
    data = (replace(like, spec=spec) if like is not None else DataSource(spec)).load()
    return data if halves is None else halves.half(data, "selection")


def report_set(results: Path, parameters: dict, test_data: str | DataSource | ImageDataset | None,
               like: DataSource | None, fraction: float, seed: int) -> ImageDataset:
    """The images whose accuracies a comparison reports (SPEC 21): the report half recorded in ``results``; else,
    where the test data is the analysis's own (``test_data`` None, or the same file), its report half, refused
    when the analysis chose vertices there; else ``test_data`` as given (images the analysis never saw).

    Args:
        parameters: the analysis manifest's parameters.
        like: how to read a spec (its data root), e.g. the training data's source.
    """
    def load(spec: str) -> ImageDataset:
        return (replace(like, spec=spec) if like is not None else DataSource(spec)).load()

    halves = Halves.read(results)
    if halves is not None:
        return halves.half(load(halves.data) if test_data is None else as_dataset(test_data), "report")
    analysed = load(parameters["data"])
    given = analysed if test_data is None else as_dataset(test_data)
    if given.spec != analysed.spec and (given.sha256 is None or given.sha256 != analysed.sha256):
        return given
    halves = Halves.of(analysed, fraction, seed)
    graph = GraphSettings.from_parameters(parameters)
    vertices = select_vertices(analysed.labels, graph.vertices, graph.vertex_choice, graph.seed,
                               parameters.get("num_classes"))
    seen = np.intersect1d(vertices, np.asarray(halves.report))
    if len(seen):
        raise SepgraphError(
            f"the analysis in {str(results)!r} chose its {len(vertices):,} vertices among all of {analysed.spec!r}, "
            f"{len(seen):,} of them in the report half whose accuracies would be reported; analyse the selection "
            "half into a new folder ('sepgraph prune NEW_FOLDER --model ... --data ...'), or give test_data images "
            "the analysis never saw", arguments=("test_data",))
    return halves.half(analysed, "report")
