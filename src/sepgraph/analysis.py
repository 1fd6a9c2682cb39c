"""One analysis: features at every layer point -> histograms, subgraphs, M, Newman Q, Lu et al.'s Q.

``analyze`` is what ``sepgraph analyze`` runs; it writes the results folder of SPEC 12
and returns an :class:`Analysis` for notebooks.
"""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import networkx
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._version import __version__
from .checkpoints import load_weights
from .data import ImageDataset, load_dataset, lu_batch_indices, select_vertices, to_tensor
from .devices import resolve_device
from .errors import SepgraphError
from .features import PointFeatures, extract_features, feature_budget, point_shapes
from .models import create_model
from .modularity import lu_modularity, newman_modularity, paper_modularity
from .points import layer_points, removable_units
from .results import ResultsFolder, csv_columns
from .similarity import similarity_histogram, top_edges, unit_rows

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    """A finished analysis: its folder, manifest and one row per layer point (layers.csv's columns and more)."""

    path: Path
    manifest: dict
    rows: list[dict] = field(default_factory=list)

    def to_pandas(self):
        """layers.csv as a pandas DataFrame (needs pandas)."""
        import pandas

        columns = csv_columns(self.manifest["parameters"]["bins"])
        return pandas.DataFrame([{c: row[c] for c in columns} for row in self.rows])


