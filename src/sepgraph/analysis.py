"""One analysis: features at every layer point -> histograms, subgraphs, M, Newman Q, Lu et al.'s Q.

``analyze`` is what ``sepgraph analyze`` runs; it writes the results folder of SPEC 12
and returns an :class:`Analysis` for notebooks.
"""

from __future__ import annotations

import logging
import math
import platform
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import networkx
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._version import __version__
from .checkpoints import load_weights
from .data import DataSource, ImageDataset, as_dataset, to_tensor
from .devices import resolve_device
from .distributed import TileLayout, Workers, check_layout, gather_leading, scan_layer, sum_over_ranks
from .errors import SepgraphError
from .features import PointFeatures, extract_features, feature_budget, point_shapes
from .layer_row import LayerRow
from .models import build_model
from .modularity import PaperModularity, lu_modularity_of_similarity, newman_modularity, paper_modularity
from .peer_metrics import CenteredGram, knn_accuracy, probe_accuracy
from .points import layer_points, removable_units
from .results import ResultsFolder
from .samples import SampleSets
from .settings import GraphSettings, RunSettings
from .similarity import Histogram, Subgraph, exact_row_norms, tile_rows, unit_rows

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    """A finished analysis: its folder, manifest and one :class:`LayerRow` per layer point."""

    path: Path
    manifest: dict
    rows: list[LayerRow] = field(default_factory=list)

    def to_pandas(self):
        """layers.csv as a pandas DataFrame (needs pandas)."""
        import pandas

        return pandas.DataFrame([row.as_record() for row in self.rows])


