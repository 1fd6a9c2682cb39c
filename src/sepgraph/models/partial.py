"""A block cut short by truncation (SPEC 9)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn


class PartialBlock(nn.Sequential):
    """The first units of a block, under the block's own module names (so weights keep their keys)."""

    def __init__(self, block: nn.Module, names: Sequence[str]):
        super().__init__(OrderedDict((name, getattr(block, name)) for name in names))
