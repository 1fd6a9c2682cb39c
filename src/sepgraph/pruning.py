"""Layer pruning of zoo models (SPEC 9): truncate after a layer point, or remove units inside.

Both work on a deep copy and keep the surviving modules (and so their weights and,
where the layout allows, their state-dict keys). A pruned model is named by a spec
string the registry understands, so it can be rebuilt, loaded and analysed like any
other: ``resnet56+truncate=layer3.6.unit2``, ``resnet56+remove=layer1.3,layer2.5``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import SepgraphError
from .features import point_shapes
from .models.cifar_resnet import CifarResNet
from .models.mobilenet import MobileNetV2
from .models.partial import PartialBlock
from .models.resnet import ResNet
from .models.vgg import VGG
from .points import CONVENTIONS, LayerPoint, layer_points


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
    cut = find_point(model, point)
    channels = point_shapes(model, [cut], torch.zeros(1, *input_size))[0][0]
    pruned = copy.deepcopy(model)
    if isinstance(pruned, (CifarResNet, ResNet)):
        _truncate_residual(pruned, cut)
        pruned.linear = nn.Linear(channels, num_classes)
    elif isinstance(pruned, VGG):
        index = int(cut.module.split(".")[1])
        pruned.features = nn.Sequential(*list(pruned.features)[: index + 1], nn.AdaptiveAvgPool2d(1))
        pruned.classifier = nn.Linear(channels, num_classes)
    elif isinstance(pruned, MobileNetV2):
        _truncate_mobilenet(pruned, cut)
        pruned.classifier = nn.Linear(channels, num_classes)
    else:
        raise SepgraphError(f"pruning supports sepgraph's zoo models, not {type(model).__name__}")
    return pruned


def _truncate_residual(model: nn.Module, cut: LayerPoint) -> None:
    stages = [name for name, _ in model.named_children() if name.startswith("layer")]
    if cut.module in ("relu", "conv1"):
        if cut.module == "conv1":
            model.bn1, model.relu = nn.Identity(), nn.Identity()
        kept_stage, blocks = None, []
    else:
        parts = cut.module.split(".")
        kept_stage, index = parts[0], int(parts[1])
        blocks = list(getattr(model, kept_stage))[: index + 1]
        if len(parts) == 3:
            unit = int(parts[2].removeprefix("relu"))
            names = [f"{kind}{u}" for u in range(1, unit + 1) for kind in ("conv", "bn", "relu")]
            if hasattr(blocks[-1], f"conv{unit + 1}"):
                blocks[-1] = PartialBlock(blocks[-1], names)
    for stage in stages[stages.index(kept_stage) + 1 if kept_stage else 0:]:
        setattr(model, stage, nn.Sequential())
    if kept_stage:
        setattr(model, kept_stage, nn.Sequential(*blocks))


def _truncate_mobilenet(model: MobileNetV2, cut: LayerPoint) -> None:
    if cut.module == "last_conv":
        return
    model.last_conv = nn.Identity()
    if cut.module == "stem":
        model.blocks = nn.Sequential()
        return
    parts = cut.module.split(".")
    index = int(parts[1])
    blocks = list(model.blocks)[: index + 1]
    if len(parts) == 3:
        names = ["expand", "depthwise"][: 2 if parts[2] == "depthwise" else 1]
        blocks[-1] = PartialBlock(blocks[-1], [n for n in names if getattr(blocks[-1], n) is not None])
    model.blocks = nn.Sequential(*blocks)


def removable_units(model: nn.Module) -> list[str]:
    """Units ``remove`` accepts: residual blocks with an identity shortcut, VGG conv units,
    MobileNetV2 blocks with a residual connection (SPEC 9)."""
    if isinstance(model, (CifarResNet, ResNet)):
        return [name for name, block in _residual_blocks(model)
                if isinstance(getattr(block, "shortcut", None), nn.Sequential) and len(block.shortcut) == 0]
    if isinstance(model, VGG):
        return [p.name for p in layer_points(model, "paper")]
    if isinstance(model, MobileNetV2):
        return [f"blocks.{i}" for i, block in enumerate(model.blocks) if getattr(block, "residual", False)]
    raise SepgraphError(f"pruning supports sepgraph's zoo models, not {type(model).__name__}")


def _residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(f"{stage}.{i}", block) for stage, blocks in model.named_children() if stage.startswith("layer")
            for i, block in enumerate(blocks) if not isinstance(block, (nn.Identity, PartialBlock))]


def remove(model: nn.Module, units: Sequence[str]) -> nn.Module:
    """Delete removable units inside the network, keeping the original head (SPEC 9).

    VGG: the next conv takes the removed unit's input channels; where that changes its
    shape it is newly initialised (its weights cannot be kept).
    """
    allowed = removable_units(model)
    unknown = [u for u in units if u not in allowed]
    if unknown:
        raise SepgraphError(f"cannot remove {', '.join(unknown)}: removable units are {', '.join(allowed) or 'none'}")
    pruned = copy.deepcopy(model)
    if isinstance(pruned, VGG):
        _remove_vgg_units(pruned, units)
        return pruned
    for unit in units:
        container_name, index = unit.rsplit(".", 1)
        pruned.get_submodule(container_name)[int(index)] = nn.Identity()
    return pruned


def _remove_vgg_units(model: VGG, units: Sequence[str]) -> None:
    convs = [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
    dropped = {convs[int(u.removeprefix("conv")) - 1] + k for u in units for k in range(3)}
    layers = [m for i, m in enumerate(model.features) if i not in dropped]
    channels = 3
    for position, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            if layer.in_channels != channels:
                layers[position] = nn.Conv2d(channels, layer.out_channels, 3, padding=1)
            channels = layer.out_channels
    model.features = nn.Sequential(*layers)
    if channels != model.classifier.in_features:
        raise SepgraphError("removing the last VGG conv unit would change the head's input; truncate instead")


def reinitialise(model: nn.Module) -> nn.Module:
    """Fresh random weights for every layer (``--init scratch``); the structure stays."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def flop_count(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """FLOPs of one forward pass of one image, from ``torch.utils.flop_counter``."""
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def apply_spec(model: nn.Module, spec: str, num_classes: int, input_size: tuple[int, int, int]) -> nn.Module:
    """Apply ``truncate=POINT`` or ``remove=UNIT,UNIT`` (the part of a model name after '+')."""
    operation, _, argument = spec.partition("=")
    if operation == "truncate" and argument:
        return truncate(model, argument, num_classes, input_size)
    if operation == "remove" and argument:
        return remove(model, [unit for unit in argument.split(",") if unit])
    raise SepgraphError(f"unknown pruning {spec!r}; write MODEL+truncate=POINT or MODEL+remove=UNIT,UNIT")


def unit_of_point(model: nn.Module, point: LayerPoint) -> str | None:
    """The removable unit whose output ``point`` is, if any (for the ``delta`` rule)."""
    units = set(removable_units(model))
    if isinstance(model, VGG):
        name = point.name.removesuffix(".conv")
        return name if name in units else None
    if isinstance(model, (CifarResNet, ResNet)):
        block = point.module.rsplit(".", 1)[0] if point.module.count(".") == 2 else point.module
        if block not in units:
            return None
        last_unit = [n for n in ("relu3", "relu2") if hasattr(model.get_submodule(block), n)][0]
        return block if point.module in (block, f"{block}.{last_unit}") else None
    return point.module if point.module in units else None
