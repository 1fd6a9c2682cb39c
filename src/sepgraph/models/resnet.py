"""CIFAR variants of ResNet18/34/50/101: 3x3 stride-1 stem, no max-pool, widths 64-512.

Module names follow the common CIFAR implementation (``conv1``, ``bn1``,
``layer1..4``, blocks with ``shortcut``, ``linear``) so its checkpoints load.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .protocol import LayerPoint, RemovableUnit
from .registry import register_model
from .surgery import PartialBlock, block_units, without_modules


def projection(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """1x1 conv + BN shortcut where shapes change; an empty Sequential (identity) otherwise."""
    if stride == 1 and in_planes == planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


class BasicBlock(nn.Module):
    """Two 3x3 Conv-BN-ReLU units; the second adds the shortcut before its ReLU.

    ``shortcut`` defaults to :func:`projection`; CIFAR ResNets pass option A's padding.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.shortcut = projection(in_planes, planes, stride) if shortcut is None else shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) Conv-BN-ReLU units; the last adds the shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu3 = nn.ReLU()
        self.shortcut = projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.relu3(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResidualNetwork(nn.Module):
    """A ResNet with stem ``conv1/bn1/relu``, stages ``layer1..`` of blocks and a ``linear`` head: its layer
    points (SPEC 1), its removable blocks and how it is built without them or cut short (SPEC 9).

    Subclasses set ``units``: the activation modules closing a block's Conv-BN-ReLU units, the last being
    the block output.
    """

    units: tuple[str, ...] = ("relu1", "relu2")

    def _blocks(self) -> list[tuple[str, nn.Module]]:
        """(``layerS.B``, block) of every block still present, in execution order."""
        return [(f"{stage}.{index}", block) for stage, blocks in self.named_children() if stage.startswith("layer")
                for index, block in enumerate(blocks) if not isinstance(block, nn.Identity)]

    def layer_points(self, convention: str) -> list[LayerPoint]:
        """SPEC 1 points: ``paper`` 1 + one per unit of each block, ``lu2022`` and ``blocks`` 1 + 1 per block."""
        return residual_points(self, convention, self.units)

    def removable_units(self, convention: str) -> list[RemovableUnit]:
        """Blocks with an identity shortcut; input point: the previous block's output or the stem (SPEC 8, 9)."""
        return block_units(self.layer_points(convention), [
            (name, block, _identity_shortcut(block))
            for name, block in self._blocks()])

    def without(self, units: Sequence[str]) -> nn.Module:
        """A copy without the named blocks; the shortcut alone carries their input on."""
        return without_modules(self, units)

    def truncated(self, point: LayerPoint, head: nn.Linear) -> nn.Module:
        """A copy up to and including ``point`` (a block cut short keeps its first units), with ``head``
        on global average pooling (SPEC 9)."""
        model = copy.deepcopy(self)
        stages = [name for name, _ in model.named_children() if name.startswith("layer")]
        kept_stage, kept = None, []
        if point.module == "conv1":
            model.bn1, model.relu = nn.Identity(), nn.Identity()
        elif point.module != "relu":
            parts = point.module.split(".")
            kept_stage, index = parts[0], int(parts[1])
            kept = list(getattr(model, kept_stage))[: index + 1]
            if len(parts) == 3 and parts[2] != self.units[-1]:
                names = self.units[: self.units.index(parts[2]) + 1]
                kept[-1] = PartialBlock(kept[-1], [f"{kind}{name[-1]}" for name in names
                                                   for kind in ("conv", "bn", "relu")])
        for stage in stages[stages.index(kept_stage) + 1 if kept_stage else 0:]:
            setattr(model, stage, nn.Sequential())
        if kept_stage:
            setattr(model, kept_stage, nn.Sequential(*kept))
        model.linear = head
        return model


def _identity_shortcut(block: nn.Module) -> bool:
    shortcut = getattr(block, "shortcut", None)
    return isinstance(shortcut, nn.Sequential) and len(shortcut) == 0


class ResNet(ResidualNetwork):
    """Four stages (64, 128, 256, 512 planes; strides 1, 2, 2, 2) and a linear head."""

    def __init__(self, block: type[BasicBlock | Bottleneck], blocks: tuple[int, int, int, int], num_classes: int = 10):
        super().__init__()
        self.block = block
        self.units = ("relu1", "relu2") if block is BasicBlock else ("relu1", "relu2", "relu3")
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(64, blocks[0], 1)
        self.layer2 = self._stage(128, blocks[1], 2)
        self.layer3 = self._stage(256, blocks[2], 2)
        self.layer4 = self._stage(512, blocks[3], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(self.block(self.in_planes, planes, s))
            self.in_planes = planes * self.block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


def residual_points(model: nn.Module, convention: str, units: tuple[str, ...]) -> list[LayerPoint]:
    """Points of a ResNet with stem ``conv1/bn1/relu`` and stages ``layer1..``; the last unit is the block output.

    Blocks removed by pruning (identities) have no points; a block cut short has its units'
    points under ``paper`` and none as a block.
    """
    if convention == "lu2022":
        points = [LayerPoint("stem.conv", "conv1")]
    else:
        points = [] if isinstance(model.relu, nn.Identity) else [LayerPoint("stem", "relu")]
    for stage_name, stage in model.named_children():
        if not stage_name.startswith("layer"):
            continue
        for index, block in enumerate(stage):
            name = f"{stage_name}.{index}"
            if isinstance(block, nn.Identity) or (isinstance(block, PartialBlock) and convention != "paper"):
                continue
            if convention == "paper":
                present = [u for u in units if hasattr(block, u)]
                points += [LayerPoint(f"{name}.unit{u + 1}", f"{name}.{m}") for u, m in enumerate(present)]
            else:
                points.append(LayerPoint(name, name))
    return points


@register_model("resnet")
def resnet18(num_classes: int = 10) -> ResNet:
    """CIFAR ResNet18 (11.17M parameters)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


@register_model("resnet")
def resnet34(num_classes: int = 10) -> ResNet:
    """CIFAR ResNet34 (21.28M parameters)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes)


@register_model("resnet")
def resnet50(num_classes: int = 10) -> ResNet:
    """CIFAR ResNet50 (23.52M parameters)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)


@register_model("resnet")
def resnet101(num_classes: int = 10) -> ResNet:
    """CIFAR ResNet101 (42.51M parameters)."""
    return ResNet(Bottleneck, (3, 4, 23, 3), num_classes)
