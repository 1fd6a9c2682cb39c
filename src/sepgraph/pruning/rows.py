"""Training the rows of a pruning comparison (SPEC 8, 9): every cut beside an unpruned control trained alike; refit
the head, fine-tune, and count accuracy, parameters and FLOPs (``sepgraph prune``).

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..data.dataset import ImageDataset
from ..data.sources import DataSource, as_dataset
from ..errors import SepgraphError
from ..files import atomic_text
from ..models.checkpoints import save_weights
from ..models.factory import build_model
from ..models.pruned import PruningSpec, apply_pruning, reinitialise
from ..models.registry import input_size
from ..models.size import flop_count, parameter_count
from ..results.folder import load_results, removable_units_of
from ..training.evaluation import evaluate
from ..training.loop import train
from ..training.recipe import Recipe
from .candidates import Candidate, Rule, as_rules, candidates, reference_candidate
from .criterion import PAPER_CURVES, check_curves, check_rule
from .table import PruningRow, write_pruning


def compare_pruning(
    results: str | Path,
    train_data: str | DataSource | ImageDataset,
    *,
    test_data: str | DataSource | ImageDataset | None = None,
    rules: Sequence[str | Rule] = ("plateau",),
    curves: Sequence[str] = PAPER_CURVES,
    equal_units: bool = False,
    reference_cuts: Sequence[str] = (),
    init: str = "finetune",
    head_epochs: int = 1,
    recipe: Recipe | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[PruningRow]:
    """Prune the analysed model where each curve says under each rule (by default M and Lu et al.'s Q), train
    every row and the unpruned control alike, and write ``pruning.csv`` and ``pruning.md`` into the results folder.

    Args:
        rules: Criterion I rules, each a name or (name, parameter); ``plateau`` and ``peak`` truncate,
            ``delta`` and ``delta-abs`` remove units (SPEC 8).
        curves: keys of :data:`~sepgraph.pruning.criterion.CURVES` (SPEC 16): one pruned model per curve and rule.
        equal_units: add ``delta`` rows at equal unit counts: each curve's tau chosen so it removes as
            many units as the first curve does under the ``delta`` rule (the next curve's count if it removes
            none).
        reference_cuts: published or hand-picked prunings, ``MODEL+remove=...`` or ``remove=...``.
        head_epochs: head-only epochs (batch-norm statistics frozen) before ``recipe.epochs`` of fine-tuning.
        test_data: where accuracy is measured (default: the analysis's data, read like ``train_data``).

    Returns:
        the table's rows, the control first.
    """
    rules = as_rules(rules)
    check_options(rules, init, head_epochs, curves)
    results = Path(results)
    manifest, rows = load_results(results)
    comparison = _Comparison.open(results, manifest["parameters"], train_data, test_data, init, head_epochs,
                                  recipe or Recipe(), device, progress)
    found = candidates(comparison.base, rows, removable_units_of(manifest), rules, curves, equal_units)
    found += [reference_candidate(comparison.original, text, comparison.base, manifest["parameters"]["convention"],
                                  comparison.classes, comparison.size) for text in reference_cuts]  # checked first
    table = comparison.train_all(found)
    write_pruning(results, table, comparison.recipe)
    return table


def check_options(rules: Sequence[str | Rule], init: str, head_epochs: int,
                  curves: Sequence[str] = PAPER_CURVES) -> None:
    """The comparison's own options, checked before anything is analysed or trained (the recipe checks itself)."""
    check_curves(curves)
    for item in rules:
        check_rule(*((item, None) if isinstance(item, str) else item))
    if init not in ("finetune", "scratch"):
        raise SepgraphError(f"init must be finetune or scratch, got {init!r}", arguments=("init",))
    if head_epochs < 0:
        raise SepgraphError(f"head_epochs must be 0 or more, got {head_epochs}", arguments=("head_epochs",))


@dataclass
class _Comparison:
    """What every row of one comparison shares: the original model, the data, the recipe and the settings that key
    each row's folder."""

    results: Path
    base: str
    classes: int
    size: tuple[int, int, int]
    original: nn.Module
    train_set: ImageDataset
    test_set: ImageDataset
    recipe: Recipe
    settings: dict
    device: str
    progress: bool

    @classmethod
    def open(cls, results: Path, parameters: dict, train_data: str | DataSource | ImageDataset,
             test_data: str | DataSource | ImageDataset | None, init: str, head_epochs: int, recipe: Recipe,
             device: str, progress: bool) -> _Comparison:
        """The comparison of the analysis in ``results`` (its manifest's ``parameters``): an unpruned zoo model's
        convention points."""
        base, normalize, classes = parameters["model"], parameters["normalize"], parameters["num_classes"]
        if parameters["convention"] == "explicit" or PruningSpec.names_a_pruning(base):
            raise SepgraphError("pruning needs an analysis of an unpruned zoo model's convention points "
                                f"(got model {base!r}, convention {parameters['convention']!r})")
        train_set = as_dataset(train_data)
        if test_data is None:
            test_data = replace(train_data, spec=parameters["data"]) if isinstance(train_data, DataSource) \
                else parameters["data"]
        test_set = as_dataset(test_data)
        # without weights: the random model the analysis measured
        original = build_model(base, classes, parameters["weights"], parameters["seed"]).model
        settings = {"model": base, "weights_sha256": parameters["weights_sha256"], "train_data": train_set.spec,
                    "train_sha256": train_set.sha256, "test_data": test_set.spec, "test_sha256": test_set.sha256,
                    "normalize": normalize, "init": init, "head_epochs": head_epochs, "recipe": asdict(recipe)}
        if not parameters["weights"]:
            settings["analysis_seed"] = parameters["seed"]
        return cls(results, base, classes, input_size(base), original, train_set, test_set, recipe, settings, device,
                   progress)

    def train_all(self, found: list[Candidate]) -> list[PruningRow]:
        """Train each distinct pruning once and give every candidate its row, the control first."""
        accuracy = evaluate(self.original, self.test_set, normalize=self.settings["normalize"], device=self.device,
                            progress=self.progress).accuracy
        params, flops = parameter_count(self.original), flop_count(self.original, self.size)
        trained: dict[str | None, dict] = {}
        table = []
        for candidate in found:
            pruning = candidate.spec.pruning
            if pruning not in trained:
                trained[pruning] = self._trained_row(candidate.spec)
            outcome = trained[pruning]
            table.append(dict(
                model=self.base, curve=candidate.curve, kind=candidate.kind, rule=candidate.rule,
                parameter=candidate.parameter, cut=candidate.cut, pruned_model=str(candidate.spec),
                points_removed=candidate.points_removed, units_removed=candidate.units_removed,
                init=self.settings["init"], accuracy_original=accuracy, **outcome,
                head_epochs=self.settings["head_epochs"], finetune_epochs=self.recipe.epochs, seed=self.recipe.seed,
                params_original=params, flops_original=flops,
                params_saved_pct=100.0 * (1 - outcome["params_pruned"] / params),
                flops_saved_pct=100.0 * (1 - outcome["flops_pruned"] / flops)))
        control = trained[None]["accuracy_finetuned"]
        return [PruningRow(**row, accuracy_vs_control=row["accuracy_finetuned"] - control) for row in table]

    def _trained_row(self, spec: PruningSpec) -> dict:
        """Build (seeded), refit the head, fine-tune and measure one pruned model, or reuse a finished run.

        ``pruning/<unpruned|remove|truncate>-<key>/`` holds ``settings.json``, the training runs (``head/``,
        ``finetune/``, resumable), ``model.pt`` and, once complete, ``row.json``.
        """
        row_settings = {**self.settings, "pruning": spec.pruning}
        key = hashlib.sha256(json.dumps(row_settings, sort_keys=True).encode()).hexdigest()[:12]
        out = self.results / "pruning" / f"{spec.operation or 'unpruned'}-{key}"
        if (out / "row.json").is_file():
            return json.loads((out / "row.json").read_text())
        if out.exists() and not (out / "settings.json").is_file():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_text(out / "settings.json", json.dumps(row_settings, indent=1) + "\n")
        model = self._pruned(spec)
        head_refit, finetuned, seconds = self._train(model, out)
        save_weights(model, out / "model.pt")
        row = {"accuracy_head_refit": head_refit, "accuracy_finetuned": finetuned,
               "params_pruned": parameter_count(model), "flops_pruned": flop_count(model, self.size),
               "train_seconds": seconds, "weights": str((out / "model.pt").relative_to(self.results))}
        atomic_text(out / "row.json", json.dumps(row, indent=1) + "\n")
        return row

    def _pruned(self, spec: PruningSpec) -> nn.Module:
        """The original model pruned as ``spec`` says (a copy), re-initialised for ``--init scratch``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.recipe.seed)  # a new head (truncation) or a scratch start: the same draws each time
            model = apply_pruning(self.original, spec, self.classes, self.size) if spec.operation \
                else copy.deepcopy(self.original)
            if self.settings["init"] == "scratch":
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


def _head(model: nn.Module) -> nn.Module:
    for name in ("linear", "classifier", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return getattr(model, name)
    raise SepgraphError(f"cannot find the linear head of {type(model).__name__}")


