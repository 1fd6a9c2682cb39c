"""MobileNetV2 (Sandler et al. 2018) with CIFAR strides: stride-1 stem and second stage.

The inverted-residual blocks are the paper's: a residual only where stride is 1
and input and output channels agree (the blocks SPEC 9 may remove).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .protocol import LayerPoint, RemovableUnit
from .registry import register_model
from .surgery import PartialBlock, block_units, without_modules

# (expansion, output channels, blocks, first stride); ImageNet's second-stage stride 2 is 1 here.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class ConvUnit(nn.Sequential):
    """Conv-BN and, unless ``activation`` is False, ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, activation: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation:
            layers.append(nn.ReLU6())
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand (absent at expansion 1), 3x3 depthwise, linear 1x1 projection, optional residual."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.expand = ConvUnit(in_channels, hidden) if expansion != 1 else None
        self.depthwise = ConvUnit(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvUnit(hidden, out_channels, activation=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return out + x if self.residual else out


class MobileNetV2(nn.Module):
    """Stem, 17 inverted-residual blocks, a 1x1 conv to 1280 channels, pooling and a linear head."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = ConvUnit(3, 32, 3, 1)
        blocks = []
        in_channels = 32
        for expansion, out_channels, count, stride in STAGES:
            for i in range(count):
                blocks.append(InvertedResidual(in_channels, out_channels, stride if i == 0 else 1, expansion))
                in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.last_conv = ConvUnit(in_channels, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.last_conv(self.blocks(self.stem(x)))
        return self.classifier(self.dropout(torch.flatten(self.pool(out), 1)))

    def layer_points(self, convention: str) -> list[LayerPoint]:
        """SPEC 1: ``paper`` stem, per block expand/depthwise/output, last conv; ``lu2022`` block outputs;
        ``blocks`` stem, block outputs, last conv."""
        points = [] if convention == "lu2022" else [LayerPoint("stem", "stem")]
        for index, block in enumerate(self.blocks):
            name = f"blocks.{index}"
            if isinstance(block, nn.Identity) or (isinstance(block, PartialBlock) and convention != "paper"):
                continue
            if convention == "paper":
                for unit in ("expand", "depthwise"):
                    if getattr(block, unit, None) is not None:
                        points.append(LayerPoint(f"{name}.{unit}", f"{name}.{unit}"))
                if not isinstance(block, PartialBlock):
                    points.append(LayerPoint(f"{name}.out", name))
            else:
                points.append(LayerPoint(name, name))
        if convention == "lu2022" or isinstance(self.last_conv, nn.Identity):
            return points
        return points + [LayerPoint("last_conv", "last_conv")]

    def removable_units(self, convention: str) -> list[RemovableUnit]:
        """Blocks with a residual connection; input point: the previous block's output (SPEC 8, 9)."""
        return block_units(self.layer_points(convention), [
            (f"blocks.{index}", block, bool(getattr(block, "residual", False)))
            for index, block in enumerate(self.blocks) if not isinstance(block, nn.Identity)])

    def without(self, units: Sequence[str]) -> nn.Module:
        """A copy without the named blocks; the residual alone carries their input on."""
        return without_modules(self, units)

    def truncated(self, point: LayerPoint, head: nn.Linear) -> nn.Module:
        """A copy up to and including ``point`` (a block cut short keeps its first units), with ``head``
        on global average pooling (SPEC 9)."""
        model = copy.deepcopy(self)
        model.classifier = head
        if point.module == "last_conv":
            return model
        model.last_conv = nn.Identity()
        if point.module == "stem":
            model.blocks = nn.Sequential()
            return model
        parts = point.module.split(".")
        kept = list(model.blocks)[: int(parts[1]) + 1]
        if len(parts) == 3:
            names = ["expand", "depthwise"][: 2 if parts[2] == "depthwise" else 1]
            kept[-1] = PartialBlock(kept[-1], [name for name in names if getattr(kept[-1], name) is not None])
        model.blocks = nn.Sequential(*kept)
        return model


@register_model("mobilenet")
def mobilenet_v2(num_classes: int = 10) -> MobileNetV2:
    """MobileNetV2 for CIFAR (2.24M parameters)."""
    return MobileNetV2(num_classes)
