"""What each removable unit weighs (SPEC 19): the parameters and FLOPs removing it alone saves, and the unit scores
``magnitude`` (read off the weights) and ``ablation`` (measured on the selection half), from the model itself and
the copies of it without each unit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..data.protocol import LabelledImages
from ..errors import SepgraphError
from ..models.capture import point_shapes
from ..models.points import UnitRun, layer_points, unit_runs
from ..models.protocol import RemovableUnit
from ..models.pruned import remove
from ..models.residual import refused_blocks
from ..models.size import flop_count, parameter_count
from ..training.recalibration import recalibrated_accuracy
from .criterion import UnitSizes, no_run_reaches, unreachable


def without_each(model: nn.Module, units: Sequence[RemovableUnit], input_size: tuple[int, int, int]
                 ) -> list[nn.Module]:
    """A copy of ``model`` without each unit alone, in the order of ``units`` (images of ``input_size``)."""
    return [remove(model, [unit.name], input_size) for unit in units]


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


def ablation_scores(model: nn.Module, without: Sequence[nn.Module], selection: LabelledImages,
                    train_set: LabelledImages, *, normalize: str, seed: int, device: str = "auto") -> list[float]:
    """Each unit's ``ablation`` score (SPEC 19): the accuracy (percent) the model loses on the ``selection`` half when
    that unit alone is removed, both sides batch-norm recalibrated as the proxy is (the same training images,
    drawn with ``seed``); the smaller, the earlier it goes. A model without batch norm is measured as it is."""
    def accuracy(network: nn.Module) -> float:
        return recalibrated_accuracy(network, train_set, seed, selection, normalize=normalize, device=device)

    whole = accuracy(model)
    return [whole - accuracy(other) for other in without]


def check_reachable(model: nn.Module, units: Sequence[RemovableUnit], input_size: tuple[int, int, int],
                    targets: Sequence[tuple[str, float]], curves: Sequence[str] = (), convention: str = "paper"
                    ) -> None:
    """Refuse a target (``target-params``/``target-flops``, percent) that removing every unit cannot reach, or that
    ``block_influence`` (its scored units) or ``angular`` (its longest-saving run) cannot reach when ``curves`` name
    them, before an analysis that may take hours (SPEC 19, 22)."""
    if not targets:
        return
    if not units:
        raise no_removable_block(model, input_size)
    sizes = unit_sizes(model, without_each(model, units, input_size), input_size)
    runs = same_shape_runs(model, units, input_size, convention) if {"block_influence", "angular"} & set(curves) \
        else []
    index = {unit.name: k for k, unit in enumerate(units)}
    for rule, target in targets:
        savings, total = sizes.of(rule)
        if sum(savings) * 100 < target * total:
            raise unreachable(rule, target, 100 * sum(savings) / total, f"all {len(units)} removable units")
        scored = sum(savings[index[run.units[0]]] for run in runs if len(run.units) == 1)
        if "block_influence" in curves and scored * 100 < target * total:
            raise SepgraphError(
                f"{rule.replace('-', '_')} {target:g}: criterion 'block_influence' scores only units whose input and "
                f"output points have one shape, and removing all {sum(len(r.units) == 1 for r in runs)} of them "
                f"saves {100 * scored / total:.2f}%; choose a smaller target, or cut by M, magnitude or ablation "
                "instead",
                arguments=("curves", rule.replace("-", "_")))
        longest = max((sum(savings[index[name]] for name in run.units) for run in runs), default=0)
        if "angular" in curves and longest * 100 < target * total:
            raise no_run_reaches(rule, target, 100 * longest / total)


def no_removable_block(model: nn.Module, input_size: tuple[int, int, int]) -> SepgraphError:
    """The one line for a model without a unit to remove, naming why each residual block was refused (SPEC 25)."""
    refused = refused_blocks(model, torch.zeros(1, *input_size))
    why = "; ".join(f"{name}: {reason}" for name, reason in refused.items()) or \
        "no module adds its own input to its output"
    return SepgraphError(f"{type(model).__name__} has no removable block ({why}); only residual blocks with an "
                         "identity shortcut that keep their input's shape can be removed; choose a model that has "
                         "such blocks")


def same_shape_runs(model: nn.Module, units: Sequence[RemovableUnit], input_size: tuple[int, int, int],
                    convention: str) -> list[UnitRun]:
    """The model's runs of consecutive same-shape units under ``convention`` (SPEC 22), its point shapes read off one
    forward pass of a zero image of ``input_size``."""
    example = torch.zeros(1, *input_size)
    points = layer_points(model, convention, example_input=example)
    shapes = point_shapes(model, points, example)
    return unit_runs(units, {point.name: shape for point, shape in zip(points, shapes, strict=True)})
