"""Layer pruning (SPEC 9): truncate after a layer point, or remove units inside the network.

The generic part: spec strings, finding points, FLOPs. Each zoo model describes its own surgery
(``removable_units``, ``without``, ``truncated``), so pruning never dispatches on model classes.
Both operations work on a copy and keep every surviving weight. A pruned model is named by a spec
string the registry understands, so it can be rebuilt, loaded and analysed like any other:
``resnet56+truncate=layer3.6.unit2``, ``resnet56+remove=layer1.3,layer2.5``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .devices import evaluation_mode
from .errors import SepgraphError
from .features import point_shapes
from .points import CONVENTIONS, LayerPoint, layer_points, removable_units


def find_point(model: nn.Module, name: str) -> LayerPoint:
    """The layer point called ``name`` under any convention."""
    for convention in CONVENTIONS:
        for point in layer_points(model, convention):
            if point.name == name:
                return point
    known = [p.name for p in layer_points(model, "paper")]
    raise SepgraphError(f"unknown layer point {name!r}; the model's paper points are {', '.join(known)}")


def truncate(model: nn.Module, point: str, num_classes: int, input_size: tuple[int, int, int] = (3, 32, 32)
             ) -> nn.Module:
    """Keep the network up to and including ``point``, then global average pooling and a new
    linear head on that point's channels (SPEC 9). The model itself is not changed."""
    if not hasattr(model, "truncated"):
        raise SepgraphError(f"pruning supports sepgraph's zoo models, not {type(model).__name__}")
    cut = find_point(model, point)
    channels = point_shapes(model, [cut], torch.zeros(1, *input_size))[0][0]
    device = next(model.parameters()).device
    # the head's weights are drawn on the CPU (the same for every device), then moved beside the model
    return model.truncated(cut, nn.Linear(channels, num_classes).to(device))


def remove(model: nn.Module, units: Sequence[str]) -> nn.Module:
    """Delete removable units inside the network, keeping the original head and every other weight (SPEC 9)."""
    allowed = [unit.name for unit in removable_units(model)]
    unknown = [u for u in units if u not in allowed]
    if unknown:
        raise SepgraphError(f"cannot remove {', '.join(unknown)}: removable units are {', '.join(allowed) or 'none'}")
    return model.without(list(dict.fromkeys(units)))


def reinitialise(model: nn.Module) -> nn.Module:
    """Fresh random weights for every layer (``--init scratch``); the structure stays."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def flop_count(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """FLOPs of one forward pass of one image, from ``torch.utils.flop_counter``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), evaluation_mode(model):
        model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    return int(counter.get_total_flops())


def apply_spec(model: nn.Module, spec: str, num_classes: int, input_size: tuple[int, int, int]) -> nn.Module:
    """Apply ``truncate=POINT`` or ``remove=UNIT,UNIT`` (the part of a model name after '+')."""
    operation, _, argument = spec.partition("=")
    if operation == "truncate" and argument:
        return truncate(model, argument, num_classes, input_size)
    if operation == "remove" and argument:
        return remove(model, [unit for unit in argument.split(",") if unit])
    raise SepgraphError(f"unknown pruning {spec!r}; write MODEL+truncate=POINT or MODEL+remove=UNIT,UNIT")