def analyze(
    model: str | nn.Module = "resnet20",
    *,
    weights: str | Path | None = None,
    data: str | ImageDataset = "digits",
    normalize: str = "cifar10",
    convention: str = "paper",
    points: list[str] | None = None,
    vertices: int = 4000,
    edges: int = 40000,
    hist_samples: int | str = "all",
    bins: int = 10,
    lu_k: int = 3,
    lu_batch_size: int = 500,
    lu_batches: int = 5,
    vertex_choice: str = "stratified",
    seed: int = 0,
    device: str = "auto",
    max_memory: int | None = None,
    spill_dir: str | Path | None = None,
    batch_size: int = 256,
    num_classes: int | None = None,
    data_root: str | Path = "data",
    download: bool = False,
    image_size: int | None = None,
    out: str | Path = "results/analysis",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Analysis:
    """Measure how every layer point separates the classes (SPEC 2-7) and write the results folder (SPEC 12).

    Per layer point: the similarity histogram over all pairs of ``hist_samples``
    samples (``"all"``: the whole dataset), the top-``edges`` subgraph among
    ``vertices`` samples with its r, AQ, EQ, M and Newman Q, and Lu et al.'s Q over
    ``lu_batches`` disjoint batches of ``lu_batch_size`` samples (kNN with ``lu_k``).
    Features of each point are extracted once for the union of those samples, vertices first,
    in one pass per group of points that fits ``max_memory``, or in one pass in all with
    ``spill_dir`` (a folder with disk for every point's features; see :func:`extract_features`).
    """
    started = time.perf_counter()
    dataset = data if isinstance(data, ImageDataset) else load_dataset(data, data_root, download, image_size)
    model_name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # a model without --weights gets the same random weights for the same seed
            model = create_model(model, num_classes=num_classes or dataset.num_classes)
    weights_sha256 = load_weights(model, weights) if weights else None
    target = resolve_device(device)
    _check_counts(bins, vertices, edges, lu_k, lu_batch_size)

    samples = SampleSets.choose(dataset, vertices, hist_samples, lu_batch_size, lu_batches, vertex_choice, seed)
    example = to_tensor(dataset.read(samples.order[:1]), normalize)
    point_list = layer_points(model, convention, points, example_input=example)
    shapes = point_shapes(model, point_list, example)  # wrong input shapes, missing points fail before any write
    budget = feature_budget(len(samples.order), [math.prod(shape) for shape in shapes], max_memory)
    parameters = {
        "model": model_name, "weights": str(weights) if weights else None, "weights_sha256": weights_sha256,
        "data": dataset.spec, "data_sha256": dataset.sha256, "normalize": normalize,
        "convention": convention if points is None else "explicit", "points": [p.name for p in point_list],
        "vertices": vertices, "edges": edges, "hist_samples": hist_samples, "bins": bins,
        "vertex_choice": vertex_choice, "seed": seed, "lu_k": lu_k, "lu_batch_size": lu_batch_size,
        "lu_batches": lu_batches, "num_classes": dataset.num_classes,
    }
    manifest = {
        "sepgraph": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "parameters": parameters,
        "data_description": dataset.description,
        "classes": dataset.classes,
        "removable_units": [asdict(unit) for unit in removable_units(model, convention)]
        if points is None and hasattr(model, "removable_units") else None,
        "hist_pairs": len(samples.hist) * (len(samples.hist) - 1) // 2,
        "run": {"device": str(target), "max_memory": budget, "spill_dir": str(spill_dir) if spill_dir else None,
                "batch_size": batch_size,
                "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "networkx": networkx.__version__},
    }
    with ResultsFolder(out, manifest, resume=resume, overwrite=overwrite) as folder:
        stored = [folder.completed_row(i, p.name) for i, p in enumerate(point_list)]
        missing = [i for i, row in enumerate(stored) if row is None]
        if len(missing) < len(point_list):
            log.info("resuming: %d of %d layer points are already complete", len(point_list) - len(missing),
                     len(point_list))
        timings = {"features": 0.0, "histogram": 0.0, "subgraph": 0.0, "lu": 0.0}
        tick = time.perf_counter()
        stream = extract_features(model, [point_list[i] for i in missing], dataset, samples.order, normalize=normalize,
                                  batch_size=batch_size, device=device, max_memory=budget, spill_dir=spill_dir,
                                  progress=progress) if missing else iter(())
        with tqdm(total=len(missing), desc="layers", unit="point", disable=not progress) as bar:
            for item in stream:  # not enumerate(): it would hold the last item while the next one is extracted
                index = missing[item.index]
                timings["features"] += time.perf_counter() - tick
                row, edge_arrays, seconds = _measure_layer(item, index, samples, target, budget, bins, edges, lu_k)
                for key, value in seconds.items():
                    timings[key] += value
                del item
                folder.write_layer(index, row["name"], row, edge_arrays)
                stored[index] = row
                bar.set_postfix_str(f"{row['name']} M={row['M']:.4f}")
                bar.update()
                tick = time.perf_counter()
        folder.write_table(stored, bins)
        folder.manifest.update(
            status="complete",
            seconds={**timings, "total": time.perf_counter() - started},
            layers=[{"name": row["name"], "shape": row["shape"], "zero_vectors": row["zero_vectors"],
                     "seconds": row["seconds"]} for row in stored],
        )
        folder.write_manifest()
    return Analysis(Path(out), folder.manifest, stored)


def _check_counts(bins: int, vertices: int, edges: int, lu_k: int, lu_batch_size: int) -> None:
    pairs = vertices * (vertices - 1) // 2
    if bins < 1:
        raise SepgraphError(f"--bins must be at least 1, got {bins}")
    if edges < 1 or edges > pairs:
        raise SepgraphError(
            f"--edges {edges} must be between 1 and the {pairs} pairs among --vertices {vertices}"
        )
    if lu_k < 1 or lu_k >= lu_batch_size:
        raise SepgraphError(f"--lu-k {lu_k} must be between 1 and --lu-batch-size - 1 ({lu_batch_size - 1})")


@dataclass
class SampleSets:
    """The samples of one analysis (SPEC 2, 7) as dataset indices.

    ``order`` is the union whose features are extracted once per layer point: the vertices
    first, so that their unit rows are a slice rather than a copy, then the other samples in
    index order.
    """

    order: np.ndarray
    hist: np.ndarray
    vertices: np.ndarray
    batches: list[np.ndarray]
    labels: np.ndarray

    @classmethod
    def choose(cls, dataset: ImageDataset, vertices: int, hist_samples: int | str, lu_batch_size: int,
               lu_batches: int, vertex_choice: str, seed: int) -> SampleSets:
        labels, classes = dataset.labels, dataset.num_classes
        vertex_set = select_vertices(labels, vertices, vertex_choice, seed, classes)
        if hist_samples == "all":
            hist_set = np.arange(len(dataset), dtype=np.int64)
        else:
            hist_set = select_vertices(labels, int(hist_samples), vertex_choice, seed, classes)
        batch_sets = lu_batch_indices(labels, lu_batch_size, lu_batches, vertex_choice, seed, classes)
        others = np.setdiff1d(np.concatenate([hist_set, *batch_sets]), vertex_set)
        return cls(np.concatenate([vertex_set, others]), hist_set, vertex_set, batch_sets, labels)

    @cached_property
    def _row_of(self) -> np.ndarray:
        row_of = np.full(int(self.order.max()) + 1, -1, dtype=np.int64)
        row_of[self.order] = np.arange(len(self.order))
        return row_of

    def positions(self, indices: np.ndarray) -> np.ndarray:
        """Rows of ``indices`` within ``order``."""
        return self._row_of[indices]

    @property
    def hist_is_union(self) -> bool:
        return len(self.hist) == len(self.order)


def _rows(unit: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    return unit[torch.as_tensor(positions, device=unit.device)]


def _measure_layer(item: PointFeatures, index: int, samples: SampleSets, target: torch.device, budget: int,
                   bins: int, edges: int, lu_k: int) -> tuple[dict, dict, dict]:
    """All measurements of one layer point; returns its row, its edge arrays and stage timings."""
    seconds = {}
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
    unit = unit.to(target)
    block_memory = max(budget // 4, 1)
    hist_positions = samples.positions(samples.hist)
    hist_unit = unit if samples.hist_is_union else _rows(unit, hist_positions)
    zero_vectors = int(zero[torch.as_tensor(hist_positions)].sum())
    histogram = similarity_histogram(hist_unit, bins, block_memory, zero_vectors)
    del hist_unit
    seconds["histogram"] = time.perf_counter() - tick

    tick = time.perf_counter()
    vertex_labels = samples.labels[samples.vertices]
    subgraph = top_edges(unit[: len(samples.vertices)], edges, block_memory)  # vertices come first in the order
    paper = paper_modularity(subgraph.i, subgraph.j, subgraph.w, vertex_labels)
    newman_q = newman_modularity(subgraph.i, subgraph.j, subgraph.w, vertex_labels)
    seconds["subgraph"] = time.perf_counter() - tick

    tick = time.perf_counter()
    lu = [lu_modularity(_rows(unit, samples.positions(batch)), samples.labels[batch], lu_k)
          for batch in samples.batches]
    seconds["lu"] = time.perf_counter() - tick

    row = {"index": index, "name": item.point.name, "dim": int(np.prod(item.shape))}
    row.update({f"hist_{b}": int(count) for b, count in enumerate(histogram.counts)})
    row.update({
        "below_zero": histogram.below_zero, "mean_sim": histogram.mean, "share_below_0.1": histogram.share_below_0_1,
        "r": paper.r, "AQ": paper.AQ, "EQ": paper.EQ, "M": paper.M, "newman_q": newman_q,
        "lu_q_mean": float(np.mean(lu)), "lu_q_std": float(np.std(lu, ddof=1)) if len(lu) > 1 else 0.0,
        "lu_q": [float(q) for q in lu], "shape": list(item.shape), "zero_vectors": zero_vectors,
        "wrong_edge_share": 1.0 - paper.r, "seconds": seconds,
    })
    edge_arrays = {"i": subgraph.i, "j": subgraph.j, "w": subgraph.w, "vertices": samples.vertices,
                   "labels": vertex_labels}
    return row, edge_arrays, seconds
