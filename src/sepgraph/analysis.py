"""One analysis: features at every layer point -> histograms, subgraphs, M, Newman Q, Lu et al.'s Q.

``analyze`` is what ``sepgraph analyze`` runs; it writes the results folder of SPEC 12
and returns an :class:`Analysis` for notebooks.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
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
from .similarity import (
    Histogram,
    Subgraph,
    exact_row_norms,
    pair_similarities,
    scan_pairs,
    similarity_histogram,
    unit_rows,
)

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
                "batch_size": run.batch_size, "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "networkx": networkx.__version__},
    }
    with ResultsFolder(out, manifest, resume=resume, overwrite=overwrite) as folder:
        stored = [folder.completed_row(i, p.name) for i, p in enumerate(point_list)]
        missing = [i for i, row in enumerate(stored) if row is None]
        if len(missing) < len(point_list):
            log.info("resuming: %d of %d layer points are already complete", len(point_list) - len(missing),
                     len(point_list))
        timings = {"features": 0.0, "similarity": 0.0, "modularity": 0.0, "peers": 0.0}
        tick = time.perf_counter()
        grams = _reference_grams(model, point_list, missing, dataset, samples, normalize, run, target, budget,
                                 progress)
        timings["peers"] += time.perf_counter() - tick
        tick = time.perf_counter()
        stream = extract_features(model, [point_list[i] for i in missing], dataset, samples.order, normalize=normalize,
                                  batch_size=run.batch_size, device=run.device, max_memory=budget,
                                  spill_dir=run.spill_dir, progress=progress, reverse=True) if missing else iter(())
        last = len(point_list) - 1

        def finish(row: LayerRow, edge_arrays: dict, gram: CenteredGram, previous: CenteredGram | None) -> None:
            row = _with_cka(row, gram, previous, grams[last])
            for key, value in row.seconds.items():
                timings[key] += value
            folder.write_layer(row, edge_arrays)
            stored[row.index] = row

        waiting = None  # the row of the point measured before, while its previous point is being measured
        with tqdm(total=len(missing), desc="layers", unit="point", disable=not progress) as bar:
            for item in stream:  # not enumerate(): it would hold the last item while the next one is extracted
                index = missing[item.index]
                timings["features"] += time.perf_counter() - tick
                row, edge_arrays, gram = _measure_layer(item, index, samples, target, budget, settings)
                del item
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
        folder.write_table(stored, settings.bins)
        folder.manifest.update(
            status="complete",
            seconds={**timings, "total": time.perf_counter() - started},
            layers=[{"name": row.name, "shape": list(row.shape), "zero_vectors": row.zero_vectors,
                     "seconds": row.seconds} for row in stored],
        )
        folder.write_manifest()
    return Analysis(Path(out), folder.manifest, stored)


def _rows(unit: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    return unit[torch.as_tensor(positions, device=unit.device)]


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


def _reference_grams(model: nn.Module, points: list, missing: list[int], dataset: ImageDataset,
                     samples: SampleSets, normalize: str, run: RunSettings, target: torch.device, budget: int,
                     progress: bool) -> dict[int, CenteredGram | SepgraphError]:
    """Centered vertex Grams (SPEC 15) that the missing points compare with but will not compute themselves,
    when resuming: the last point's (for ``cka_last``) and the point before each first missing one (for
    ``cka_prev``), from one extraction of those points on the vertices alone (in the batches of the full
    extraction, so their features are the same numbers)."""
    last = len(points) - 1
    wanted = sorted(({last} if last not in missing else set())
                    | {m - 1 for m in missing if m > 0 and m - 1 not in missing})
    if not missing or not wanted:
        return {}
    vertices = len(samples.vertices)
    batched = samples.order[:min(len(samples.order), -(-vertices // run.batch_size) * run.batch_size)]
    grams = {}
    for item in extract_features(model, [points[i] for i in wanted], dataset, batched, normalize=normalize,
                                 batch_size=run.batch_size, device=run.device, max_memory=budget, progress=progress):
        graph = item.features[:vertices]
        norms = exact_row_norms(graph)
        try:
            unit, _ = unit_rows(graph, inplace=True)
        except SepgraphError as error:  # raised where a point needs this Gram, after any earlier point's own error
            grams[wanted[item.index]] = SepgraphError(f"layer point {item.point.name!r}: {error}")
            continue
        grams[wanted[item.index]] = CenteredGram.of(pair_similarities(unit.to(target), max(budget // 4, 1)), norms,
                                                    inplace=True)
        del item, unit, graph
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


def point_graph(unit: torch.Tensor, samples: SampleSets, settings: GraphSettings, block_memory: int,
                zero_vectors: int = 0, histogram: bool = True) -> PointGraph:
    """Scan one point's (len(samples.order), D) float32 unit rows (vertices first) for its graphs (SPEC 4-7).

    When the histogram counts every extracted sample (``samples.hist_is_union``) or none is asked for, one
    scan of the similarity blocks feeds the histogram, the subgraph, the vertices' similarity block (the
    vertices are the leading rows) and Lu et al.'s batches; otherwise the histogram's samples are scanned apart
    from the vertices and batches.
    """
    tick = time.perf_counter()
    vertices = len(samples.vertices)
    all_vertices = np.arange(vertices, dtype=np.int64)
    counted = None
    if samples.hist_is_union or not histogram:
        batches = [samples.positions(batch) for batch in samples.batches]
        scan = scan_pairs(unit, bins=settings.bins if histogram else 0, edges=settings.edges, vertices=vertices,
                          batches=[all_vertices, *batches], max_memory=block_memory, zero_vectors=zero_vectors)
        counted, subgraph = scan.histogram, scan.subgraph
        vertex_similarity, *batch_similarities = scan.batch_similarities
    else:
        counted = similarity_histogram(_rows(unit, samples.positions(samples.hist)), settings.bins, block_memory,
                                       zero_vectors)
        scan = scan_pairs(unit[:vertices], bins=0, edges=settings.edges, vertices=vertices, batches=[all_vertices],
                          max_memory=block_memory)
        subgraph, vertex_similarity = scan.subgraph, scan.batch_similarities[0]
        batch_similarities = [pair_similarities(_rows(unit, samples.positions(batch)), block_memory)
                              for batch in samples.batches]
    seconds = {"similarity": time.perf_counter() - tick}
    tick = time.perf_counter()
    lu = [lu_modularity_of_similarity(similarity, samples.labels[batch], settings.lu_k)
          for similarity, batch in zip(batch_similarities, samples.batches, strict=True)]
    paper = paper_modularity(subgraph.i, subgraph.j, subgraph.w, samples.labels[samples.vertices])
    seconds["modularity"] = time.perf_counter() - tick
    return PointGraph(counted, subgraph, vertex_similarity, paper, lu, seconds)


def _measure_layer(item: PointFeatures, index: int, samples: SampleSets, target: torch.device, budget: int,
                   settings: GraphSettings) -> tuple[LayerRow, dict, CenteredGram]:
    """All measurements of one layer point but its CKAs (filled by :func:`_with_cka` once the Grams they
    compare with are known); returns its row, its edge arrays and its centered vertex Gram (SPEC 15)."""
    vertices = len(samples.vertices)
    vertex_norms = exact_row_norms(item.features[:vertices])  # before the features become unit rows in place
    tick = time.perf_counter()
    try:
        unit, zero = unit_rows(item.features, inplace=True)
    except SepgraphError as error:
        raise SepgraphError(f"layer point {item.point.name!r}: {error}") from error
    if bool(zero.all()):
        raise SepgraphError(
            f"layer point {item.point.name!r}: every feature vector is zero (dead units, or weights that zero the "
            "output?), so cosine similarity is undefined there; check the weights or leave the point out with --points"
        )
    zero_vectors = int(zero[torch.as_tensor(samples.positions(samples.hist))].sum())
    normalised = time.perf_counter() - tick
    graph = point_graph(unit.to(target), samples, settings, max(budget // 4, 1), zero_vectors)
    seconds = graph.seconds | {"similarity": graph.seconds["similarity"] + normalised}
    tick = time.perf_counter()
    vertex_labels = samples.labels[samples.vertices]
    subgraph = graph.subgraph
    newman_q = newman_modularity(subgraph.i, subgraph.j, subgraph.w, vertex_labels)
    seconds["modularity"] += time.perf_counter() - tick
    tick = time.perf_counter()
    knn_acc = knn_accuracy(graph.vertex_similarity, vertex_labels, settings.knn_k)
    probe_acc = probe_accuracy(graph.vertex_similarity, vertex_labels, zero[:vertices], settings.probe_ridge,
                               seed=settings.seed)
    gram = CenteredGram.of(graph.vertex_similarity, vertex_norms, inplace=True)
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
