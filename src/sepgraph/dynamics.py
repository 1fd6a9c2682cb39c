"""How the curves grow during training (SPEC 17): M, Lu et al.'s Q and k-NN accuracy at every layer point,
measured every K epochs on a small vertex set, into ``dynamics.csv`` of the training run.

A :class:`DynamicsTracker` is handed to :func:`sepgraph.training.train` as its epoch observer. Each
measurement is the analysis of SPEC 2-7 and 13 restricted to what the three measures need: the features
of the vertices and of Lu et al.'s batches, one scan per point (no histogram), the subgraph's M, the
batches' Q and the vertices' leave-one-out k-NN accuracy.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .analysis import point_graph
from .data import ImageDataset, to_tensor
from .devices import ieee_float32_matmul
from .distributed import TileLayout
from .errors import SepgraphError
from .features import extract_features
from .files import atomic_text
from .layer_row import csv_cell
from .peer_metrics import knn_accuracy
from .points import layer_points
from .samples import SampleSets
from .settings import GraphSettings
from .similarity import tile_rows, unit_rows

COLUMNS = ("epoch", "index", "name", "M", "lu_q_mean", "knn_acc")
"""The columns of dynamics.csv: one row per measured epoch and layer point (epoch 0: before training)."""
MEASURES = {"M": "the paper's M", "lu_q_mean": "Lu et al.'s Q", "knn_acc": "k-NN accuracy"}


@dataclass(frozen=True)
class DynamicsRow:
    """One layer point at one epoch."""

    epoch: int
    index: int
    name: str
    M: float
    lu_q_mean: float
    knn_acc: float


def small_settings(data: ImageDataset, vertices: int = 500, seed: int = 0) -> GraphSettings:
    """The graph of a tracking measurement: ``vertices`` stratified vertices (at most 90% of the data), 10 edges per
    vertex (the paper's ratio), Lu et al.'s Q on 2 batches of a fifth of the vertices each, k = 10."""
    if vertices < 21:
        raise SepgraphError(f"--track-vertices must be at least 21 (10 edges per vertex and k-NN with k = 10 need "
                            f"them), got {vertices}")
    vertices = min(vertices, int(0.9 * len(data)))
    batch = max(2 * data.num_classes, vertices // 5)
    return GraphSettings(vertices=vertices, edges=10 * vertices, hist_samples=vertices, lu_batch_size=batch,
                         lu_batches=2, lu_k=3, knn_k=10, seed=seed)


def measure_dynamics(model: nn.Module, data: ImageDataset, settings: GraphSettings, normalize: str,
                     epoch: int, points: str = "paper", device: str = "auto", batch_size: int = 256
                     ) -> list[DynamicsRow]:
    """M, Lu et al.'s Q and k-NN accuracy of ``model`` at every layer point (SPEC 17), one row per point."""
    samples = SampleSets.choose(data.labels, data.num_classes, replace(settings, hist_samples=settings.vertices))
    example = to_tensor(data.read(samples.order[:1]), normalize).to(next(model.parameters()).device)
    found = layer_points(model, points, example_input=example)
    vertex_labels = samples.labels[samples.vertices]
    rows = []
    for item in extract_features(model, found, data, samples.order, normalize=normalize, batch_size=batch_size,
                                 device=device, progress=False):
        unit, _ = unit_rows(item.features, inplace=True)
        layout = TileLayout(len(samples.order), tile_rows(1 << 30, unit.device))
        graph = point_graph(unit, samples, settings, layout, histogram=False)
        rows.append(DynamicsRow(epoch, item.index, item.point.name, graph.paper.M, float(np.mean(graph.lu_q)),
                                knn_accuracy(graph.vertex_similarity, vertex_labels, settings.knn_k)))
        del item, unit, graph
    return rows


class DynamicsTracker:
    """The epoch observer of :func:`~sepgraph.training.train` that writes ``dynamics.csv`` (SPEC 17).

    Measures before the first epoch, after every ``every``-th and after the last one. ``dynamics.json`` beside
    it records what is measured; a resumed run must track the same way, keeps the rows of the epochs it had
    finished and measures on from there, and a run that starts afresh starts a fresh file.
    """

    def __init__(self, out: str | Path, data: ImageDataset, settings: GraphSettings, *, every: int,
                 epochs: int, normalize: str, points: str = "paper", device: str = "auto"):
        if every < 1:
            raise SepgraphError(f"--track-every must be at least 1, got {every}")
        self.path = Path(out) / "dynamics.csv"
        self.data, self.settings, self.every, self.epochs = data, settings, every, epochs
        self.normalize, self.points, self.device = normalize, points, device
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
                                              self.device)
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


def write_dynamics(path: Path, rows: list[DynamicsRow]) -> None:
    """dynamics.csv, atomically, floats in shortest round-trip form."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([csv_cell(getattr(row, column)) for column in COLUMNS] for row in rows)
    atomic_text(path, buffer.getvalue())


def load_dynamics(path: str | Path) -> list[DynamicsRow]:
    """The rows of a dynamics.csv."""
    with open(path, newline="") as handle:
        return [DynamicsRow(int(r["epoch"]), int(r["index"]), r["name"], float(r["M"]), float(r["lu_q_mean"]),
                            float(r["knn_acc"])) for r in csv.DictReader(handle)]