def analyze(
    model: str | nn.Module,
    data: str | DataSource | ImageDataset,
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
        model: a name for :func:`~sepgraph.models.build_model` (built with ``settings.seed`` and ``weights``)
            or a module (``weights`` loaded into it when given).
        data: a dataset spec, a :class:`~sepgraph.data.DataSource` or a loaded dataset.
        settings: the graph options (default: the paper's, :class:`GraphSettings`).
        num_classes: head size of a model built by name (default: the dataset's classes); recorded as the
            manifest's ``num_classes``.
        normalize: the per-channel normalisation the model was trained with.
        points: a layer-point convention (SPEC 1) or an explicit list of module names.
        run: device, memory budget and batch size (:class:`RunSettings`); they never change a number.
        out, resume, overwrite: the results folder, and whether to continue or replace what it holds.

    Per layer point: the similarity histogram over all pairs of ``settings.hist_samples`` samples,
    the top-|E| subgraph among the vertices with its r, AQ, EQ, M and Newman Q, and Lu et al.'s Q
    over disjoint batches, all from one scan of the similarity blocks where the samples allow
    (see :func:`_measure_layer`). Features of each point are extracted once for the union of those
    samples, vertices first, in one pass per group of points that fits the memory budget.
    """
    started = time.perf_counter()
    settings, run = settings or GraphSettings(), run or RunSettings()
    dataset = as_dataset(data)
    classes = dataset.num_classes if num_classes is None else num_classes
    if isinstance(model, str):
        model_name = model
        model, weights_sha256 = build_model(model, classes, weights, settings.seed)
    else:
        model_name = type(model).__name__
        weights_sha256 = load_weights(model, weights) if weights else None
    target = resolve_device(run.device)
    convention, names = (points, None) if isinstance(points, str) else ("paper", list(points))

    samples = SampleSets.choose(dataset.labels, dataset.num_classes, settings)
    example = to_tensor(dataset.read(samples.order[:1]), normalize)
    point_list = layer_points(model, convention, names, example_input=example)
    shapes = point_shapes(model, point_list, example)  # wrong input shapes, missing points fail before any write
    budget = feature_budget(len(samples.order), [math.prod(shape) for shape in shapes], run.max_memory)
    workers = Workers.current()
    layout = TileLayout(len(samples.order), tile_rows(max(budget // 4, 1), target, run.tile_rows), workers.world)
    check_layout(layout, "the analysis")
    parameters = {
        "model": model_name, "weights": str(weights) if weights else None, "weights_sha256": weights_sha256,
        "data": dataset.spec, "data_sha256": dataset.sha256, "normalize": normalize,
        "convention": convention if names is None else "explicit", "points": [p.name for p in point_list],
        **asdict(settings), "num_classes": classes,  # the model's head (pruning rebuilds it); the data's are "classes"
    }
    manifest = {
        "sepgraph": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "parameters": parameters,
        "data_description": dataset.description,
        "classes": dataset.classes,
        "removable_units": [asdict(unit) for unit in removable_units(model, convention)]
        if names is None and hasattr(model, "removable_units") else None,
        "hist_pairs": len(samples.hist) * (len(samples.hist) - 1) // 2,
        "run": {"device": str(target), "max_memory": budget, "spill_dir": str(run.spill_dir) if run.spill_dir else None,
                "batch_size": run.batch_size, "torch_threads": torch.get_num_threads(), "processes": workers.world,
                "tile_rows": layout.rows},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "networkx": networkx.__version__},
    }
    with ExitStack() as stack:
        folder, stored = None, []

        def open_folder() -> list[int]:
            nonlocal folder, stored
            folder = stack.enter_context(ResultsFolder(out, manifest, resume=resume, overwrite=overwrite))
            stored = [folder.completed_row(i, p.name) for i, p in enumerate(point_list)]
            return [i for i, row in enumerate(stored) if row is None]

        missing = workers.agree(open_folder, who="leader")  # rank 0 alone writes the folder
        stack.enter_context(workers.watch())  # a rank that stops: a clear error, recorded by the folder
        if len(missing) < len(point_list) and workers.leader:
            log.info("resuming: %d of %d layer points are already complete", len(point_list) - len(missing),
                     len(point_list))
        job = _Job(model, dataset, samples, normalize, run, target, budget, layout, workers, progress)
        timings = {"features": 0.0, "similarity": 0.0, "modularity": 0.0, "peers": 0.0}
        tick = time.perf_counter()
        grams = _reference_grams(job, point_list, missing)
        timings["peers"] += time.perf_counter() - tick
        tick = time.perf_counter()
        stream = job.extract([point_list[i] for i in missing], len(samples.order)) if missing else iter(())
        last = len(point_list) - 1

        def finish(row: LayerRow, edge_arrays: dict, gram: CenteredGram, previous: CenteredGram | None) -> None:
            row = _with_cka(row, gram, previous, grams[last])
            for key, value in row.seconds.items():
                timings[key] += value
            folder.write_layer(row, edge_arrays)
            stored[row.index] = row

        waiting = None  # the row of the point measured before, while its previous point is being measured
        with tqdm(total=len(missing), desc="layers", unit="point", disable=not (progress and workers.leader)) as bar:
            for item in stream:  # not enumerate(): it would hold the last item while the next one is extracted
                index = missing[item.index]
                timings["features"] += time.perf_counter() - tick
                measured = _measure_layer(item, index, job, settings)
                del item
                if measured is not None:  # rank 0
                    row, edge_arrays, gram = measured
                    if index == last:
                        grams[last] = gram
                    if waiting is not None:  # points are measured from the last: this one is the waiting one's previous
                        finish(*waiting, gram)
                    previous = grams.get(index - 1)
                    waiting = (row, edge_arrays, gram) if index > 0 and previous is None else None
                    if waiting is None:
                        finish(row, edge_arrays, gram, previous)
                    bar.set_postfix_str(f"{row.name} M={row.M:.4f}")
                bar.update()
                tick = time.perf_counter()
        peaks = gather_leading(np.array([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0]), workers)
        if not workers.leader:
            return Analysis(Path(out), manifest, [])
        folder.manifest["run"]["peak_rss_bytes"] = [int(peak) for peak in peaks]  # one per process
        folder.write_table(stored, settings.bins)
        folder.manifest.update(
            status="complete",
            seconds={**timings, "total": time.perf_counter() - started},
            layers=[{"name": row.name, "shape": list(row.shape), "zero_vectors": row.zero_vectors,
                     "seconds": row.seconds} for row in stored],
        )
        folder.write_manifest()
    return Analysis(Path(out), folder.manifest, stored)


def _with_cka(row: LayerRow, gram: CenteredGram, previous: CenteredGram | SepgraphError | None,
              last: CenteredGram | SepgraphError) -> LayerRow:
    """``row`` with its CKA to the previous (None at the first point) and to the last point (SPEC 15)."""
    tick = time.perf_counter()
    for reference in (previous, last):
        if isinstance(reference, SepgraphError):
            raise reference
    cka_prev = gram.cka(previous) if previous is not None else None
    seconds = row.seconds | {"peers": row.seconds["peers"] + time.perf_counter() - tick}
    return replace(row, cka_prev=cka_prev, cka_last=gram.cka(last), seconds=seconds)


@dataclass
class _Job:
    """What every stage of one analysis on this rank needs: the model, the samples, where and how to run."""

    model: nn.Module
    dataset: ImageDataset
    samples: SampleSets
    normalize: str
    run: RunSettings
    target: torch.device
    budget: int
    layout: TileLayout
    workers: Workers
    progress: bool

    def extract(self, points: list, samples: int) -> Iterator[PointFeatures]:
        """Each point's features (from the last point) for this rank's rows of the first ``samples`` rows of
        the extraction order, run in the batches of a single-process extraction (so the same numbers)."""
        layout = replace(self.layout, samples=samples)
        start, stop = layout.slice_of(self.workers.rank)
        if start == stop:  # more processes than this scan's tile rows: nothing of it here
            example = to_tensor(self.dataset.read(self.samples.order[:1]), self.normalize)
            shapes = point_shapes(self.model, points, example)
            for position in range(len(points) - 1, -1, -1):
                yield PointFeatures(position, points[position], shapes[position],
                                    np.empty((0, math.prod(shapes[position])), dtype=np.float32))
            return
        size = self.run.batch_size
        first, end = start // size * size, min(-(-stop // size) * size, samples)
        for item in extract_features(self.model, points, self.dataset, self.samples.order[first:end],
                                     normalize=self.normalize, batch_size=size, device=self.run.device,
                                     max_memory=self.budget, spill_dir=self.run.spill_dir,
                                     progress=self.progress and self.workers.leader, reverse=True):
            yield replace(item, features=item.features[start - first:stop - first])
            del item


def _reference_grams(job: _Job, points: list, missing: list[int]) -> dict[int, CenteredGram | SepgraphError]:
    """Centered vertex Grams (SPEC 15) that the missing points compare with but will not compute themselves,
    when resuming: the last point's (for ``cka_last``) and the point before each first missing one (for
    ``cka_prev``), from one extraction of those points on the vertices alone (in the batches of the full
    extraction, so their features are the same numbers). Filled on rank 0."""
    last = len(points) - 1
    wanted = sorted(({last} if last not in missing else set())
                    | {m - 1 for m in missing if m > 0 and m - 1 not in missing})
    if not missing or not wanted:
        return {}
    vertices = len(job.samples.vertices)
    layout = replace(job.layout, samples=vertices)  # with fewer tile rows than ranks, some ranks hold none
    grams = {}
    for item in job.extract([points[i] for i in wanted], vertices):
        norms = gather_leading(exact_row_norms(item.features).numpy(), job.workers)
        name, position, features = item.point.name, wanted[item.index], item.features
        del item
        prepared = job.workers.agree(partial(unit_rows, features, inplace=True), defer=True)
        del features
        if isinstance(prepared, SepgraphError):  # raised where a point needs this Gram, after any earlier error
            grams[position] = SepgraphError(f"layer point {name!r}: {prepared}")
            continue
        scan = scan_layer(prepared[0].to(job.target), layout, job.workers, bins=0,
                          batches=[np.arange(vertices, dtype=np.int64)])
        if scan is not None:
            grams[position] = CenteredGram.of(scan.batch_similarities[0], torch.as_tensor(norms), inplace=True)
        del prepared, scan
    return grams


@dataclass
class PointGraph:
    """One layer point's graphs from one scan of its unit rows (SPEC 4-7).

    Attributes:
        histogram: over the histogram samples' pairs; None when not asked for.
        subgraph: the top-|E| pairs among the vertices.
        vertex_similarity: (N, N) float32 cosine similarity of the vertices (diagonal 0).
        paper: the subgraph's r, AQ, EQ and M.
        lu_q: Lu et al.'s Q of each batch, in batch order.
        seconds: "similarity" (the scan) and "modularity".
    """

    histogram: Histogram | None
    subgraph: Subgraph
    vertex_similarity: torch.Tensor
    paper: PaperModularity
    lu_q: list[float]
    seconds: dict[str, float]


def point_graph(unit: torch.Tensor, samples: SampleSets, settings: GraphSettings, layout: TileLayout,
                workers: Workers | None = None, zero_vectors: int = 0, histogram: bool = True) -> PointGraph | None:
    """Scan one point for its graphs (SPEC 4-7): one pass over the tiles of the extraction order's rows
    (vertices first) feeds the histogram (of ``samples.hist``), the subgraph, the vertices' similarity block
    and Lu et al.'s batches.

    Args:
        unit: this rank's (n_rank, D) float32 unit rows (:meth:`TileLayout.slice_of`; all rows in one process).
        layout: the tiles over ``len(samples.order)`` rows and the ranks' slices.
        workers: the ranks sharing the scan (default: this process alone).
        zero_vectors: zero rows among the histogram's, over all ranks.
        histogram: whether to count the histogram.

    Returns:
        The graphs on rank 0, None on the other ranks.
    """
    workers = workers or Workers()
    tick = time.perf_counter()
    vertices = len(samples.vertices)
    batches = [np.arange(vertices, dtype=np.int64), *(samples.positions(batch) for batch in samples.batches)]
    hist = None if samples.hist_is_union else samples.positions(samples.hist)
    scan = scan_layer(unit, layout, workers, bins=settings.bins if histogram else 0, hist=hist,
                      edges=settings.edges, vertices=vertices, batches=batches, zero_vectors=zero_vectors)
    if scan is None:
        return None
    vertex_similarity, *batch_similarities = scan.batch_similarities
    seconds = {"similarity": time.perf_counter() - tick}
    tick = time.perf_counter()
    lu = [lu_modularity_of_similarity(similarity, samples.labels[batch], settings.lu_k)
          for similarity, batch in zip(batch_similarities, samples.batches, strict=True)]
    subgraph = scan.subgraph
    paper = paper_modularity(subgraph.i, subgraph.j, subgraph.w, samples.labels[samples.vertices])
    seconds["modularity"] = time.perf_counter() - tick
    return PointGraph(scan.histogram, subgraph, vertex_similarity, paper, lu, seconds)


def _measure_layer(item: PointFeatures, index: int, job: _Job, settings: GraphSettings
                   ) -> tuple[LayerRow, dict, CenteredGram] | None:
    """All measurements of one layer point but its CKAs (filled by :func:`_with_cka` once the Grams they
    compare with are known), from this rank's rows of it; on rank 0 its row, its edge arrays and its
    centered vertex Gram (SPEC 15), None on the other ranks."""
    samples, workers = job.samples, job.workers
    start, stop = job.layout.slice_of(workers.rank)
    vertices = len(samples.vertices)
    own_vertices = max(0, min(stop, vertices) - start)
    vertex_norms = gather_leading(exact_row_norms(item.features[:own_vertices]).numpy(), workers)
    tick = time.perf_counter()

    def normalised() -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return unit_rows(item.features, inplace=True)
        except SepgraphError as error:
            raise SepgraphError(f"layer point {item.point.name!r}: {error}") from error

    unit, zero = workers.agree(normalised)
    if sum_over_ranks(int(zero.sum()), workers) == len(samples.order):
        raise SepgraphError(
            f"layer point {item.point.name!r}: every feature vector is zero (dead units, or weights that zero the "
            "output?), so cosine similarity is undefined there; check the weights or leave the point out with --points"
        )
    own_hist = samples.hist_rows[start:stop]
    zero_vectors = sum_over_ranks(int(zero[torch.as_tensor(own_hist)].sum()), workers)
    zero_vertices = gather_leading(zero[:own_vertices].double().numpy(), workers) > 0
    seconds_normalised = time.perf_counter() - tick
    graph = point_graph(unit.to(job.target), samples, settings, job.layout, workers, zero_vectors)
    del unit
    if graph is None:
        return None
    seconds = graph.seconds | {"similarity": graph.seconds["similarity"] + seconds_normalised}
    tick = time.perf_counter()
    vertex_labels = samples.labels[samples.vertices]
    subgraph = graph.subgraph
    newman_q = newman_modularity(subgraph.i, subgraph.j, subgraph.w, vertex_labels)
    seconds["modularity"] += time.perf_counter() - tick
    tick = time.perf_counter()
    knn_acc = knn_accuracy(graph.vertex_similarity, vertex_labels, settings.knn_k)
    probe_acc = probe_accuracy(graph.vertex_similarity, vertex_labels, torch.as_tensor(zero_vertices),
                               settings.probe_ridge, seed=settings.seed)
    gram = CenteredGram.of(graph.vertex_similarity, torch.as_tensor(vertex_norms), inplace=True)
    seconds["peers"] = time.perf_counter() - tick
    histogram, paper, lu = graph.histogram, graph.paper, graph.lu_q
    row = LayerRow(
        index=index, name=item.point.name, dim=int(np.prod(item.shape)),
        hist=tuple(int(count) for count in histogram.counts), below_zero=histogram.below_zero,
        mean_sim=histogram.mean, share_below_0_1=histogram.share_below_0_1, r=paper.r, AQ=paper.AQ, EQ=paper.EQ,
        M=paper.M, newman_q=newman_q, lu_q_mean=float(np.mean(lu)),
        lu_q_std=float(np.std(lu, ddof=1)) if len(lu) > 1 else 0.0, lu_q_batches=tuple(float(q) for q in lu),
        knn_acc=knn_acc, probe_acc=probe_acc, cka_prev=None, cka_last=None,
        shape=tuple(item.shape), zero_vectors=zero_vectors, seconds=seconds,
    )
    edge_arrays = {"i": subgraph.i, "j": subgraph.j, "w": subgraph.w, "vertices": samples.vertices,
                   "labels": vertex_labels}
    return row, edge_arrays, gram
