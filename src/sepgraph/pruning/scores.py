"""What each removable unit weighs (SPEC 19): the parameters and FLOPs removing it alone saves, and the unit scores
``magnitude`` (read off the weights) and ``ablation`` (measured on the selection half), from the model itself and
the copies of it without each unit."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import nn

from ..data.dataset import ImageDataset
from ..errors import SepgraphError
from ..models.protocol import RemovableUnit
from ..models.pruned import remove
from ..models.size import flop_count, parameter_count
from ..training.evaluation import evaluate
from ..training.recalibration import proxy_images, recalibrate_batch_norm
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


def ablation_scores(model: nn.Module, without: Sequence[nn.Module], selection: ImageDataset, train_set: ImageDataset,
                    *, normalize: str, seed: int, device: str = "auto") -> list[float]:
    """Each unit's ``ablation`` score (SPEC 19): the accuracy (percent) the model loses on the ``selection`` half when
    that unit alone is removed, both sides batch-norm recalibrated as the proxy is (the same training images,
    drawn with ``seed``); the smaller, the earlier it goes. A model without batch norm is measured as it is."""
    images = proxy_images(train_set, seed)

    def accuracy(network: nn.Module) -> float:
        recalibrated = recalibrate_batch_norm(copy.deepcopy(network), train_set, images, normalize=normalize,
                                              device=device)
        return evaluate(recalibrated, selection, normalize=normalize, device=device, progress=False).accuracy

    whole = accuracy(model)
    return [whole - accuracy(other) for other in without]


def check_reachable(model: nn.Module, units: Sequence[RemovableUnit], input_size: tuple[int, int, int],
                    targets: Sequence[tuple[str, float]]) -> None:
    """Refuse a target (``target-params``/``target-flops``, percent) that removing every unit cannot reach, before
    an analysis that may take hours (SPEC 19)."""
    if not targets:
        return
    sizes = unit_sizes(model, without_each(model, units), input_size)
    for rule, target in targets:
        savings, total = sizes.of(rule)
        if sum(savings) * 100 < target * total:
            raise SepgraphError(f"{rule.replace('-', '_')} {target:g}: the most a cut can reach is "
                                f"{100 * sum(savings) / total:.2f}% (removing all {len(units)} removable units); "
                                "choose a smaller target", arguments=(rule.replace("-", "_"),))
