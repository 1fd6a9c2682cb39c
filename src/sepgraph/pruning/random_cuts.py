"""Random cuts matched in size to a criterion's cut (SPEC 19): the same count of units from each size class, so
every random cut saves exactly the parameters and FLOPs the matched cut saves."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence

import numpy as np

from ..models.protocol import RemovableUnit
from .criterion import UnitSizes


def size_classes(units: Sequence[RemovableUnit], sizes: UnitSizes) -> dict[tuple[int, int], list[str]]:
    """The units by what removing each saves, (parameters, FLOPs), in network order within a class (the blocks of
    one stage of a zoo ResNet form one class)."""
    classes: dict[tuple[int, int], list[str]] = {}
    for unit, params, flops in zip(units, sizes.params, sizes.flops, strict=True):
        classes.setdefault((params, flops), []).append(unit.name)
    return classes


def matched_cuts(units: Sequence[RemovableUnit], sizes: UnitSizes, cut: Sequence[str], count: int, seed: int
                 ) -> list[tuple[str, ...]]:
    """``count`` distinct random cuts with as many units of each size class as ``cut`` has, each in network order;
    where the classes allow ``count`` or fewer such cuts, every one of them once (in lexicographic order of the
    classes' combinations). Seeded by ``seed`` and the matched cut's units, so a rerun draws the same cuts.

    Args:
        units: the model's removable units in network order.
        cut: the names of the units the matched criterion removes.
    """
    network = [unit.name for unit in units]
    classes = [(members, sum(name in cut for name in members)) for members in size_classes(units, sizes).values()]
    classes = [(members, taken) for members, taken in classes if taken]
    possible = math.prod(math.comb(len(members), taken) for members, taken in classes)
    if possible <= count:
        picks = itertools.product(*(itertools.combinations(members, taken) for members, taken in classes))
        return [_in_network_order(itertools.chain(*pick), network) for pick in picks]
    digest = hashlib.sha256(",".join(sorted(cut)).encode()).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
    drawn: list[tuple[str, ...]] = []
    while len(drawn) < count:
        pick = _in_network_order((name for members, taken in classes
                                  for name in rng.choice(members, taken, replace=False)), network)
        if pick not in drawn:
            drawn.append(pick)
    return drawn


def _in_network_order(names, network: list[str]) -> tuple[str, ...]:
    chosen = set(names)
    return tuple(name for name in network if name in chosen)
