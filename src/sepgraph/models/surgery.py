"""What the zoo's own surgery shares (SPEC 9): a block cut short, and a copy without some modules."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from .protocol import LayerPoint, RemovableUnit
from .size import parameter_count


class PartialBlock(nn.Sequential):
    """The first units of a block, under the block's own module names (so weights keep their keys)."""

    def __init__(self, block: nn.Module, names: Sequence[str]):
        super().__init__(OrderedDict((name, getattr(block, name)) for name in names))


def without_modules(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """A deep copy of ``model`` with the modules at the qualified ``names`` replaced by identities.

    Every other module keeps its place, so surviving weights keep their values and state-dict keys.
    """
    pruned = copy.deepcopy(model)
    for name in names:
        parent, _, child = name.rpartition(".")
        setattr(pruned.get_submodule(parent), child, nn.Identity())
    return pruned


def block_units(points: Sequence[LayerPoint], blocks: Sequence[tuple[str, nn.Module, bool]]) -> list[RemovableUnit]:
    """The removable blocks of a chain of blocks with their input and output points (SPEC 8, 9).

    A block's output point is the last layer point inside it; its input point is the output point
    of the block before it, or for the first block the point before it (the stem), if any.

    Args:
        points: the model's layer points under one convention, in execution order.
        blocks: (qualified module name, module, removable) of every block present, in execution order.
    """
    names = [name for name, _, _ in blocks]
    output_of: dict[str, str] = {}
    stem = None
    for point in points:
        owner = next((name for name in names if point.module == name or point.module.startswith(name + ".")), None)
        if owner is not None:
            output_of[owner] = point.name
        elif not output_of:
            stem = point.name
    units, previous = [], stem
    for name, block, removable in blocks:
        if removable:
            units.append(RemovableUnit(name, previous, output_of.get(name), parameter_count(block)))
        previous = output_of.get(name)
    return units
