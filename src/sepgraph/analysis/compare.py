"""Two models on the same vertices of the same data (SPEC 24): both analyses, and the model x model linear CKA.

:func:`compare` analyses each model into its own results folder (``a/`` and ``b/``, resumable), then extracts both
models' points on the shared vertices once more into Gram stores and writes ``cka_matrix.csv``: one row per point of
the first model, one column per point of the second, in the bounded memory of :func:`~.cka_matrix.cka_matrix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..data.sources import DataLike, as_dataset
from ..errors import SepgraphError
from ..parallel.workers import Workers
from ..results.cka_table import CKA_FILE, write_cka_matrix
from ..settings import GraphSettings, RunSettings
from .cka_matrix import GramStore, cka_matrix
from .run import Analysis, analyze, vertex_grams

FOLDERS = ("a", "b")
"""Where each model's analysis goes under the comparison's folder."""


@dataclass(frozen=True)
class ModelComparison:
    """Two analyses on the same vertices and the linear CKA between their points.

    Attributes:
        path: the comparison's folder; ``matrix`` is its ``cka_matrix.csv`` (rows: ``first``'s points).
    """

    path: Path
    first: Analysis
    second: Analysis

    @property
    def matrix(self) -> Path:
        return self.path / CKA_FILE


def compare(
    model_a: str | nn.Module,
    model_b: str | nn.Module,
    data: DataLike,
    settings: GraphSettings | None = None,
    *,
    weights_a: str | Path | None = None,
    weights_b: str | Path | None = None,
    data_b: DataLike | None = None,
    normalize: str = "cifar10",
    normalize_b: str | None = None,
    num_classes: int | None = None,
    points: str | Sequence[str] = "paper",
    run: RunSettings | None = None,
    out: str | Path = "results/compare",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> ModelComparison:
    """Analyse both models on the same data (``data_b``, when given, must hold the same images and labels: refused
    in one line otherwise, before anything is written) and write their model x model CKA matrix (SPEC 24)."""
    first, second = as_dataset(data), as_dataset(data if data_b is None else data_b)
    if first.digest != second.digest:
        raise SepgraphError(f"the two models' data differ ({first.spec!r}, digest {first.digest[:12]}, against "
                            f"{second.spec!r}, digest {second.digest[:12]}); compare them on the same images, so "
                            "that both are measured on the same vertices", arguments=("data_b",))
    out = Path(out)
    common = {"settings": settings, "num_classes": num_classes, "points": points, "run": run}
    models = ((model_a, first, weights_a, normalize), (model_b, second, weights_b, normalize_b or normalize))
    analyses = [analyze(model, dataset, weights=weights, normalize=norm, out=out / folder, resume=resume,
                        overwrite=overwrite, progress=progress, **common)
                for (model, dataset, weights, norm), folder in zip(models, FOLDERS, strict=True)]
    if resume and (out / CKA_FILE).is_file():  # both analyses as they were: so is their matrix
        return ModelComparison(out, *analyses)
    stores = [GramStore(out / f".grams-{folder}") for folder in FOLDERS]
    for (model, dataset, weights, norm), store in zip(models, stores, strict=True):  # every rank: collectives
        vertex_grams(model, dataset, store, weights=weights, normalize=norm, progress=progress, **common)
    if Workers.current().leader:
        names = [list(analysis.manifest.parameters.points) for analysis in analyses]
        budget = analyses[0].manifest.run.max_memory
        matrix = cka_matrix(stores[0], len(names[0]), stores[1], len(names[1]), max_memory=budget)
        write_cka_matrix(out / CKA_FILE, names[0], names[1], matrix)
        for store in stores:
            store.remove()
    return ModelComparison(out, *analyses)
