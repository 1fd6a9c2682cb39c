"""How the curves grow during training (SPEC 17): M, Lu et al.'s Q and k-NN accuracy at every layer point,
measured every K epochs on a small vertex set, into ``dynamics.csv`` of the training run.

A :class:`DynamicsTracker` is handed to :func:`sepgraph.training.loop.train` as its epoch observer. Each
measurement is the analysis of SPEC 2-7 and 13 restricted to what the three measures need: the features
of the vertices and of Lu et al.'s batches, one scan per point (no histogram), the subgraph's M, the
batches' Q and the vertices' leave-one-out k-NN accuracy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.protocol import LabelledImages
from ..data.samples import SampleSets
from ..data.sources import DataLike, as_dataset
from ..devices import ieee_float32_matmul
from ..errors import SepgraphError
from ..files import atomic_text
from ..graph.peers import knn_accuracy
from ..graph.rows import unit_rows
from ..graph.scan import DEFAULT_MAX_MEMORY
from ..graph.tiles import TilePlan
from ..models.points import layer_points
from ..results.dynamics_table import DynamicsRow, load_dynamics, write_dynamics
from ..settings import GraphSettings, RunSettings
from .features import extract_features
from .point import point_graph


def small_settings(data: LabelledImages, vertices: int = 500, seed: int = 0) -> GraphSettings:
    """The graph of a tracking measurement: ``vertices`` stratified vertices (at most 90% of the data), 10 edges per
    vertex (the paper's ratio), Lu et al.'s Q on 2 batches of a fifth of the vertices each, k = 10."""
    if vertices < 21:
        raise SepgraphError(f"vertices must be at least 21 (10 edges per vertex and k-NN with k = 10 need them), "
                            f"got {vertices}", arguments=("vertices",))
    vertices = min(vertices, int(0.9 * len(data)))
    batch = max(2 * data.num_classes, vertices // 5)
    return GraphSettings(vertices=vertices, edges=10 * vertices, hist_samples=vertices, lu_batch_size=batch,
                         lu_batches=2, lu_k=3, knn_k=10, seed=seed)


def measure_dynamics(model: nn.Module, data: DataLike, settings: GraphSettings, normalize: str,
                     epoch: int, points: str = "paper", run: RunSettings | None = None) -> list[DynamicsRow]:
    """M, Lu et al.'s Q and k-NN accuracy of ``model`` at every layer point (SPEC 17), one row per point, run as
    ``run`` says (device, memory budget, batch size, tile rows), in the tiles an analysis would use."""
    run, data = run or RunSettings(), as_dataset(data)
    sample_sets = SampleSets.choose(data.labels, data.num_classes, replace(settings, hist_samples=settings.vertices))
    example = data.tensors(sample_sets.order[:1], normalize).to(next(model.parameters()).device)
    found = layer_points(model, points, example_input=example)
    vertex_labels = sample_sets.labels[sample_sets.vertices]
    rows = []
    for item in extract_features(model, found, data, sample_sets.order, normalize=normalize,
                                 batch_size=run.batch_size, device=run.device, max_memory=run.max_memory,
                                 progress=False):
        normed, _ = unit_rows(item.features, inplace=True)
        plan = TilePlan.create(len(sample_sets.order), run.max_memory or DEFAULT_MAX_MEMORY, normed.device,
                               run.tile_rows, gemm=run.gemm)
        graph = point_graph(normed, sample_sets, settings, plan, histogram=False)
        rows.append(DynamicsRow(epoch, item.index, item.point.name, graph.paper.M, float(np.mean(graph.lu_q)),
                                knn_accuracy(graph.vertex_similarity, vertex_labels, settings.knn_k)))
        del item, normed, graph
    return rows


class DynamicsTracker:
    """The epoch observer of :func:`~sepgraph.training.loop.train` that writes ``dynamics.csv`` (SPEC 17).

    Measures before the first epoch, after every ``every``-th and after the last one. ``dynamics.json`` beside
    it records what is measured; a resumed run must track the same way, keeps the rows of the epochs it had
    finished and measures on from there, and a run that starts afresh starts a fresh file.
    """

    def __init__(self, out: str | Path, data: LabelledImages, settings: GraphSettings, *, every: int,
                 epochs: int, normalize: str, points: str = "paper", run: RunSettings | None = None):
        if every < 1:
            raise SepgraphError(f"every must be at least 1, got {every}", arguments=("every",))
        self.path = Path(out) / "dynamics.csv"
        self.data, self.settings, self.every, self.epochs = data, settings, every, epochs
        self.normalize, self.points, self.run = normalize, points, run or RunSettings()
        self.record = {"data": data.spec, "data_sha256": data.sha256, "every": every, "normalize": normalize,
                       "points": points, "settings": asdict(settings)}
        self.rows: list[DynamicsRow] | None = None

    def __call__(self, epoch: int, model: nn.Module) -> None:
        """Called by ``train`` when it starts at ``epoch`` (0, or where it resumes) and after each epoch."""
        if self.rows is None:
            self.rows = self._resumed(epoch)
        if any(row.epoch == epoch for row in self.rows):
            return
        if epoch == 0 or epoch % self.every == 0 or epoch == self.epochs:
            with torch.random.fork_rng(devices=[]), ieee_float32_matmul():  # training's generator is left be
                self.rows += measure_dynamics(model, self.data, self.settings, self.normalize, epoch, self.points,
                                              self.run)
            write_dynamics(self.path, self.rows)

    def _resumed(self, epoch: int) -> list[DynamicsRow]:
        """The rows a run starting at ``epoch`` keeps: none when it starts afresh, else the finished epochs'."""
        record = self.path.with_suffix(".json")
        if epoch == 0 or not self.path.is_file():
            atomic_text(record, json.dumps(self.record, indent=1) + "\n")
            return []
        previous = json.loads(record.read_text()) if record.is_file() else None
        if previous != self.record:
            raise SepgraphError(f"cannot resume the dynamics in {str(self.path.parent)!r}: they were tracked "
                                "differently (--track-every, --track-data, --track-vertices or --normalize changed); "
                                "resume with the same tracking options")
        return [row for row in load_dynamics(self.path) if row.epoch <= epoch]
