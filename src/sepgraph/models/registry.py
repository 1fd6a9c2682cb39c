"""One registry of the zoo's model names (SPEC 11): zoo models register themselves with
:func:`register_model`; :mod:`sepgraph.models.factory` builds them by name."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import SepgraphError
from .pruned import PruningSpec


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model before building it."""

    name: str
    family: str
    input_size: tuple[int, int, int]
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(family: str, input_size: tuple[int, int, int] = (3, 32, 32)):
    """Decorator: register a builder ``fn(num_classes=...) -> nn.Module`` under its function name."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if builder.__name__ in _REGISTRY:
            raise SepgraphError(f"model name {builder.__name__!r} is already registered; give the builder another name")
        _REGISTRY[builder.__name__] = ModelInfo(builder.__name__, family, input_size, builder)
        return builder

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Names of the zoo models matching a shell-style ``pattern``, in registration order."""
    return [name for name in _REGISTRY if fnmatch.fnmatch(name, pattern)]


def model_info(name: str) -> ModelInfo:
    """The registry entry of a zoo model, or a clear error listing the known names."""
    if name not in _REGISTRY:
        raise SepgraphError(
            f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}, "
            "or torchvision:NAME / timm:NAME"
        )
    return _REGISTRY[name]


def input_size(name: str) -> tuple[int, int, int]:
    """The (channels, height, width) a model (pruned or not) expects: 32x32 for the zoo, 224x224 otherwise."""
    if name.startswith(("torchvision:", "timm:")):
        return (3, 224, 224)
    return model_info(PruningSpec.parse(name).base).input_size
