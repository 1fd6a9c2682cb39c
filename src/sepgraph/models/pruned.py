"""Pruned models by name (SPEC 9): the ``MODEL+truncate=POINT`` and ``MODEL+remove=UNIT,UNIT`` grammar, parsed
once (:class:`PruningSpec`), and the two operations it names.

Each zoo model performs its own surgery (:class:`~sepgraph.models.protocol.ZooModel`), so nothing here
dispatches on model classes. Both operations work on a copy and keep every surviving weight, so a pruned
model can be rebuilt, loaded and analysed like any other: ``resnet56+truncate=layer3.6.unit2``,
``resnet56+remove=layer1.3,layer2.5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import SepgraphError
from .capture import point_shapes
from .points import CONVENTIONS, layer_points, removable_units
from .protocol import LayerPoint, ZooModel
from .residual import refused_blocks, truncated_copy
from .surgery import without_modules

OPERATIONS = ("truncate", "remove")


@dataclass(frozen=True)
class PruningSpec:
    """A model name and the pruning that follows its ``+`` (SPEC 9).

    Attributes:
        base: the unpruned model's name, e.g. ``resnet56``.
        operation: ``truncate``, ``remove``, or None for the unpruned model.
        targets: the point kept last (``truncate``, one) or the units removed (``remove``), as written.
    """

    base: str
    operation: str | None = None
    targets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, name: str) -> PruningSpec:
        """``BASE``, ``BASE+truncate=POINT`` or ``BASE+remove=UNIT,UNIT``."""
        base, plus, pruning = name.partition("+")
        return cls.of(base, pruning) if plus else cls(base)

    @classmethod
    def of(cls, base: str, pruning: str) -> PruningSpec:
        """``base`` pruned by ``pruning``, the text after the ``+`` (``truncate=POINT`` or ``remove=UNIT,UNIT``)."""
        operation, _, argument = pruning.partition("=")
        targets = tuple(target for target in argument.split(",") if target)
        if operation not in OPERATIONS or not targets or (operation == "truncate" and len(targets) > 1):
            raise SepgraphError(f"unknown pruning {pruning!r}; write MODEL+truncate=POINT or MODEL+remove=UNIT,UNIT")
        return cls(base, operation, targets)

    @staticmethod
    def names_a_pruning(name: str) -> bool:
        """Whether a model name carries a pruning (a ``+``), well written or not."""
        return "+" in name

    @property
    def pruning(self) -> str | None:
        """The text after the ``+``; None for the unpruned model."""
        return None if self.operation is None else f"{self.operation}={','.join(self.targets)}"

    def __str__(self) -> str:
        return self.base if self.operation is None else f"{self.base}+{self.pruning}"


def apply_pruning(model: nn.Module, spec: PruningSpec, num_classes: int, input_size: tuple[int, int, int]
                  ) -> nn.Module:
    """``model`` (built as ``spec.base``) pruned as ``spec`` says; the unpruned spec returns it as it is."""
    if spec.operation == "truncate":
        return truncate(model, spec.targets[0], num_classes, input_size)
    if spec.operation == "remove":
        return remove(model, spec.targets, input_size)
    return model


def find_point(model: nn.Module, name: str, example: torch.Tensor) -> LayerPoint:
    """The layer point called ``name`` under any convention (a model outside the zoo: its discovered points)."""
    for convention in CONVENTIONS if isinstance(model, ZooModel) else ("paper",):
        for point in layer_points(model, convention, example_input=example):
            if point.name == name:
                return point
    known = [p.name for p in layer_points(model, "paper", example_input=example)]
    raise SepgraphError(f"unknown layer point {name!r}; the model's paper points are {', '.join(known)}")


def truncate(model: nn.Module, point: str, num_classes: int, input_size: tuple[int, int, int] = (3, 32, 32)
             ) -> nn.Module:
    """Keep the network up to and including ``point``, then global average pooling and a new
    linear head on that point's channels (SPEC 9). The model itself is not changed."""
    device = next(model.parameters()).device
    example = torch.zeros(1, *input_size, device=device)
    cut = find_point(model, point, example)
    channels = point_shapes(model, [cut], example)[0][0]
    # the head's weights are drawn on the CPU (the same for every device), then moved beside the model
    head = nn.Linear(channels, num_classes).to(device)
    return model.truncated(cut, head) if isinstance(model, ZooModel) else truncated_copy(model, cut, head, example)


def remove(model: nn.Module, units: Sequence[str], input_size: tuple[int, int, int]) -> nn.Module:
    """Delete removable units inside the network, keeping the original head and every other weight (SPEC 9); a
    model outside the zoo loses residual blocks (SPEC 25), each replaced by ``nn.Identity`` under its own name."""
    example = torch.zeros(1, *input_size, device=next(model.parameters()).device)
    allowed = [unit.name for unit in removable_units(model, "paper", example)]
    unknown = [u for u in units if u not in allowed]
    if unknown:
        refused = "" if isinstance(model, ZooModel) else "".join(
            f"; {name} is not: {reason}" for name, reason in refused_blocks(model, example).items() if name in unknown)
        raise SepgraphError(f"cannot remove {', '.join(unknown)}: removable units are {', '.join(allowed) or 'none'}"
                            f"{refused}")
    units = list(dict.fromkeys(units))
    return model.without(units) if isinstance(model, ZooModel) else without_modules(model, units)


def reinitialise(model: nn.Module) -> nn.Module:
    """Fresh random weights for every layer (``--init scratch``); the structure stays."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model
