"""The options of a pruning comparison as one record (SPEC 8, 9, 16, 19), checked once where it is made and passed
whole from the command line to the rows, as :class:`~sepgraph.training.recipe.Recipe` is for training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..data.samples import check_fraction
from ..errors import SepgraphError
from .criterion import PAPER_CURVES, RANDOM, TARGET_RULES, TRUNCATION_RULES, check_criteria, check_rule

Rule = tuple[str, float | None]
"""A rule and its parameter: Criterion I's tau (None: the rule's default), or a target rule's percentage."""


@dataclass(frozen=True)
class PruningOptions:
    """What a pruning comparison cuts and how every row is treated.

    Attributes:
        rules: Criterion I's rules, each (name, tau); none given: ``plateau``, unless a target is.
        curves: criteria (keys of :data:`~sepgraph.pruning.criterion.CRITERIA`): one cut each per rule.
        target_params, target_flops: percentages of the parameters (FLOPs of one image) to save: one
            ``target-params`` (``target-flops``) rule each (SPEC 19).
        equal_units: add ``delta`` rows at which every curve removes as many units as the first that removes any.
        reference_cuts: published or hand-picked prunings, ``MODEL+remove=...`` or ``remove=...``.
        init: ``finetune`` (from the surviving weights) or ``scratch``.
        head_epochs: head-only epochs (batch-norm statistics frozen) before fine-tuning.
        random_seeds: random cuts per matched cut, where ``random`` is among the curves.
        proxy_only: each cut's proxy accuracy (batch-norm recalibration alone) and size, nothing trained.
        seeds: every row trained this many times, with the recipe's seed, +1, ... (SPEC 20).
        selection_fraction, split_seed: the share of each class of the evaluation images in the selection half,
            and the split's seed (SPEC 21).
    """

    rules: tuple[Rule, ...] = ()
    curves: tuple[str, ...] = PAPER_CURVES
    target_params: tuple[float, ...] = ()
    target_flops: tuple[float, ...] = ()
    equal_units: bool = False
    reference_cuts: tuple[str, ...] = ()
    init: str = "finetune"
    head_epochs: int = 1
    random_seeds: int = 3
    proxy_only: bool = False
    selection_fraction: float = 0.5
    split_seed: int = 0
    seeds: int = 1

    def __post_init__(self) -> None:
        for name in ("rules", "curves", "target_params", "target_flops", "reference_cuts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "rules", tuple((item, None) if isinstance(item, str) else tuple(item)
                                                for item in self.rules))
        for rule, parameter in self.all_rules:
            check_rule(rule, parameter)
        check_criteria(self.curves, [rule for rule, _ in self.all_rules])
        if self.init not in ("finetune", "scratch"):
            raise SepgraphError(f"init must be finetune or scratch, got {self.init!r}", arguments=("init",))
        if self.head_epochs < 0:
            raise SepgraphError(f"head_epochs must be 0 or more, got {self.head_epochs}", arguments=("head_epochs",))
        check_fraction(self.selection_fraction)
        if self.seeds < 1:
            raise SepgraphError(f"seeds must be at least 1, got {self.seeds}: every row is trained that many times",
                                arguments=("seeds",))
        if self.random_seeds < 1:
            raise SepgraphError(f"random_seeds must be at least 1, got {self.random_seeds}: the random cuts drawn "
                                "for each cut they match", arguments=("random_seeds",))
        if self.proxy_only and not self.rules and not self.target_params and not self.target_flops:
            raise SepgraphError("proxy_only measures removal cuts and the default rule, plateau, truncates; give "
                                "target_params, target_flops or the delta rule",
                                arguments=("proxy_only", "target_params", "target_flops"))
        truncating = [rule for rule, _ in self.all_rules if rule in TRUNCATION_RULES]
        if self.proxy_only and truncating:
            raise SepgraphError(f"proxy_only: rule {truncating[0]} truncates, and a truncated model needs a new head "
                                "trained before it can be measured; use target_params, target_flops or the delta "
                                "rule", arguments=("proxy_only", "rule", "target_params", "target_flops"))

    @property
    def all_rules(self) -> list[Rule]:
        """Every rule to apply: the rules given (``plateau`` when neither they nor a target are), then one target
        rule per target."""
        targets = [(TARGET_RULES[0], value) for value in self.target_params] + \
                  [(TARGET_RULES[1], value) for value in self.target_flops]
        given = list(self.rules) or ([] if targets else [("plateau", None)])
        return given + targets

    @property
    def draws_random(self) -> bool:
        """Whether random cuts are drawn to match the others."""
        return RANDOM in self.curves


def rules_with_tau(rules: Sequence[Rule], tau: float | None) -> list[Rule]:
    """``rules`` with ``tau`` given to those written without a parameter (``--tau``)."""
    if tau is not None and not math.isfinite(tau):
        raise SepgraphError(f"tau must be a finite number, got {tau}", arguments=("tau",))
    return [(rule, tau if parameter is None else parameter) for rule, parameter in rules]
