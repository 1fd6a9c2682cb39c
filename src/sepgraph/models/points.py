"""Layer points: where features are taken, under the conventions of SPEC 1, and the removable
units between them (SPEC 8, 9).

A layer point names one module output. Zoo models list their own points
(``model.layer_points(convention)``); any other model (torchvision, timm) gets
``paper`` points discovered from one traced forward pass: every activation
module, in the order it runs (a module that runs twice gives two points, named
``name`` and ``name:1`` like torchvision's graph node names ``relu`` and ``relu_1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import SepgraphError
from .capture import hooked_pass
from .protocol import LayerPoint, RemovableUnit, ZooModel
from .residual import residual_units

CONVENTIONS = ("paper", "lu2022", "blocks")

ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.PReLU,
)
"""Module types that close a Conv-BN-activation unit (gates such as Sigmoid are excluded)."""


def removable_units(model: nn.Module, convention: str = "paper", example_input: torch.Tensor | None = None
                    ) -> list[RemovableUnit]:
    """The units ``remove`` accepts, with their points under ``convention`` (SPEC 8, 9): a zoo model's own, or
    any other model's residual blocks with an identity shortcut (SPEC 25; found by running ``example_input``, its
    ``paper`` points discovered the same way)."""
    check_convention(convention)
    if isinstance(model, ZooModel):
        return model.removable_units(convention)
    if convention != "paper":
        raise SepgraphError(f"the removable blocks of {type(model).__name__} are found at its discovered points: use "
                            f"the 'paper' convention, not {convention!r}")
    if example_input is None:
        raise SepgraphError(f"finding the removable blocks of {type(model).__name__} runs an example input; give "
                            "example_input, a batch the model accepts")
    return residual_units(model, discover_points(model, example_input), example_input)


@dataclass(frozen=True)
class UnitRun:
    """Consecutive removable units whose input and output points have one shape (SPEC 22): what the angular
    distance compares (the representation entering the run with the one leaving it) and may remove.

    Attributes:
        units: the units, in network order.
        input_point, output_point: the first unit's input point and the last unit's output point.
    """

    units: tuple[str, ...]
    input_point: str
    output_point: str


def unit_runs(units: Sequence[RemovableUnit], shapes: Mapping[str, tuple[int, ...]]) -> list[UnitRun]:
    """Every run of consecutive units (SPEC 22), by first unit then length: each unit's input and output points are
    layer points (``shapes``: their per-sample shapes) of the same shape, and each unit's input point is the previous
    unit's output point; so a run never crosses a unit or point that changes the shape (a stage boundary)."""
    def same_shape(unit: RemovableUnit) -> bool:
        return (unit.input_point in shapes and unit.output_point in shapes
                and shapes[unit.input_point] == shapes[unit.output_point])

    runs = []
    for first, unit in enumerate(units):
        last = first
        while last < len(units) and same_shape(units[last]) and (
                last == first or units[last].input_point == units[last - 1].output_point):
            runs.append(UnitRun(tuple(u.name for u in units[first:last + 1]), unit.input_point,
                                units[last].output_point))
            last += 1
    return runs


def check_convention(convention: str) -> None:
    """Raise if ``convention`` is not one of SPEC 1's names."""
    if convention not in CONVENTIONS:
        raise SepgraphError(
            f"unknown layer-point convention {convention!r}; choose one of {', '.join(CONVENTIONS)}"
        )


def layer_points(
    model: nn.Module,
    convention: str = "paper",
    modules: Sequence[str] | None = None,
    example_input: torch.Tensor | None = None,
) -> list[LayerPoint]:
    """The ordered layer points of ``model`` (SPEC 1).

    Args:
        model: a zoo model (it lists its own points) or any ``nn.Module``.
        convention: ``paper``, ``lu2022`` or ``blocks``.
        modules: explicit module names (``name`` or ``name:k`` for the k-th call);
            overrides ``convention``.
        example_input: a batch the model accepts, shape (B, C, H, W); needed to
            discover points of models outside the zoo.
    """
    if modules is not None:
        return explicit_points(model, modules)
    check_convention(convention)
    if isinstance(model, ZooModel):
        return model.layer_points(convention)
    if convention != "paper":
        raise SepgraphError(
            f"convention {convention!r} is defined only for sepgraph's zoo models; "
            "use 'paper' (discovered activations) or pass an explicit list of module names"
        )
    if example_input is None:
        raise SepgraphError("discovering layer points of a model outside the zoo needs an example input")
    return discover_points(model, example_input)


def explicit_points(model: nn.Module, modules: Sequence[str]) -> list[LayerPoint]:
    """Points from user-given module names, ``name`` or ``name:k`` (k-th call)."""
    if not modules:
        raise SepgraphError("the list of layer points is empty; name at least one module")
    known = dict(model.named_modules())
    points = []
    for spec in modules:
        name, _, call = spec.partition(":")
        if name not in known or name == "":
            close = [m for m in known if m and name and name.split(".")[-1] in m][:5]
            hint = f"; similar names: {', '.join(close)}" if close else ""
            raise SepgraphError(f"unknown layer {name!r}: the model has no module of that name{hint}")
        if call and not call.isdigit():
            raise SepgraphError(f"bad layer point {spec!r}: the part after ':' must be a call number")
        points.append(LayerPoint(name=spec, module=name, call=int(call or 0)))
    if len({p.name for p in points}) != len(points):
        raise SepgraphError("the list of layer points names the same point twice")
    return points


def discover_points(model: nn.Module, example_input: torch.Tensor) -> list[LayerPoint]:
    """``paper`` points of any model: activation-module calls in execution order.

    Runs one forward pass on ``example_input`` with hooks that only record the
    order of calls; module registration order is never used.
    """
    calls: list[str] = []
    counts: dict[str, int] = {}
    activations = {name for name, module in model.named_modules() if isinstance(module, ACTIVATIONS)}
    hooked_pass(model, example_input, after=lambda name, _inputs, _output: calls.append(name))
    points = []
    for name in (name for name in calls if name in activations):
        call = counts.get(name, 0)
        counts[name] = call + 1
        points.append(LayerPoint(name=name if call == 0 else f"{name}:{call}", module=name, call=call))
    if not points:
        raise SepgraphError(
            "no activation modules ran in the forward pass, so no 'paper' points were found; "
            "pass an explicit list of module names"
        )
    return points
