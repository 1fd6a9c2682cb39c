"""One analysis (SPEC 2-7, 12-15, 18): features at every layer point -> one scan each -> the results folder.

:func:`analyze` is what ``sepgraph analyze`` runs, on one process or as every rank of a torchrun job; it
writes the results folder of SPEC 12 (rank 0 alone) and returns an :class:`Analysis` for notebooks.
"""

from __future__ import annotations

import hashlib
import logging
import math
import platform
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Protocol

import networkx
import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..data.protocol import LabelledImages
from ..data.samples import SampleSets
from ..data.sources import DataLike, as_dataset
from ..devices import resolve_device
from ..errors import SepgraphError
from ..graph.peers import CenteredGram
from ..graph.rows import exact_row_norms, unit_rows
from ..graph.scan import ScanRequest
from ..graph.tiles import TilePlan
from ..models.capture import point_shapes
from ..models.checkpoints import load_weights
from ..models.factory import build_model
from ..models.points import UnitRun, layer_points, removable_units, unit_runs
from ..models.protocol import LayerPoint, ZooModel
from ..models.residual import refused_blocks
from ..parallel.merge import scan_layer
from ..parallel.workers import Workers, gather_leading
from ..progress import progress_bar
from ..results.cka_table import CKA_FILE, write_cka_matrix
from ..results.depth_table import DEPTH_FILE, write_depth
from ..results.folder import ResultsFolder
from ..results.layer_row import LayerRow
from ..results.manifest import GIVEN_FEATURES, Manifest, Parameters, PointRecord, RunRecord
from ..settings import GraphSettings, RunSettings
from .cka import CkaLinks, Reference
from .cka_matrix import GRAMS_FOLDER, GramStore, cka_matrix
from .depth import DepthObserver, depth_rows
from .features import PointFeatures, RowObserver, extract_features, feature_budget
from .given import FeaturesLike, GivenFeatures
from .point import measure_point

log = logging.getLogger(__name__)

STAGES = ("features", "similarity", "modularity", "peers")
"""The stages whose seconds the manifest records."""


@dataclass
class Analysis:
    """A finished analysis: its folder, manifest and one :class:`LayerRow` per layer point."""

    path: Path
    manifest: Manifest
    rows: list[LayerRow] = field(default_factory=list)

    def to_pandas(self):
        """layers.csv as a pandas DataFrame (needs pandas)."""
        import pandas

        return pandas.DataFrame([row.as_record() for row in self.rows])


