"""The paper's training recipe (SPEC 10) as one record that checks itself, and what a training run left behind."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import SepgraphError
from .precision import MEMORY_FORMATS, PRECISIONS

SCHEDULES = ("step", "cosine")
"""The learning rate's courses (SPEC 10)."""


@dataclass
class Recipe:
    """SPEC 10's hyper-parameters; ``augment`` is RandomCrop(size, padding 4) plus horizontal flip; ``precision``
    the arithmetic of a step (``fp32``, or ``bf16`` autocast where the device has it natively, see
    :mod:`sepgraph.training.precision`); ``memory_format`` the layout of its tensors (a name of
    :data:`~sepgraph.training.precision.MEMORY_FORMATS`); ``schedule`` the learning rate's course: ``step`` (the
    paper's: x ``gamma`` at each of ``milestones``) or ``cosine`` (from ``lr`` down to 0 over ``epochs``, for short
    fine-tuning budgets, SPEC 10)."""

    epochs: int = 150
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.005
    batch_size: int = 256
    milestones: Sequence[int] = (50, 100)
    gamma: float = 0.1
    augment: bool = True
    padding: int = 4
    seed: int = 0
    precision: str = "fp32"
    memory_format: str = "channels_last"
    schedule: str = "step"

    def __post_init__(self) -> None:
        problems = [name for name, fine in (
            ("epochs", self.epochs >= 0), ("lr", math.isfinite(self.lr) and self.lr > 0),
            ("momentum", 0 <= self.momentum < math.inf), ("weight_decay", 0 <= self.weight_decay < math.inf),
            ("batch_size", self.batch_size >= 1), ("gamma", 0 < self.gamma < math.inf), ("seed", self.seed >= 0),
            ("milestones", all(m >= 0 for m in self.milestones)), ("padding", self.padding >= 0)) if not fine]
        if self.precision not in PRECISIONS:
            raise SepgraphError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}",
                                arguments=("precision",))
        if self.schedule not in SCHEDULES:
            raise SepgraphError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}",
                                arguments=("schedule",))
        if self.memory_format not in MEMORY_FORMATS:
            raise SepgraphError(f"memory format {self.memory_format!r} is not one of {', '.join(MEMORY_FORMATS)}",
                                arguments=("memory_format",))
        if problems:
            values = ", ".join(f"{name} {getattr(self, name)!r}" if name != "milestones"
                               else f"milestones {list(self.milestones)}" for name in problems)
            raise SepgraphError(f"training recipe: {values} out of range (epochs and milestones 0 or more, lr and "
                                "gamma positive, momentum and weight decay 0 or more, batch size 1 or more, seed 0 "
                                "or more)", arguments=tuple(problems))

    def learning_rates(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The scheduler of :attr:`schedule`, stepped once per epoch: the rate of epoch e (0-based) is ``lr x gamma
        ^ (milestones passed)`` (``step``) or ``lr x (1 + cos(pi e / epochs)) / 2`` (``cosine``)."""
        if self.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.epochs, 1), eta_min=0.0)
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(self.milestones), self.gamma)

    def key(self) -> dict:
        """The recipe as settings that key a trained row (SPEC 9): every field, with ``schedule`` only where it is not
        the paper's ``step`` (rows trained before the field existed keep their keys)."""
        values = asdict(self)
        if self.schedule == "step":
            del values["schedule"]
        return values

    @property
    def layout(self) -> torch.memory_format:
        """The torch memory format of :attr:`memory_format`."""
        return MEMORY_FORMATS[self.memory_format]

    def check(self) -> None:
        """A recipe that trains: at least one epoch."""
        if self.epochs < 1:
            raise SepgraphError(f"epochs must be at least 1 to train, got {self.epochs}", arguments=("epochs",))


@dataclass
class TrainingRun:
    """What a training run left behind: one metrics dict per epoch and where the files are."""

    out: Path
    metrics: list[dict] = field(default_factory=list)
