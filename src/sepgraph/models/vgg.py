"""CIFAR VGG-bn (11/13/16/19): 3x3 Conv-BN-ReLU units, max-pools, a 512 -> classes head.

Layout and module names follow the common CIFAR implementation (``features.N``,
``classifier``) so its checkpoints load (SPEC 11).
"""

from __future__ import annotations

import torch
from torch import nn

from ..points import LayerPoint
from .registry import register_model

CONFIGS: dict[str, list[int | str]] = {
    "vgg11_bn": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13_bn": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16_bn": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19_bn": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """``features`` (Conv-BN-ReLU units and max-pools) then a linear classifier on 512 channels."""

    def __init__(self, config: list[int | str], num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.BatchNorm2d(int(item)), nn.ReLU()]
                in_channels = int(item)
        layers.append(nn.AvgPool2d(1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))

    def layer_points(self, convention: str) -> list[LayerPoint]:
        """SPEC 1: ``paper`` and ``blocks`` take each unit after its ReLU (``convK``);
        ``lu2022`` takes each conv output before BN (``convK.conv``)."""
        convs = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        if convention == "lu2022":
            return [LayerPoint(f"conv{k + 1}.conv", f"features.{i}") for k, i in enumerate(convs)]
        return [LayerPoint(f"conv{k + 1}", f"features.{i + 2}") for k, i in enumerate(convs)
                if i + 2 < len(self.features) and isinstance(self.features[i + 2], nn.ReLU)]


@register_model("vgg")
def vgg11_bn(num_classes: int = 10) -> VGG:
    """VGG11 with batch norm for CIFAR (9.23M parameters)."""
    return VGG(CONFIGS["vgg11_bn"], num_classes)


@register_model("vgg")
def vgg13_bn(num_classes: int = 10) -> VGG:
    """VGG13 with batch norm for CIFAR (9.42M parameters)."""
    return VGG(CONFIGS["vgg13_bn"], num_classes)


@register_model("vgg")
def vgg16_bn(num_classes: int = 10) -> VGG:
    """VGG16 with batch norm for CIFAR (14.73M parameters)."""
    return VGG(CONFIGS["vgg16_bn"], num_classes)


@register_model("vgg")
def vgg19_bn(num_classes: int = 10) -> VGG:
    """VGG19 with batch norm for CIFAR (20.04M parameters)."""
    return VGG(CONFIGS["vgg19_bn"], num_classes)
