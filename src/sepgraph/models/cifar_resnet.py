"""He et al. (2016) CIFAR ResNets resnet20/32/44/56/110 with option-A shortcuts.

Module names follow the widely used CIFAR implementation (``conv1``, ``bn1``,
``layer1..3``, ``linear``) so its checkpoints load as they are (SPEC 11).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .resnet import BasicBlock, ResidualNetwork


class PadShortcut(nn.Module):
    """Option A: subsample by 2 and zero-pad ``planes // 4`` channels on each side."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


def option_a_block(in_planes: int, planes: int, stride: int) -> BasicBlock:
    """A basic block whose shortcut is the identity or option A's subsample-and-pad."""
    changes = stride != 1 or in_planes != planes
    return BasicBlock(in_planes, planes, stride, shortcut=PadShortcut(planes) if changes else nn.Sequential())


class CifarResNet(ResidualNetwork):
    """3 stages of ``n`` basic blocks, widths 16/32/64, depth 6n + 2."""

    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, blocks, 1)
        self.layer2 = self._stage(16, 32, blocks, 2)
        self.layer3 = self._stage(32, 64, blocks, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        first = option_a_block(in_planes, planes, stride)
        return nn.Sequential(first, *[option_a_block(planes, planes, 1) for _ in range(blocks - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(self.pool(out), 1))


@register_model("cifar-resnet")
def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR (0.27M parameters)."""
    return CifarResNet(20, num_classes)


@register_model("cifar-resnet")
def resnet32(num_classes: int = 10) -> CifarResNet:
    """ResNet-32 for CIFAR (0.46M parameters)."""
    return CifarResNet(32, num_classes)


@register_model("cifar-resnet")
def resnet44(num_classes: int = 10) -> CifarResNet:
    """ResNet-44 for CIFAR (0.66M parameters)."""
    return CifarResNet(44, num_classes)


@register_model("cifar-resnet")
def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR (0.85M parameters)."""
    return CifarResNet(56, num_classes)


@register_model("cifar-resnet")
def resnet110(num_classes: int = 10) -> CifarResNet:
    """ResNet-110 for CIFAR (1.7M parameters)."""
    return CifarResNet(110, num_classes)
