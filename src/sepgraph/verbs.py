"""The library's verbs: what each ``sepgraph`` command does, as one call (the CLI only parses and prints).

Every function here composes the stages (models, data, analysis, comparison, report) and decides what the command
decides: when to analyse before pruning, whether to draw the report. :func:`train` and :func:`prune` are exported as
``sepgraph.train`` and ``sepgraph.prune``, so a notebook prunes and trains exactly as the command line does without
importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .analysis.dynamics import DynamicsTracker, small_settings
from .analysis.run import Analysis, analyze
from .data.protocol import LabelledImages
from .data.sources import DataLike, DataSource, as_dataset
from .errors import SepgraphError
from .models import build_model, input_size, list_models, model_info, parameter_count
from .models.capture import point_shapes
from .models.checkpoints import load_weights
from .models.points import CONVENTIONS, layer_points, removable_units
from .models.protocol import LayerPoint
from .pruning.criterion import DEPTH_CRITERIA, TARGET_RULES
from .pruning.halves import analyse_selection
from .pruning.options import PruningOptions
from .pruning.rows import compare_pruning
from .pruning.scores import check_reachable
from .pruning.table import PruningRow
from .report.figures import dynamics_heatmap
from .report.html import ReportSettings, render_report
from .results.depth_table import load_depth
from .results.folder import is_complete, load_results
from .settings import GraphSettings, RunSettings
from .training.evaluation import Evaluation, evaluate
from .training.loop import train as train_loop
from .training.recipe import Recipe, TrainingRun


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: its family, parameter count and number of layer points under each convention."""

    name: str
    family: str
    parameters: int
    points: dict[str, int]


def zoo(pattern: str = "*") -> list[ZooEntry]:
    """The zoo models matching a shell-style ``pattern`` (``sepgraph models``)."""
    entries = []
    for name in list_models(pattern):
        model = build_model(name).model
        entries.append(ZooEntry(name, model_info(name).family, parameter_count(model),
                                {c: len(layer_points(model, c)) for c in CONVENTIONS}))
    return entries


def point_table(model: str, points: str | Sequence[str] = "paper", num_classes: int = 10, size: int | None = None
                ) -> tuple[tuple[int, int, int], list[tuple[LayerPoint, tuple[int, ...]]]]:
    """A model's layer points and each one's per-sample output shape (``sepgraph points``).

    Returns:
        the input (channels, height, width) used, and (point, shape) per layer point.
    """
    if size is not None and size < 1:
        raise SepgraphError(f"size must be at least 1, got {size}", arguments=("size",))
    network = build_model(model, num_classes).model
    channels, height, _ = input_size(model)
    side = size or height
    example = torch.zeros(1, channels, side, side)
    convention, names = (points, None) if isinstance(points, str) else ("paper", list(points))
    found = layer_points(network, convention, names, example_input=example)
    return (channels, side, side), list(zip(found, point_shapes(network, found, example), strict=True))


def evaluate_checkpoint(model: str, data: str | DataSource, *, weights: str | None = None,
                        num_classes: int | None = None, normalize: str = "cifar10", batch_size: int = 256,
                        device: str = "auto") -> tuple[Evaluation, dict]:
    """Accuracy of a model on a dataset (``sepgraph eval``); returns it and a record of what was measured."""
    dataset = as_dataset(data)
    network, sha256 = build_model(model, dataset.num_classes if num_classes is None else num_classes, weights)
    result = evaluate(network, dataset, normalize=normalize, batch_size=batch_size, device=device)
    return result, {"model": model, "weights": weights, "weights_sha256": sha256, "data": dataset.spec,
                    "data_description": dataset.description, "normalize": normalize, **result.as_dict()}


def train(model: str | nn.Module, data: DataLike, *, out: str | Path, test_data: DataLike | None = None,
          weights: str | None = None, num_classes: int | None = None, normalize: str = "cifar10",
          recipe: Recipe | None = None, resume: bool = False, device: str = "auto", track_every: int = 0,
          track_data: DataLike | None = None, track_vertices: int = 500, progress: bool = True) -> TrainingRun:
    """Train a model with the recipe (``sepgraph train``): a name built with the recipe's seed (and ``weights``), or
    a module as it is.

    With ``track_every`` K > 0, M, Lu et al.'s Q and k-NN accuracy are measured at every layer point before
    training and every K epochs on ``track_vertices`` vertices of ``track_data`` (default: ``test_data``,
    else ``data``) into ``out/dynamics.csv``, drawn as ``out/dynamics.png`` (SPEC 17).
    """
    recipe = recipe or Recipe()
    dataset = as_dataset(data)
    classes = dataset.num_classes if num_classes is None else num_classes
    network = model if isinstance(model, nn.Module) else build_model(model, classes, weights, recipe.seed).model
    test = as_dataset(test_data) if test_data is not None else None
    tracker = None
    if track_data is not None and not track_every:
        raise SepgraphError("track_data needs track_every K: the epochs between measurements",
                            arguments=("track_data", "track_every"))
    if track_every:
        tracked = as_dataset(track_data) if track_data is not None else test if test is not None else dataset
        tracker = DynamicsTracker(out, tracked, small_settings(tracked, track_vertices, recipe.seed),
                                  every=track_every, epochs=recipe.epochs, normalize=normalize,
                                  run=RunSettings(device=device))
    history = train_loop(network, dataset, normalize=normalize, recipe=recipe, out=out, resume=resume, device=device,
                    test_dataset=test, observer=tracker, progress=progress)
    if tracker is not None:
        name = model if isinstance(model, str) else type(model).__name__
        figure = dynamics_heatmap(tracker.rows, f"{name} on {tracker.data.description}")
        figure.savefig(Path(out) / "dynamics.png", dpi=150)
    return history


