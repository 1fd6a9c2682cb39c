"""One registry for every model sepgraph can build by name (SPEC 11).

Zoo models register themselves with :func:`register_model`; ``torchvision:NAME``
and ``timm:NAME`` build those libraries' models with random weights (weights come
from ``--weights`` files, never from a download).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import SepgraphError
from ..pruning import apply_spec


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
    """The (channels, height, width) a model expects: 32x32 for the zoo, 224x224 otherwise."""
    if name.startswith(("torchvision:", "timm:")):
        return (3, 224, 224)
    return model_info(name.partition("+")[0]).input_size


def create_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build a model by name with random weights.

    Args:
        name: a zoo name (``resnet56``), ``torchvision:NAME`` or ``timm:NAME``; a zoo name may be
            followed by a pruning, ``+truncate=POINT`` or ``+remove=UNIT,UNIT`` (SPEC 9).
        num_classes: size of the classification head.
    """
    if num_classes < 1:
        raise SepgraphError(f"num_classes must be at least 1, got {num_classes}")
    base, plus, pruning = name.partition("+")
    if plus:
        return apply_spec(create_model(base, num_classes), pruning, num_classes, input_size(base))
    library, _, remote = name.partition(":")
    if remote and library == "torchvision":
        import torchvision

        if remote not in torchvision.models.list_models():
            raise SepgraphError(
                f"unknown torchvision model {remote!r}; see torchvision.models.list_models()"
            )
        return torchvision.models.get_model(remote, weights=None, num_classes=num_classes)
    if remote and library == "timm":
        try:
            import timm
        except ImportError as error:
            raise SepgraphError("timm:NAME models need timm: pip install 'sepgraph[timm]'") from error
        if not timm.list_models(remote):
            raise SepgraphError(f"unknown timm model {remote!r}; see timm.list_models()")
        return timm.create_model(remote, pretrained=False, num_classes=num_classes)
    return model_info(name).builder(num_classes=num_classes)


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (trainable or not), as papers report it."""
    return sum(p.numel() for p in model.parameters())
