"""One layer point's measurement (SPEC 3-7, 13-15): its features -> unit rows -> one scan of the tiles ->
the histogram, the subgraph's M and Newman Q, Lu et al.'s Q, the vertex measures and the centered Gram.

Every rank calls :func:`measure_point` on its own rows of the point; rank 0 gets the row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..data.samples import SampleSets
from ..errors import SepgraphError
from ..graph.accumulators import Histogram, Subgraph
from ..graph.modularity import PaperModularity, lu_modularity_of_similarity, newman_modularity, paper_modularity
from ..graph.peers import VERTEX_MEASURES, CenteredGram, VertexBlock
from ..graph.rows import exact_row_norms, unit_rows
from ..graph.scan import ScanRequest
from ..graph.tiles import TilePlan
from ..parallel.merge import scan_layer
from ..parallel.workers import Workers, gather_leading, sum_over_ranks
from ..results.layer_row import LayerRow
from ..settings import GraphSettings
from .features import PointFeatures


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


def scan_request(sample_sets: SampleSets, settings: GraphSettings, zero_vectors: int = 0,
                 histogram: bool = True) -> ScanRequest:
    """What a point's scan over the extraction order's rows (vertices first) measures: the histogram of
    ``sample_sets.hist_indices`` (when ``histogram``), the subgraph, the vertices' block and Lu et al.'s batches."""
    vertices = len(sample_sets.vertices)
    batches = (np.arange(vertices, dtype=np.int64), *(sample_sets.positions(batch) for batch in sample_sets.batches))
    return ScanRequest(bins=settings.bins if histogram else 0, hist_positions=sample_sets.hist_positions,
                       edges=settings.edges, vertices=vertices, batches=batches, zero_vectors=zero_vectors)


def point_graph(normed: torch.Tensor, sample_sets: SampleSets, settings: GraphSettings, plan: TilePlan,
                workers: Workers | None = None, zero_vectors: int = 0, histogram: bool = True) -> PointGraph | None:
    """Scan one point for its graphs (SPEC 4-7), shared by ``workers`` (default: this process alone).

    Args:
        normed: this rank's (n_rank, D) float32 unit rows (:meth:`TilePlan.slice_of`; all rows in one process).
        plan: the tiles over ``len(sample_sets.order)`` rows and the ranks' slices.
        zero_vectors: zero rows among the histogram's, over all ranks.
        histogram: whether to count the histogram.

    Returns:
        The graphs on rank 0, None on the other ranks.
    """
    tick = time.perf_counter()
    request = scan_request(sample_sets, settings, zero_vectors, histogram)
    scan = scan_layer(normed, request, plan, workers or Workers())
    if scan is None:
        return None
    vertex_similarity, *batch_similarities = scan.batch_similarities
    seconds = {"similarity": time.perf_counter() - tick}
    tick = time.perf_counter()
    lu = [lu_modularity_of_similarity(similarity, sample_sets.labels[batch], settings.lu_k)
          for similarity, batch in zip(batch_similarities, sample_sets.batches, strict=True)]
    subgraph = scan.subgraph
    paper = paper_modularity(subgraph.i, subgraph.j, subgraph.w, sample_sets.labels[sample_sets.vertices])
    seconds["modularity"] = time.perf_counter() - tick
    return PointGraph(scan.histogram, subgraph, vertex_similarity, paper, lu, seconds)


@dataclass
class MeasuredPoint:
    """One point's row (its CKAs still None), its subgraph's edge arrays and its centered vertex Gram (SPEC 15)."""

    row: LayerRow
    edge_arrays: dict[str, np.ndarray]
    gram: CenteredGram


def measure_point(item: PointFeatures, index: int, sample_sets: SampleSets, settings: GraphSettings,
                  plan: TilePlan, workers: Workers, device: torch.device) -> MeasuredPoint | None:
    """All measurements of one layer point but its CKAs, from this rank's rows of its features (the rows of
    ``plan.slice_of(rank)``; ``item.features`` is overwritten); on rank 0 what it measured, None elsewhere."""
    start, stop = plan.slice_of(workers.rank)
    own_vertices = max(0, min(stop, len(sample_sets.vertices)) - start)
    vertex_norms = gather_leading(exact_row_norms(item.features[:own_vertices]).numpy(), workers)
    tick = time.perf_counter()
    normed, zero = workers.agree(lambda: _unit_rows_of(item))
    zero_vectors = _count_zero_rows(item, zero, sample_sets, start, stop, workers)
    zero_vertices = gather_leading(zero[:own_vertices].double().numpy(), workers) > 0
    seconds_normalised = time.perf_counter() - tick
    graph = point_graph(normed.to(device), sample_sets, settings, plan, workers, zero_vectors)
    del normed
    if graph is None:
        return None
    seconds = graph.seconds | {"similarity": graph.seconds["similarity"] + seconds_normalised}
    tick = time.perf_counter()
    vertex_labels = sample_sets.labels[sample_sets.vertices]
    subgraph = graph.subgraph
    newman_q = newman_modularity(subgraph.i, subgraph.j, subgraph.w, vertex_labels)
    seconds["modularity"] += time.perf_counter() - tick
    tick = time.perf_counter()
    block = VertexBlock(graph.vertex_similarity, vertex_labels, torch.as_tensor(zero_vertices))
    measures = {name: measure(block, settings) for name, measure in VERTEX_MEASURES.items()}
    # on the CPU whatever the device: every CKA (rows and matrix, SPEC 24) is the same arithmetic, to the bit
    gram = CenteredGram.of(graph.vertex_similarity.cpu(), torch.as_tensor(vertex_norms), inplace=True)
    seconds["peers"] = time.perf_counter() - tick
    row = LayerRow.measured(index, item.point.name, item.shape, graph.histogram, graph.paper, newman_q, graph.lu_q,
                            measures, zero_vectors, seconds)
    edge_arrays = {"i": subgraph.i, "j": subgraph.j, "w": subgraph.w, "vertices": sample_sets.vertices,
                   "labels": vertex_labels}
    return MeasuredPoint(row, edge_arrays, gram)


def _unit_rows_of(item: PointFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """The point's unit rows (in place) and zero-row mask, its errors naming the point."""
    try:
        return unit_rows(item.features, inplace=True)
    except SepgraphError as error:
        raise SepgraphError(f"layer point {item.point.name!r}: {error}", arguments=error.arguments) from error


def _count_zero_rows(item: PointFeatures, zero: torch.Tensor, sample_sets: SampleSets, start: int, stop: int,
                     workers: Workers) -> int:
    """Zero rows among the histogram's, over all ranks; a point whose every row is zero is an error."""
    if sum_over_ranks(int(zero.sum()), workers) == len(sample_sets.order):
        raise SepgraphError(
            f"layer point {item.point.name!r}: every feature vector is zero (dead units, or weights that zero the "
            "output?), so cosine similarity is undefined there; check the weights or leave the point out with --points"
        )
    own_hist = sample_sets.hist_mask[start:stop]
    return sum_over_ranks(int(zero[torch.as_tensor(own_hist)].sum()), workers)
