"""Training the rows of a pruning comparison (SPEC 8, 9, 19): every cut beside an unpruned control trained alike;
refit the head, fine-tune, and count accuracy, parameters and FLOPs (``sepgraph prune``); or, with nothing trained,
each cut's zero-training proxy (``--proxy-only``).

Every row, the control included, gets the same head-only epochs and fine-tuning recipe, seed included,
so the accuracy change against the control is what the cut did. Each trained model lives in
``pruning/<unpruned|remove|truncate>-<key>/`` of the results folder; a rerun with the same settings
reuses finished rows and resumes an interrupted one from its last epoch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.protocol import LabelledImages
from ..data.sources import DataLike, DataSource, as_dataset
from ..errors import SepgraphError
from ..files import atomic_text
from ..models.checkpoints import save_weights, state_sha256
from ..models.factory import build_model
from ..models.protocol import RemovableUnit, ZooModel
from ..models.pruned import PruningSpec, apply_pruning, reinitialise
from ..models.size import flop_count, parameter_count
from ..results.depth_table import DepthRow, load_depth
from ..results.folder import load_results
from ..results.manifest import Parameters
from ..training.evaluation import evaluate
from ..training.loop import train
from ..training.recalibration import recalibrated_accuracy
from ..training.recipe import Recipe
from .candidates import Candidate, candidates, reference_candidate
from .criterion import DEPTH_CRITERIA, TARGET_RULES, UnitSizes, block_influence_scores
from .halves import evaluation_halves
from .options import PruningOptions
from .scores import ablation_scores, magnitude_scores, no_removable_block, unit_sizes, without_each
from .table import PruningRow, write_pruning


def compare_pruning(
    results: str | Path,
    train_data: DataLike,
    options: PruningOptions | None = None,
    *,
    test_data: DataLike | None = None,
    recipe: Recipe | None = None,
    device: str = "auto",
    progress: bool = True,
    model: nn.Module | None = None,
) -> list[PruningRow]:
    """Prune the analysed model as ``options`` say (by default M's and Lu et al.'s Q's plateau cuts), train every
    row and the unpruned control alike, and write ``pruning.csv`` and ``pruning.md`` into the results folder; with
    ``options.proxy_only``, measure each cut's proxy accuracy instead, train nothing and write ``proxy.csv``,
    ``proxy.md`` and ``proxy-orders.json``.

    Args:
        train_data: where heads are refitted, models fine-tuned and batch-norm statistics re-estimated.
        test_data: where accuracy is measured (SPEC 21, :func:`~sepgraph.pruning.halves.evaluation_halves`): by
            default the report half of the analysis's data, read like ``train_data``.
        model: the analysed module itself, weights as analysed (needed where the analysis was of a module, not of a
            model built by name).

    Returns:
        the table's rows, the control first.
    """
    options = options or PruningOptions()
    plan = plan_pruning(results, train_data, options, test_data=test_data, recipe=recipe, device=device,
                        progress=progress, model=model)
    table = plan.comparison.train_all(plan.candidates)
    orders = {row.curve: list(row.order) for row in plan.candidates if row.order}  # a criterion's order, any target
    write_pruning(Path(results), table, plan.comparison.recipe, "proxy" if options.proxy_only else "pruning", orders)
    return table


def plan_pruning(
    results: str | Path,
    train_data: DataLike,
    options: PruningOptions | None = None,
    *,
    test_data: DataLike | None = None,
    recipe: Recipe | None = None,
    device: str = "auto",
    progress: bool = True,
    model: nn.Module | None = None,
) -> PruningPlan:
    """What :func:`compare_pruning` would train, ready to train one row at a time (:meth:`PruningPlan.row`), for a
    driver that spends a budget row by row; the arguments are :func:`compare_pruning`'s."""
    options = options or PruningOptions()
    results = Path(results)
    manifest, rows = load_results(results)
    comparison = _Comparison.open(results, manifest.parameters, train_data, test_data, options,
                                  recipe or Recipe(), device, progress, model)
    units = manifest.removable_units
    if units == [] and any(rule in TARGET_RULES for rule, _ in options.all_rules):
        raise no_removable_block(comparison.original, comparison.size)
    sizes, scores, runs = comparison.unit_measures(units)
    found = candidates(comparison.base, rows, units, options, sizes, scores, comparison.recipe.seed, runs)
    found += [reference_candidate(comparison.original, text, comparison.base, manifest.parameters.convention,
                                  comparison.classes, comparison.size) for text in options.reference_cuts]
    if not isinstance(comparison.original, ZooModel):  # a truncation it cannot take: refused before any training
        for candidate in found:
            if candidate.spec.operation == "truncate":
                comparison._pruned(candidate.spec, start=False)
    return PruningPlan(found, comparison)


def _built(base: str, classes: int, weights: str | None, seed: int, results: Path) -> nn.Module:
    """The analysed model built by its name; a module's analysis (a class name) asks for the module."""
    try:
        return build_model(base, classes, weights, seed).model
    except SepgraphError as error:
        raise SepgraphError(f"the analysis in {str(results)!r} is of {base!r}, which cannot be built by name "
                            f"({error}); if it was a module, pass it: model=the module",
                            arguments=("model",)) from error


@dataclass
class PruningPlan:
    """A comparison's candidates (the control first) and how each row is trained, in the results folder's
    ``pruning/`` as :func:`compare_pruning` trains it (the same keys, so either reuses the other's rows)."""

    candidates: list[Candidate]
    comparison: _Comparison

    def row(self, candidate: Candidate, recipe: Recipe | None = None) -> PruningRow:
        """One candidate trained (or read back) under ``recipe`` (default: the plan's), its ``accuracy_vs_control``
        left empty (the control is another row)."""
        return PruningRow(**self._under(recipe).record(candidate), accuracy_vs_control=None)

    def is_trained(self, candidate: Candidate, recipe: Recipe | None = None) -> bool:
        """Whether :meth:`row` would read the candidate's pruning back finished under ``recipe`` (default: the
        plan's) rather than train it: another candidate of the same units may have trained it."""
        return (self._under(recipe)._trained_path(candidate.spec) / "row.json").is_file()

    def _under(self, recipe: Recipe | None) -> _Comparison:
        return self.comparison if recipe is None else self.comparison.under(recipe)

    def flops_share(self, candidate: Candidate) -> float:
        """The pruned model's FLOPs over the original's (one image): what a row's training costs, relatively."""
        model = self.comparison._pruned(candidate.spec, start=False)
        return flop_count(model, self.comparison.size) / flop_count(self.comparison.original, self.comparison.size)


@dataclass
class _Comparison:
    """What every row of one comparison shares: the original model, the data (training images, the report half's
    ``test_set``, and the ``selection_set`` where a score is measured on it), the recipe and the settings that key
    each row's folder."""

    results: Path
    base: str
    classes: int
    size: tuple[int, int, int]
    original: nn.Module
    train_set: LabelledImages
    test_set: LabelledImages
    recipe: Recipe
    options: PruningOptions
    settings: dict
    device: str
    progress: bool
    selection_set: LabelledImages | None = None
    memo: dict = field(default_factory=dict)
    """What every copy of the comparison (one per seed or recipe) shares: each row's outcome, the original's
    measures."""

    @classmethod
    def open(cls, results: Path, parameters: Parameters, train_data: DataLike,
             test_data: DataLike | None, options: PruningOptions, recipe: Recipe,
             device: str, progress: bool, model: nn.Module | None = None) -> _Comparison:
        """The comparison of the analysis in ``results`` (its manifest's ``parameters``): an unpruned model's
        convention points; ``model``: the analysed module itself, else one built by name."""
        base, normalize, classes = parameters.model, parameters.normalize, parameters.num_classes
        if parameters.convention == "explicit" or PruningSpec.names_a_pruning(base):
            raise SepgraphError("pruning needs an analysis of an unpruned model's convention points "
                                f"(got model {base!r}, convention {parameters.convention!r})")
        if model is not None and type(model).__name__ != base:
            raise SepgraphError(f"model is a {type(model).__name__}, but the analysis in {str(results)!r} is of "
                                f"{base!r}; pass the module that was analysed", arguments=("model",))
        train_set = as_dataset(train_data)
        like = train_data if isinstance(train_data, DataSource) else None
        selection, test_set = evaluation_halves(results, parameters, test_data, like, options.selection_fraction,
                                                options.split_seed)
        # without weights: the random model the analysis measured
        seed = parameters.settings.seed
        original = model if model is not None else _built(base, classes, parameters.weights, seed, results)
        weights = parameters.weights_sha256 if model is None else state_sha256(model)  # a module: its own state
        settings = {"model": base, "weights_sha256": weights, "train_data": train_set.spec,
                    "train_sha256": train_set.sha256, "test_data": test_set.spec,
                    "test_sha256": test_set.digest,  # a half of a set, or images in memory: their content
                    "normalize": normalize, "init": options.init, "head_epochs": options.head_epochs,
                    "recipe": recipe.key()}
        if not parameters.weights:
            settings["analysis_seed"] = seed
        size = tuple(test_set.tensors(np.arange(1), normalize).shape[1:])  # the data's, for any input size's model
        return cls(results, base, classes, size, original, train_set, test_set, recipe, options, settings,
                   device, progress, selection)

    def unit_measures(self, units: list[RemovableUnit] | None
                      ) -> tuple[UnitSizes | None, dict[str, list[float]] | None, list[DepthRow] | None]:
        """The units' sizes where a target rule or random cuts need them, the unit scores the criteria name, and the
        analysis's runs of units with their depth measures where a criterion reads them (SPEC 22)."""
        if units is None:
            return None, None, None
        runs = self._depth() if any(key in DEPTH_CRITERIA for key in self.options.curves) else None
        needs_sizes = self.options.draws_random or any(rule in TARGET_RULES for rule, _ in self.options.all_rules)
        named = [key for key in ("magnitude", "ablation") if key in self.options.curves]
        without = without_each(self.original, units, self.size) if needs_sizes or named else []
        sizes = unit_sizes(self.original, without, self.size) if needs_sizes else None
        scores: dict[str, list[float]] = {}
        if "magnitude" in named:
            scores["magnitude"] = magnitude_scores(self.original, without)
        if "ablation" in named:
            scores["ablation"] = self._ablation(units, without)
        if "block_influence" in self.options.curves:
            scores["block_influence"] = block_influence_scores(runs, units)
        return sizes, scores or None, runs

    def _ablation(self, units: list[RemovableUnit], without: list[nn.Module]) -> list[float]:
        """The units' ``ablation`` scores, kept in ``scores/ablation-<key>.json`` (keyed by the weights, the training
        and selection images, the normalisation and the recipe's seed) so a rerun reads them back."""
        what = {"weights_sha256": self.settings["weights_sha256"], "train_data": self.settings["train_data"],
                "train_sha256": self.settings["train_sha256"] or self.train_set.digest,
                "selection": self.selection_set.digest, "normalize": self.settings["normalize"],
                "seed": self.recipe.seed, "units": [unit.name for unit in units]}
        path = self.results / "scores" / f"ablation-{_digest(what)}.json"
        if path.is_file():
            return json.loads(path.read_text())
        scores = ablation_scores(self.original, without, self.selection_set, self.train_set,
                                 normalize=self.settings["normalize"], seed=self.recipe.seed, device=self.device)
        path.parent.mkdir(exist_ok=True)
        atomic_text(path, json.dumps(scores) + "\n")
        return scores

    def _depth(self) -> list[DepthRow]:
        """The analysis's ``depth.csv`` (SPEC 22), refused in one line where it predates them."""
        runs = load_depth(self.results)
        if runs is None:
            raise SepgraphError(f"the analysis in {str(self.results)!r} has no depth measures (depth.csv, SPEC 22), "
                                "which block_influence and angular read; rerun its command with --resume (or 'sepgraph "
                                "prune --model' again): one more pass adds them", arguments=("curves",))
        return runs

    def train_all(self, found: list[Candidate]) -> list[PruningRow]:
        """Train (or, proxy only, measure) each distinct pruning once and give every candidate its row at every seed,
        the control first."""
        table = [run.record(candidate) for candidate in found for run in self._seeds()]
        controls = {row["seed"]: row["accuracy_finetuned"] for row in table if row["kind"] == "control"}
        return [PruningRow(**row, accuracy_vs_control=None if controls[row["seed"]] is None
                           else row["accuracy_finetuned"] - controls[row["seed"]]) for row in table]

    def under(self, recipe: Recipe) -> _Comparison:
        """This comparison trained with another ``recipe`` (a seed, a budget), its rows keyed by it."""
        return replace(self, recipe=recipe, settings={**self.settings, "recipe": recipe.key()})

    def record(self, candidate: Candidate) -> dict:
        """One candidate's row under this comparison's recipe (but its ``accuracy_vs_control``), its pruning trained
        (or measured, proxy only) once per recipe whatever criteria chose it."""
        if "original" not in self.memo:
            self.memo["original"] = (evaluate(self.original, self.test_set, normalize=self.settings["normalize"],
                                              device=self.device, progress=self.progress).accuracy,
                                     parameter_count(self.original), flop_count(self.original, self.size))
        accuracy, params, flops = self.memo["original"]
        key = (candidate.spec.pruning, self._key(candidate.spec))
        if key not in self.memo:
            self.memo[key] = self._proxy_row(candidate.spec) if self.options.proxy_only \
                else self._trained_row(candidate.spec)
        outcome = self.memo[key]
        return dict(
            model=self.base, curve=candidate.curve, kind=candidate.kind, rule=candidate.rule,
            parameter=candidate.parameter, cut=candidate.cut, pruned_model=str(candidate.spec),
            points_removed=candidate.points_removed, units_removed=candidate.units_removed,
            init=self.settings["init"], accuracy_original=accuracy, **outcome,
            head_epochs=self.settings["head_epochs"], finetune_epochs=self.recipe.epochs,
            seed=self.recipe.seed, params_original=params, flops_original=flops,
            params_saved_pct=100.0 * (1 - outcome["params_pruned"] / params),
            flops_saved_pct=100.0 * (1 - outcome["flops_pruned"] / flops), matches=candidate.matches)

    def _seeds(self) -> list[_Comparison]:
        """This comparison once per seed of ``options.seeds``: the recipe's seed, +1, ... (SPEC 20); each keys its
        own rows, so a rerun with more seeds trains only the new ones."""
        return [self.under(replace(self.recipe, seed=self.recipe.seed + k)) for k in range(self.options.seeds)]

    def _proxy_row(self, spec: PruningSpec) -> dict:
        """One pruned model's size and proxy accuracy, nothing trained and no weights written; kept in
        ``proxy/<unpruned|remove>-<key>.json`` so a rerun reads it back instead of measuring it again."""
        path = self.results / "proxy" / f"{spec.operation or 'unpruned'}-{self._key(spec)}.json"
        if path.is_file():
            return json.loads(path.read_text())
        model = self._pruned(spec, start=False)
        row = {"accuracy_head_refit": None, "accuracy_finetuned": None, "accuracy_proxy": self._proxy(model, spec),
               "params_pruned": parameter_count(model), "flops_pruned": flop_count(model, self.size),
               "train_seconds": 0.0, "weights": ""}
        path.parent.mkdir(exist_ok=True)
        atomic_text(path, json.dumps(row, indent=1) + "\n")
        return row

    def _key(self, spec: PruningSpec) -> str:
        """The digest of the pruning and every setting that makes its row (SPEC 9)."""
        return _digest({**self.settings, "pruning": spec.pruning})

    def _trained_path(self, spec: PruningSpec) -> Path:
        """The folder of one pruned model's training under this comparison's settings."""
        return self.results / "pruning" / f"{spec.operation or 'unpruned'}-{self._key(spec)}"

    def _trained_row(self, spec: PruningSpec) -> dict:
        """Build (seeded), measure the proxy, refit the head, fine-tune and measure one pruned model, or reuse a
        finished run (adding the proxy to a row finished before it existed).

        ``pruning/<unpruned|remove|truncate>-<key>/`` holds ``settings.json``, the training runs (``head/``,
        ``finetune/``, resumable), ``model.pt`` and, once complete, ``row.json``.
        """
        row_settings = {**self.settings, "pruning": spec.pruning}
        out = self._trained_path(spec)
        if (out / "row.json").is_file():
            row = json.loads((out / "row.json").read_text())
            if "accuracy_proxy" not in row:
                row["accuracy_proxy"] = self._proxy(self._pruned(spec, start=False), spec)
                atomic_text(out / "row.json", json.dumps(row, indent=1) + "\n")
            return row
        if out.exists() and not (out / "settings.json").is_file():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_text(out / "settings.json", json.dumps(row_settings, indent=1) + "\n")
        model = self._pruned(spec)
        proxy = self._proxy(model if self.settings["init"] == "finetune" else self._pruned(spec, start=False), spec)
        head_refit, finetuned, seconds = self._train(model, out)
        save_weights(model, out / "model.pt")
        row = {"accuracy_head_refit": head_refit, "accuracy_finetuned": finetuned, "accuracy_proxy": proxy,
               "params_pruned": parameter_count(model), "flops_pruned": flop_count(model, self.size),
               "train_seconds": seconds, "weights": str((out / "model.pt").relative_to(self.results))}
        atomic_text(out / "row.json", json.dumps(row, indent=1) + "\n")
        return row

    def _proxy(self, model: nn.Module, spec: PruningSpec) -> float | None:
        """The zero-training proxy (SPEC 19): accuracy of a copy of ``model`` after batch-norm recalibration on
        :data:`~sepgraph.training.recalibration.PROXY_IMAGES` unaugmented training images drawn with the recipe's
        seed; None for a truncation (its new head is untrained)."""
        if spec.operation == "truncate":
            return None
        return recalibrated_accuracy(model, self.train_set, self.recipe.seed, self.test_set,
                                     normalize=self.settings["normalize"], device=self.device, progress=self.progress)

    def _pruned(self, spec: PruningSpec, start: bool = True) -> nn.Module:
        """The original model pruned as ``spec`` says (a copy), re-initialised for ``--init scratch`` when it is
        where training ``start``s (the proxy measures the surviving weights, never a scratch start)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.recipe.seed)  # a new head (truncation) or a scratch start: the same draws each time
            model = apply_pruning(self.original, spec, self.classes, self.size) if spec.operation \
                else copy.deepcopy(self.original)
            if start and self.settings["init"] == "scratch":
                reinitialise(model)
        return model

    def _train(self, model: nn.Module, out: Path) -> tuple[float, float, float]:
        """Head-only epochs, then fine-tuning (both resumable); the accuracy after each and the seconds trained."""
        normalize, seconds, recipe = self.settings["normalize"], 0.0, self.recipe
        head_epochs = self.settings["head_epochs"]
        if head_epochs > 0:
            history = train(model, self.train_set, normalize=normalize, out=out / "head",
                            parameters=list(_head(model).parameters()),
                            recipe=replace(recipe, epochs=head_epochs, milestones=()), frozen_statistics=True,
                            resume=(out / "head" / "state.pt").is_file(), device=self.device, progress=self.progress)
            seconds += sum(epoch["seconds"] for epoch in history.metrics)
        head_refit = self._accuracy(model)
        if recipe.epochs == 0:
            return head_refit, head_refit, seconds
        history = train(model, self.train_set, normalize=normalize, recipe=recipe, out=out / "finetune",
                        resume=(out / "finetune" / "state.pt").is_file(), device=self.device, progress=self.progress)
        seconds += sum(epoch["seconds"] for epoch in history.metrics)
        return head_refit, self._accuracy(model), seconds

    def _accuracy(self, model: nn.Module) -> float:
        return evaluate(model, self.test_set, normalize=self.settings["normalize"], device=self.device,
                        progress=self.progress).accuracy


def _digest(settings: dict) -> str:
    """The first 12 hex digits of the sha256 of ``settings`` as sorted JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _head(model: nn.Module) -> nn.Module:
    for name in ("linear", "classifier", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return getattr(model, name)
    raise SepgraphError(f"cannot find the linear head of {type(model).__name__}")