def analyze(
    model: str | nn.Module,
    data: DataLike,
    settings: GraphSettings | None = None,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    normalize: str = "cifar10",
    points: str | Sequence[str] = "paper",
    run: RunSettings | None = None,
    out: str | Path = "results/analysis",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Analysis:
    """Measure how every layer point separates the classes (SPEC 2-7) and write the results folder (SPEC 12).

    Args:
        model: a name for :func:`~sepgraph.models.factory.build_model` (built with ``settings.seed`` and
            ``weights``) or a module (``weights`` loaded into it when given).
        data: a dataset spec, a :class:`~sepgraph.data.sources.DataSource` or a loaded dataset.
        settings: the graph options (default: the paper's, :class:`GraphSettings`).
        num_classes: head size of a model built by name (default: the dataset's classes); recorded as the
            manifest's ``num_classes``.
        normalize: the per-channel normalisation the model was trained with.
        points: a layer-point convention (SPEC 1) or an explicit list of module names.
        run: device, memory budget, batch size and tile rows (:class:`RunSettings`); they never change a number.
        out, resume, overwrite: the results folder, and whether to continue or replace what it holds.

    Per layer point: the similarity histogram over all pairs of ``settings.hist_samples`` samples,
    the top-|E| subgraph among the vertices with its r, AQ, EQ, M and Newman Q, Lu et al.'s Q
    over disjoint batches and the vertex measures, all from one scan of the similarity tiles
    (:func:`~sepgraph.analysis.point.measure_point`). Features of each point are extracted once for the union
    of those samples, vertices first, in one pass per group of points that fits the memory budget.
    """
    started = time.perf_counter()
    settings, run = settings or GraphSettings(), run or RunSettings()
    context, manifest = _prepare(model, as_dataset(data), settings, weights, num_classes, normalize, points, run,
                                 progress)
    return _analysis(context, settings, manifest, out, resume, overwrite, started)


def measure(
    features: FeaturesLike,
    labels: Sequence[int] | np.ndarray,
    settings: GraphSettings | None = None,
    *,
    points: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    description: str = "the labelled samples",
    run: RunSettings | None = None,
    out: str | Path = "results/measure",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Analysis:
    """Measure features you already have exactly as :func:`analyze` measures a model's (SPEC 24).

    Args:
        features: each point's (N, D) (or (N, C, H, W)) features by name, in network order: a dict or (name,
            array) pairs whose values may be functions returning the array (called when the point is measured), an
            ``.npz`` file, or a folder of ``.npy`` files (read memory-mapped). One point is held at a time.
        labels: (N,) int class of each sample, in the features' row order.
        points: the network order, when the features' own order is not it (``cka_prev`` compares neighbours,
            ``cka_last`` the last); it may leave points out.
        classes: the classes' names (default: their numbers).
        description: how the report names the data.

    The last point is read first and its Gram kept (``cka_last``); the others follow from the last to the first,
    as an analysis measures them. Every point is read once beforehand to check it (and to digest it for a resume).
    Returns the same :class:`Analysis`, folder and numbers as :func:`analyze` gives for the same features.
    """
    started = time.perf_counter()
    settings, run = settings or GraphSettings(), run or RunSettings()
    context, manifest = _prepare_given(GivenFeatures.of(features, points), labels, settings, classes, description,
                                       run, progress)
    return _analysis(context, settings, manifest, out, resume, overwrite, started)


def vertex_grams(model: str | nn.Module, data: DataLike, store: GramStore, settings: GraphSettings | None = None, *,
                 weights: str | Path | None = None, num_classes: int | None = None, normalize: str = "cifar10",
                 points: str | Sequence[str] = "paper", run: RunSettings | None = None, progress: bool = True
                 ) -> Manifest:
    """Every layer point's centred vertex Gram (SPEC 15) into ``store`` (on rank 0), from one extraction of the
    vertices alone in the batches of :func:`analyze` (so the Grams its analysis computes), and the manifest that
    analysis would start with; the arguments are :func:`analyze`'s."""
    settings, run = settings or GraphSettings(), run or RunSettings()
    context, manifest = _prepare(model, as_dataset(data), settings, weights, num_classes, normalize, points, run,
                                 progress)
    failed = _store_grams(context, list(range(len(context.points))), store if context.workers.leader else None)
    if failed:
        raise next(iter(failed.values()))
    return manifest


def _analysis(context: _Context, settings: GraphSettings, manifest: Manifest, out: str | Path, resume: bool,
              overwrite: bool, started: float) -> Analysis:
    """Every point measured into the results folder (rank 0 writes it), with its depth measures and CKA matrix."""
    with ExitStack() as stack:
        folder, stored, missing, depth_missing, grams_needed = _open_folder(stack, context, out, manifest, resume,
                                                                            overwrite)
        clock = StageClock()
        store = GramStore(Path(out) / GRAMS_FOLDER) if context.workers.leader else None
        failed = _store_grams(context, grams_needed, store)
        links = CkaLinks(len(context.points) - 1, _references(context, missing, store, failed))
        clock.lap("peers")
        observer = context.depth_observer() if depth_missing else None
        _measure_missing(context, settings, missing, links, clock, folder, stored, observer, store)
        if observer is not None:
            _measure_depth(context, observer, folder, fed=bool(missing))
        peaks = gather_leading(np.array([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0]),
                               context.workers)
        if not context.workers.leader:
            return Analysis(Path(out), manifest, [])
        clock.restart()
        _write_cka_matrix(folder, store, failed, context.budget)
        clock.lap("peers")
        _write_complete(folder, stored, settings, clock, peaks, started)
    return Analysis(Path(out), folder.manifest, stored)


class FeatureSource(Protocol):
    """Where an analysis's features come from: a model's extraction or features a user gives (SPEC 24)."""

    def features(self, points: list[LayerPoint], indices: np.ndarray, observer: RowObserver | None
                 ) -> Iterator[PointFeatures]:
        """Each point's (len(indices), D) float32 rows of the given samples, from the last point to the first."""

    def shapes(self, points: list[LayerPoint], indices: np.ndarray) -> list[tuple[int, ...]]:
        """Each point's per-sample shape."""


@dataclass
class ModelFeatures:
    """A model's features at its layer points (SPEC 2), extracted in batches under a memory budget."""

    model: nn.Module
    dataset: LabelledImages
    normalize: str
    run: RunSettings
    budget: int
    progress: bool

    def features(self, points: list[LayerPoint], indices: np.ndarray, observer: RowObserver | None
                 ) -> Iterator[PointFeatures]:
        yield from extract_features(self.model, points, self.dataset, indices, normalize=self.normalize,
                                    batch_size=self.run.batch_size, device=self.run.device, max_memory=self.budget,
                                    spill_dir=self.run.spill_dir, progress=self.progress, reverse=True,
                                    observer=observer)

    def shapes(self, points: list[LayerPoint], indices: np.ndarray) -> list[tuple[int, ...]]:
        return point_shapes(self.model, points, self.dataset.tensors(indices[:1], self.normalize))


@dataclass
class GivenSource:
    """Features a user gives (:class:`GivenFeatures`), read one point at a time."""

    given: GivenFeatures
    samples: int
    shapes_of: list[tuple[int, ...]]

    def features(self, points: list[LayerPoint], indices: np.ndarray, observer: RowObserver | None
                 ) -> Iterator[PointFeatures]:
        yield from self.given.features(points, indices, self.samples)

    def shapes(self, points: list[LayerPoint], indices: np.ndarray) -> list[tuple[int, ...]]:
        return [self.shapes_of[self.given.names.index(point.name)] for point in points]


@dataclass
class _Context:
    """What every stage of one analysis on this rank needs: where the features come from and their points, the
    samples, where and how to run, and the tiles."""

    source: FeatureSource
    sample_sets: SampleSets
    points: list[LayerPoint]
    run: RunSettings
    device: torch.device
    budget: int
    plan: TilePlan
    workers: Workers
    progress: bool
    runs: list[UnitRun] | None

    def rows(self, n_rows: int) -> tuple[int, int, int, int]:
        """(first, start, stop, end): this rank's rows start:stop of the first ``n_rows`` rows of the extraction
        order, and the rows first:end it extracts for them (whole batches of a single-process extraction)."""
        start, stop = self.plan.over(n_rows).slice_of(self.workers.rank)
        size = self.run.batch_size
        return start // size * size, start, stop, min(-(-stop // size) * size, n_rows)

    def extract(self, points: list[LayerPoint], n_rows: int, observer: DepthObserver | None = None
                ) -> Iterator[PointFeatures]:
        """Each point's features (from the last point) for this rank's rows of the first ``n_rows`` rows of
        the extraction order, run in the batches of a single-process extraction (so the same numbers); an
        ``observer`` of :meth:`depth_observer` sees its points in the first pass."""
        first, start, stop, end = self.rows(n_rows)
        if start == stop:  # more processes than this scan's tile rows: nothing of it here
            yield from self._empty(points)
            return
        for item in self.source.features(points, self.sample_sets.order[first:end], observer):
            yield replace(item, features=item.features[start - first:stop - first])
            del item

    def depth_observer(self) -> DepthObserver:
        """What keeps this rank's per-sample cosines of every run (SPEC 22) during a full extraction."""
        first, start, stop, _ = self.rows(len(self.sample_sets.order))
        return DepthObserver(self.runs or [], self.points, (start - first, stop - first))

    def _empty(self, points: list[LayerPoint]) -> Iterator[PointFeatures]:
        """No rows of each point (from the last), for a rank that holds none."""
        shapes = self.source.shapes(points, self.sample_sets.order[:1])
        for position in range(len(points) - 1, -1, -1):
            yield PointFeatures(position, points[position], shapes[position],
                                np.empty((0, math.prod(shapes[position])), dtype=np.float32))


def _prepare(model: str | nn.Module, dataset: LabelledImages, settings: GraphSettings, weights: str | Path | None,
             num_classes: int | None, normalize: str, points: str | Sequence[str], run: RunSettings,
             progress: bool) -> tuple[_Context, Manifest]:
    """The model, its points, the samples and the tiles, checked before anything is written; and the manifest."""
    classes = dataset.num_classes if num_classes is None else num_classes
    if isinstance(model, str):
        model_name = model
        model, weights_sha256 = build_model(model, classes, weights, settings.seed)
    else:
        model_name = type(model).__name__
        weights_sha256 = load_weights(model, weights) if weights else None
    device = resolve_device(run.device)
    convention, names = (points, None) if isinstance(points, str) else ("paper", list(points))
    sample_sets = SampleSets.choose(dataset.labels, dataset.num_classes, settings)
    example = dataset.tensors(sample_sets.order[:1], normalize)
    point_list = layer_points(model, convention, names, example_input=example)
    shapes = point_shapes(model, point_list, example)  # wrong input shapes, missing points fail before any write
    budget, workers, plan = _tiles(sample_sets, shapes, run, device)
    # a zoo model's own units, or any other model's residual blocks at its discovered points (SPEC 25)
    units = removable_units(model, convention, example) if names is None else None
    refused = refused_blocks(model, example) if names is None and not isinstance(model, ZooModel) else None
    runs = None if units is None else unit_runs(units, {p.name: shape for p, shape in zip(point_list, shapes,
                                                                                           strict=True)})
    source = ModelFeatures(model, dataset, normalize, run, budget, progress and workers.leader)
    context = _Context(source, sample_sets, point_list, run, device, budget, plan, workers, progress, runs)
    parameters = Parameters(
        model=model_name, weights=str(weights) if weights else None, weights_sha256=weights_sha256,
        data=dataset.spec, data_sha256=dataset.sha256, normalize=dataset.normalization(normalize),
        convention=convention if names is None else "explicit", points=tuple(p.name for p in point_list),
        settings=settings, num_classes=classes,  # the model's head (pruning rebuilds it); the data's are "classes"
        gemm=plan.engine.library,  # another engine computes other floats: a resume must use the same
    )
    manifest = starting_manifest(parameters, sample_sets, dataset.description, dataset.classes, units,
                                 run_record(context))
    manifest.refused_units = refused
    return context, manifest


def _prepare_given(given: GivenFeatures, labels: Sequence[int] | np.ndarray, settings: GraphSettings,
                   classes: Sequence[str] | None, description: str, run: RunSettings, progress: bool
                   ) -> tuple[_Context, Manifest]:
    """The given features checked (every point read once) and placed like a model's (SPEC 24), before anything is
    written; and the manifest, with :data:`GIVEN_FEATURES` where a model would stand."""
    labels = checked_labels(labels, classes)
    names = list(classes) if classes is not None else [str(label) for label in range(int(labels.max()) + 1)]
    shapes, digest = given.check(len(labels))
    sample_sets = SampleSets.choose(labels, len(names), settings)
    point_list = given.points()
    device = resolve_device(run.device)
    budget, workers, plan = _tiles(sample_sets, shapes, run, device)
    run = replace(run, batch_size=1)  # no forward pass: a rank reads its own rows alone
    context = _Context(GivenSource(given, len(labels), shapes), sample_sets, point_list, run, device, budget, plan,
                       workers, progress, None)
    parameters = Parameters(model=GIVEN_FEATURES, weights=None, weights_sha256=None, data=given.spec,
                            data_sha256=hashlib.sha256(labels.tobytes() + digest.encode()).hexdigest(),
                            normalize="none: features given", convention="explicit", points=given.names,
                            settings=settings, num_classes=len(names), gemm=plan.engine.library)
    record = replace(run_record(context), batch_size=None)
    return context, starting_manifest(parameters, sample_sets, description, names, None, record)


def _tiles(sample_sets: SampleSets, shapes: list[tuple[int, ...]], run: RunSettings, device: torch.device
           ) -> tuple[int, Workers, TilePlan]:
    """The feature budget for points of ``shapes``, this process's ranks and the tile plan over the extraction
    order, checked before anything is written (SPEC 3, 18)."""
    budget = feature_budget(len(sample_sets.order), [math.prod(shape) for shape in shapes], run.max_memory)
    workers = Workers.current()
    plan = TilePlan.create(len(sample_sets.order), budget, device, run.tile_rows, workers.world, run.gemm)
    plan.check_ranks("the analysis")
    return budget, workers, plan


def checked_labels(labels: Sequence[int] | np.ndarray, classes: Sequence[str] | None) -> np.ndarray:
    """(N,) int64 labels in 0..classes-1, refused in one line otherwise."""
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) < 2 or not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise SepgraphError(f"labels must be one non-negative integer class per sample (got shape {array.shape}, "
                            f"dtype {array.dtype}); give an (N,) integer array", arguments=("labels",))
    if classes is not None and array.max() >= len(classes):
        raise SepgraphError(f"label {int(array.max())} has no name among the {len(classes)} classes given; name "
                            "every class", arguments=("labels", "classes"))
    return array.astype(np.int64)


def run_record(context: _Context) -> RunRecord:
    """How this analysis runs, for the manifest."""
    run = context.run
    return RunRecord(device=str(context.device), max_memory=context.budget,
                     spill_dir=str(run.spill_dir) if run.spill_dir else None, batch_size=run.batch_size,
                     torch_threads=torch.get_num_threads(), processes=context.workers.world,
                     tile_rows=context.plan.tile_rows, gemm=context.plan.engine.name,
                     gemm_threads=context.plan.engine.threads)


def starting_manifest(parameters: Parameters, sample_sets: SampleSets, description: str, classes: list[str],
                      units: list | None, run: RunRecord) -> Manifest:
    """The manifest an analysis starts with (SPEC 12): what is measured, on what, how it runs."""
    hist_count = len(sample_sets.hist_indices)
    return Manifest(
        sepgraph=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"), status="running",
        parameters=parameters, data_description=description, classes=list(classes), removable_units=units,
        hist_pairs=hist_count * (hist_count - 1) // 2, run=run,
        versions={"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                  "networkx": networkx.__version__})


def _open_folder(stack: ExitStack, context: _Context, out: str | Path, manifest: Manifest, resume: bool,
                 overwrite: bool
                 ) -> tuple[ResultsFolder | None, list[LayerRow | None], list[int], bool, list[int]]:
    """Open (or resume) the results folder on rank 0; every rank learns which points are missing, whether the
    depth measures (SPEC 22) are, and which complete points' Grams the CKA matrix (SPEC 24) still needs."""
    opened: dict = {}

    def open_on_leader() -> tuple[list[int], bool, list[int]]:
        folder = opened["folder"] = stack.enter_context(ResultsFolder(out, manifest, resume=resume,
                                                                      overwrite=overwrite))
        opened["stored"] = [folder.completed_row(i, p.name) for i, p in enumerate(context.points)]
        depth_missing = context.runs is not None and not (folder.path / DEPTH_FILE).is_file()
        store = GramStore(folder.path / GRAMS_FOLDER)
        if None in opened["stored"]:  # a matrix beside missing points is stale
            (folder.path / CKA_FILE).unlink(missing_ok=True)
        grams_needed = [] if (folder.path / CKA_FILE).is_file() else [
            i for i, row in enumerate(opened["stored"]) if row is not None and not store.has(i)]
        return [i for i, row in enumerate(opened["stored"]) if row is None], depth_missing, grams_needed

    missing, depth_missing, grams_needed = context.workers.agree(open_on_leader, who="leader")  # rank 0 writes
    stack.enter_context(context.workers.watch())  # a rank that stops: a clear error, recorded by the folder
    count = len(context.points)
    if len(missing) < count and context.workers.leader:
        log.info("resuming: %d of %d layer points are already complete", count - len(missing), count)
    return opened.get("folder"), opened.get("stored", []), missing, depth_missing, grams_needed


class StageClock:
    """Seconds per stage of :data:`STAGES`: laps of the wall clock, and the points' own stage times."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._tick = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the last lap to ``stage``."""
        now = time.perf_counter()
        self.seconds[stage] += now - self._tick
        self._tick = now

    def restart(self) -> None:
        """Start the next lap now."""
        self._tick = time.perf_counter()

    def add(self, seconds: dict[str, float]) -> None:
        """Charge a point's own stage times."""
        for stage, value in seconds.items():
            self.seconds[stage] += value


def _measure_missing(context: _Context, settings: GraphSettings, missing: list[int], links: CkaLinks,
                     clock: StageClock, folder: ResultsFolder | None, stored: list[LayerRow | None],
                     observer: DepthObserver | None, store: GramStore | None) -> None:
    """Extract and measure every missing point (from the last), seen by ``observer`` in the first pass; rank 0
    keeps its Gram in ``store`` and writes its row once it is complete."""
    clock.restart()
    stream = context.extract([context.points[i] for i in missing], len(context.sample_sets.order), observer) \
        if missing else iter(())
    show = context.progress and context.workers.leader
    with progress_bar(total=len(missing), desc="layers", unit="point", disable=not show) as bar:
        for item in stream:  # not enumerate(): it would hold the last item while the next one is extracted
            index = missing[item.index]
            clock.lap("features")
            measured = measure_point(item, index, context.sample_sets, settings, context.plan, context.workers,
                                     context.device)
            del item
            if measured is not None:  # rank 0
                store.put(index, measured.gram)
                for done in links.complete(measured):
                    clock.add(done.row.seconds)
                    folder.write_layer(done.row, done.edge_arrays)
                    stored[done.row.index] = done.row
                bar.set_postfix_str(f"{measured.row.name} M={measured.row.M:.4f}")
            bar.update()
            clock.restart()


def _measure_depth(context: _Context, observer: DepthObserver, folder: ResultsFolder | None, fed: bool) -> None:
    """``depth.csv`` (SPEC 22) from the observer's cosines, once an extraction ``fed`` it; with no point left to
    measure (a resumed folder written before SPEC 22), a pass of the runs' end points alone feeds it here."""
    if observer.points and not fed:
        for item in context.extract(list(observer.points[-1:]), len(context.sample_sets.order), observer):
            del item
    cosines, angles = observer.gathered(context.workers)
    if context.workers.leader:
        write_depth(folder.path, depth_rows(context.runs, cosines, angles))


def _write_complete(folder: ResultsFolder, stored: list[LayerRow], settings: GraphSettings, clock: StageClock,
                    peaks: np.ndarray, started: float) -> None:
    """layers.csv and the manifest of a finished analysis (rank 0)."""
    manifest = folder.manifest
    manifest.run.peak_rss_bytes = [int(peak) for peak in peaks]  # one per process
    folder.write_table(stored, settings.bins)
    manifest.status = "complete"
    manifest.seconds = {**clock.seconds, "total": time.perf_counter() - started}
    manifest.layers = [PointRecord(row.name, row.shape, row.zero_vectors, row.seconds) for row in stored]
    folder.write_manifest()


def _store_grams(context: _Context, needed: list[int], store: GramStore | None) -> dict[int, SepgraphError]:
    """Centered vertex Grams (SPEC 15) of complete points that the store lacks (a resumed folder, or one written
    before SPEC 24), from one extraction of those points on the vertices alone, in the batches of the full
    extraction (so their features are the same numbers), kept on rank 0; the errors of points whose Gram failed,
    raised where a row or the matrix needs them."""
    failed: dict[int, SepgraphError] = {}
    if not needed:
        return failed
    n_vertices = len(context.sample_sets.vertices)
    plan = context.plan.over(n_vertices)  # with fewer tile rows than ranks, some ranks hold none
    request = ScanRequest(batches=(np.arange(n_vertices, dtype=np.int64),))
    for item in context.extract([context.points[i] for i in needed], n_vertices):
        norms = gather_leading(exact_row_norms(item.features).numpy(), context.workers)
        name, position, features = item.point.name, needed[item.index], item.features
        del item
        prepared = context.workers.agree(partial(unit_rows, features, inplace=True), defer=True)
        del features
        if isinstance(prepared, SepgraphError):
            failed[position] = SepgraphError(f"layer point {name!r}: {prepared}", arguments=prepared.arguments)
            continue
        scan = scan_layer(prepared[0].to(context.device), request, plan, context.workers)
        if scan is not None:
            store.put(position, CenteredGram.of(scan.batch_similarities[0].cpu(), torch.as_tensor(norms),
                                                inplace=True))
        del prepared, scan
    return failed


def _references(context: _Context, missing: list[int], store: GramStore | None,
                failed: dict[int, SepgraphError]) -> dict[int, Reference]:
    """The Grams that the missing points compare with but will not compute themselves (SPEC 15): the last
    point's (for ``cka_last``) and the point before each first missing one (for ``cka_prev``); on rank 0."""
    last = len(context.points) - 1
    wanted = sorted(({last} if last not in missing else set())
                    | {m - 1 for m in missing if m > 0 and m - 1 not in missing})
    if not missing or store is None:
        return {}
    return {position: failed[position] if position in failed else store.get(position) for position in wanted}


def _write_cka_matrix(folder: ResultsFolder, store: GramStore, failed: dict[int, SepgraphError],
                      max_memory: int) -> None:
    """``cka_matrix.csv`` from the stored Grams (SPEC 24), once; the Grams are dropped after it is written."""
    if (folder.path / CKA_FILE).is_file():
        store.remove()  # a run stopped between the matrix and this
        return
    if failed:
        raise next(iter(failed.values()))
    names = list(folder.manifest.parameters.points)
    write_cka_matrix(folder.path / CKA_FILE, names, names, cka_matrix(store, len(names), max_memory=max_memory))
    store.remove()