def analyze_and_report(model: str, data: DataSource, settings: GraphSettings, *, out: str | Path,
                       weights: str | None = None, num_classes: int | None = None, normalize: str = "cifar10",
                       points: str | Sequence[str] = "paper", run: RunSettings | None = None, resume: bool = False,
                       overwrite: bool = False, report: ReportSettings | None = None) -> tuple[Analysis, Path | None]:
    """One analysis, then its figures and report unless ``report`` is None (``sepgraph analyze``)."""
    result = analyze(model, data, settings, weights=weights, num_classes=num_classes, normalize=normalize,
                     points=points, run=run, out=out, resume=resume, overwrite=overwrite)
    return result, render_report(result.path, report) if report is not None else None


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` made: the comparison's rows (the control first), the analysis it cut by, and report.html
    (None when nothing was trained: proxy only)."""

    rows: list[PruningRow]
    analysis: Analysis
    report: Path | None


def prune(folder: str | Path, train_data: DataLike, *, model: str | nn.Module | None = None,
          data: DataLike | None = None, weights: str | Path | None = None, normalize: str = "cifar10",
          points: str = "paper", settings: GraphSettings | None = None, run: RunSettings | None = None,
          test_data: DataLike | None = None, options: PruningOptions | None = None, recipe: Recipe | None = None,
          device: str = "auto", report: ReportSettings | None = None, progress: bool = True) -> Pruned:
    """The cuts ``options`` ask for beside the unpruned control, trained alike on ``device`` (or, proxy only,
    measured untrained), and the report (``sepgraph prune``).

    With ``model`` (a name, or a module: a zoo model or any model with residual blocks, SPEC 25), ``folder`` is first
    filled (or completed) by its analysis of the selection half of ``data`` (SPEC 21) with ``weights``,
    ``normalize``, ``points`` and ``settings``, unless it already holds a finished one; a target no cut can reach is
    refused before that analysis. Without ``model``, ``folder`` must hold the analysis of a model built by name.
    ``report``: how the report draws (default: the first rule of ``options``).
    """
    folder = Path(folder)
    options = options or PruningOptions()
    if isinstance(model, nn.Module) and weights is not None:
        load_weights(model, weights)  # the weights analysed and trained, whether or not the analysis runs now
    wants_depth = any(key in DEPTH_CRITERIA for key in options.curves)
    if model is not None and (not is_complete(folder) or wants_depth and load_depth(folder) is None):
        if data is None:
            raise SepgraphError("model needs data: the data to analyse it on (e.g. its test set)",
                                arguments=("model", "data"))
        dataset = as_dataset(data)  # read once, for the check and the analysis
        _check_targets(model, dataset, normalize, points, options)
        analyse_selection(model, dataset, settings, fraction=options.selection_fraction, seed=options.split_seed,
                          out=folder, weights=weights, normalize=normalize, points=points,
                          run=replace(run or RunSettings(), device=device), progress=progress)
    original = model if isinstance(model, nn.Module) else None
    table = compare_pruning(folder, train_data, options, test_data=test_data, recipe=recipe, device=device,
                            progress=progress, model=original)
    manifest, rows = load_results(folder)
    analysis = Analysis(folder, manifest, rows)
    if options.proxy_only:
        return Pruned(table, analysis, None)
    rule, parameter = next(iter(options.rules), ("plateau", None))  # the report's figures draw a curve rule
    return Pruned(table, analysis, render_report(folder, report or ReportSettings(rule=rule, parameter=parameter)))


def _check_targets(model: str | nn.Module, dataset: LabelledImages, normalize: str, points: str,
                   options: PruningOptions) -> None:
    """Refuse a target no cut can reach, at the data's image size, before an analysis that may take hours."""
    targets = [(rule, value) for rule, value in options.all_rules if rule in TARGET_RULES]
    if not targets:
        return
    network = model if isinstance(model, nn.Module) else build_model(model).model
    size = tuple(dataset.tensors([0], normalize).shape[1:])  # the data's, as the rows
    units = removable_units(network, points, torch.zeros(1, *size))
    check_reachable(network, units, size, targets, options.curves, points)
