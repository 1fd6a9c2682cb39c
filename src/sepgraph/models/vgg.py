"""CIFAR VGG-bn (11/13/16/19): 3x3 Conv-BN-ReLU units, max-pools, a 512 -> classes head.

Layout and module names follow the common CIFAR implementation (``features.N``,
``classifier``) so its checkpoints load (SPEC 11).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .protocol import LayerPoint, RemovableUnit
from .registry import register_model
from .size import parameter_count
from .surgery import without_modules

CONFIGS: dict[str, list[int | str]] = {
    "vgg11_bn": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13_bn": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16_bn": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19_bn": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """``features`` (Conv-BN-ReLU units and max-pools) then a linear classifier on 512 channels.

    Units are named ``conv1``, ``conv2``, ... in the order of the configuration; the names stay with
    their units when others are removed, so a pruned model's points keep their names.
    """

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
        convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
        self.unit_names = {index: f"conv{k + 1}" for k, index in enumerate(convs)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))

    def _units(self) -> list[int]:
        """Positions in ``features`` of the convs of the units present."""
        return [i for i, layer in enumerate(self.features) if isinstance(layer, nn.Conv2d)]

    def layer_points(self, convention: str) -> list[LayerPoint]:
        """SPEC 1: ``paper`` and ``blocks`` take each unit after its ReLU (``convK``);
        ``lu2022`` takes each conv output before BN (``convK.conv``)."""
        if convention == "lu2022":
            return [LayerPoint(f"{self.unit_names[i]}.conv", f"features.{i}") for i in self._units()]
        return [LayerPoint(self.unit_names[i], f"features.{i + 2}") for i in self._units()
                if i + 2 < len(self.features) and isinstance(self.features[i + 2], nn.ReLU)]

    def removable_units(self, convention: str) -> list[RemovableUnit]:
        """Units with as many input as output channels: without them every other layer keeps its shape
        (pooling stays where it is); input point: the previous unit's (SPEC 8, 9)."""
        points = {point.module.split(".")[1]: point.name for point in self.layer_points(convention)}
        suffix = 0 if convention == "lu2022" else 2
        units, previous = [], None
        for i in self._units():
            conv, output = self.features[i], points.get(str(i + suffix))
            complete = i + 2 < len(self.features) and isinstance(self.features[i + 2], nn.ReLU)  # not cut short
            if complete and conv.in_channels == conv.out_channels:
                size = parameter_count(conv) + parameter_count(self.features[i + 1])
                units.append(RemovableUnit(self.unit_names[i], previous, output, size))
            previous = output
        return units

    def without(self, units: Sequence[str]) -> nn.Module:
        """A copy without the named units (their conv, BN and ReLU become identities)."""
        index_of = {name: i for i, name in self.unit_names.items()}
        return without_modules(self, [f"features.{index_of[u] + k}" for u in units for k in range(3)])

    def truncated(self, point: LayerPoint, head: nn.Linear) -> nn.Module:
        """A copy up to and including ``point``, then global average pooling and ``head`` (SPEC 9)."""
        model = copy.deepcopy(self)
        index = int(point.module.split(".")[1])
        model.features = nn.Sequential(*list(model.features)[: index + 1], nn.AdaptiveAvgPool2d(1))
        model.classifier = head
        return model


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
