"""What each removable unit weighs (SPEC 19): the parameters and FLOPs removing it alone saves, and the ``magnitude``
unit score, both read off the model itself and the copies of it without each unit."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..models.protocol import RemovableUnit
from ..models.pruned import remove
from ..models.size import flop_count, parameter_count
from .criterion import UnitSizes


def without_each(model: nn.Module, units: Sequence[RemovableUnit]) -> list[nn.Module]:
    """A copy of ``model`` without each unit alone, in the order of ``units``."""
    return [remove(model, [unit.name]) for unit in units]


def unit_sizes(model: nn.Module, without: Sequence[nn.Module], input_size: tuple[int, int, int]) -> UnitSizes:
    """Parameters and FLOPs (one image of ``input_size``) saved by removing each unit alone, counted on the model
    ``without`` it (:func:`without_each`), and the whole model's."""
    params, flops = parameter_count(model), flop_count(model, input_size)
    return UnitSizes(tuple(params - parameter_count(other) for other in without),
                     tuple(flops - flop_count(other, input_size) for other in without), params, flops)


def magnitude_scores(model: nn.Module, without: Sequence[nn.Module]) -> list[float | None]:
    """Each unit's ``magnitude``: the mean absolute value (L1 norm per parameter) of its weight tensors, the
    convolution and linear kernels (tensors of two or more dimensions) that the model ``without`` it lacks;
    float64; None for a unit with no kernel (never removed by it)."""
    scores: list[float | None] = []
    for other in without:
        kept = set(dict(other.named_parameters()))
        kernels = [tensor for name, tensor in model.named_parameters() if name not in kept and tensor.dim() >= 2]
        count = sum(tensor.numel() for tensor in kernels)
        scores.append(sum(float(tensor.detach().double().abs().sum()) for tensor in kernels) / count if count else None)
    return scores
