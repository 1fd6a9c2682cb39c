"""What a zoo model says about itself (SPEC 1, 8, 9): its layer points, the units it can lose, and its own
surgery. :class:`ZooModel` is the one interface pruning and the analysis check (``isinstance``), never a
model class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn


@dataclass(frozen=True)
class LayerPoint:
    """One place where features are taken.

    Attributes:
        name: stable, human-readable label, e.g. ``layer2.3.unit1``.
        module: qualified name of the module whose output is the feature.
        call: which call of that module in one forward pass (0 = the first).
    """

    name: str
    module: str
    call: int = 0


@dataclass(frozen=True)
class RemovableUnit:
    """A unit the network can lose and still build with every other weight kept (SPEC 8, 9).

    Attributes:
        name: the unit as pruning names it, e.g. ``layer1.3`` (a residual block) or ``conv6`` (a VGG unit).
        input_point: the layer point at the unit's input under one convention (the previous block's or
            unit's output, or the stem); None where that convention has no such point.
        output_point: the layer point at the unit's output; None likewise.
        parameters: how many parameters the unit holds, i.e. what removing it saves.
    """

    name: str
    input_point: str | None
    output_point: str | None
    parameters: int


@runtime_checkable
class ZooModel(Protocol):
    """A model that lists its layer points and removable units and performs its own surgery (SPEC 1, 9).

    Both surgeries return a new model and leave this one as it is; surviving modules keep their weights and
    state-dict keys.
    """

    def layer_points(self, convention: str) -> list[LayerPoint]:
        """The points of a convention of SPEC 1, in execution order."""

    def removable_units(self, convention: str) -> list[RemovableUnit]:
        """The units ``without`` accepts, with their input and output points under ``convention``."""

    def without(self, units: Sequence[str]) -> nn.Module:
        """A copy without the named removable units."""

    def truncated(self, point: LayerPoint, head: nn.Linear) -> nn.Module:
        """A copy up to ``point``, then global average pooling and ``head``."""
