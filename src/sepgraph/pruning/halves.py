"""The selection and report halves of the evaluation images (SPEC 21): the analysis whose curves choose the cuts
sees only the selection half; only the report half's accuracies are reported."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..analysis.run import Analysis, analyze
from ..data.protocol import LabelledImages
from ..data.samples import SampleSets, split_halves
from ..data.sources import DataLike, DataSource, as_dataset
from ..errors import SepgraphError
from ..files import atomic_text
from ..results.manifest import Parameters
from ..settings import GraphSettings

HALVES_FILE = "halves.json"
"""Where a results folder records its halves."""


@dataclass(frozen=True)
class Halves:
    """How one evaluation set was split (SPEC 21).

    Attributes:
        data: the whole set's spec; digest: :attr:`~sepgraph.data.dataset.ImageDataset.digest` of it.
        fraction, seed: the selection half's share of each class and the split's seed.
        selection, report: ascending indices into the whole set, disjoint, together all of it.
    """

    data: str
    digest: str
    fraction: float
    seed: int
    selection: tuple[int, ...]
    report: tuple[int, ...]

    @classmethod
    def of(cls, data: LabelledImages, fraction: float, seed: int) -> Halves:
        selection, report = split_halves(data.labels, fraction, seed)
        return cls(data.spec, data.digest, fraction, seed, tuple(selection.tolist()), tuple(report.tolist()))

    def half(self, whole: LabelledImages, name: str) -> LabelledImages:
        """The ``selection`` or ``report`` half of ``whole``, which must be the set these halves split."""
        if whole.digest != self.digest:
            raise SepgraphError(f"test_data {whole.spec!r} is not the set whose halves were recorded ({self.data!r}, "
                                f"digest {self.digest[:12]}..., {len(self.selection) + len(self.report):,} images); "
                                "leave test_data out to measure on the recorded report half", arguments=("test_data",))
        indices = np.asarray(getattr(self, name))
        return whole.subset(indices, f"{self.data}[{name} {self.fraction:g} seed {self.seed}]",
                            f"{whole.description}, its {name} half ({len(indices):,} images, SPEC 21)")

    def check(self, fraction: float, seed: int) -> None:
        """Refuse other split settings than the recorded ones."""
        if (fraction, seed) != (self.fraction, self.seed):
            raise SepgraphError(f"selection_fraction {fraction:g} and split_seed {seed}: this folder's halves were "
                                f"made with {self.fraction:g} and {self.seed}; use those, or analyse into a new folder",
                                arguments=("selection_fraction", "split_seed"))

    def write(self, folder: Path) -> None:
        atomic_text(folder / HALVES_FILE, json.dumps(asdict(self)) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Halves | None:
        path = folder / HALVES_FILE
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if "sha256" in record:  # written before the field was renamed: the same value (the set's file hash)
            record["digest"] = record.pop("sha256")
        return cls(**{**record, "selection": tuple(record["selection"]), "report": tuple(record["report"])})


def analyse_selection(model: str, data: DataLike, settings: GraphSettings | None = None, *,
                      fraction: float = 0.5, seed: int = 0, out: str | Path, **analysis: object) -> Analysis:
    """:func:`~sepgraph.analysis.run.analyze` of the selection half of ``data`` into ``out`` (resumed where it
    stopped), and the halves recorded there (``halves.json``); ``analysis``: ``analyze``'s other arguments."""
    whole = as_dataset(data)
    halves = Halves.of(whole, fraction, seed)
    recorded = Halves.read(Path(out))
    if recorded is not None:
        recorded.check(fraction, seed)
    result = analyze(model, halves.half(whole, "selection"), settings, out=out, resume=True, **analysis)
    halves.write(Path(out))
    return result


def evaluation_halves(results: Path, parameters: Parameters, test_data: DataLike | None,
                      like: DataSource | None, fraction: float, seed: int) -> tuple[LabelledImages, LabelledImages]:
    """(selection, report): where a comparison makes its choices (scores such as ``ablation``) and where it
    measures the accuracies it reports (SPEC 21).

    - ``results`` records its halves (``halves.json``): those, the report half taken from ``test_data`` when given
      (it must be the set that was split).
    - Else, where the accuracies would be measured on the analysis's own data (``test_data`` None, or the same
      content): that data split by ``fraction`` and ``seed``, refused when the analysis used any report-half image
      (its vertices, histogram samples or Lu et al.'s batches).
    - Else ``test_data`` as given is the report set (images the analysis never saw), and the analysis's data the
      selection set.

    Args:
        parameters: the analysis manifest's parameters.
        like: how to read a spec (its data root), e.g. the training data's source.
    """
    def load(spec: str) -> LabelledImages:
        try:
            return (replace(like, spec=spec) if like is not None else DataSource(spec)).load()
        except SepgraphError as error:
            raise SepgraphError(f"the analysis's data {spec!r} cannot be read again by its name ({error}); give "
                                "test_data: the same images", arguments=("test_data",)) from error

    halves = Halves.read(results)
    if halves is not None:
        halves.check(fraction, seed)
        whole = load(halves.data) if test_data is None else as_dataset(test_data)  # checked: the set that was split
        return halves.half(whole, "selection"), halves.half(whole, "report")
    if "[selection " in parameters.data:
        raise SepgraphError(f"the analysis in {str(results)!r} is of a selection half, but {HALVES_FILE} is missing "
                            "(an interrupted 'prune --model'); run that command again to record it")
    analysed = load(parameters.data)
    given = analysed if test_data is None else as_dataset(test_data)
    if given.digest != analysed.digest:
        return analysed, given
    halves = Halves.of(analysed, fraction, seed)
    used = SampleSets.choose(analysed.labels, parameters.num_classes or analysed.num_classes,
                             parameters.settings).order
    seen = np.intersect1d(used, np.asarray(halves.report))
    if len(seen):
        raise SepgraphError(
            f"the analysis in {str(results)!r} used {len(used):,} images of {analysed.spec!r}, {len(seen):,} of them "
            "in the report half whose accuracies would be reported; analyse the selection half into a new folder "
            "('sepgraph prune NEW_FOLDER --model ... --data ...'), or give test_data images the analysis never saw",
            arguments=("test_data",))
    return halves.half(analysed, "selection"), halves.half(analysed, "report")
