"""Build a model by name, seeded, with its weights loaded in the same call (SPEC 11).

``torchvision:NAME`` and ``timm:NAME`` build those libraries' models with random weights (weights
come from ``--weights`` files, never from a download). Every model sepgraph makes goes through
:func:`build_model`, so the same name, classes, weights and seed give the same model everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..errors import SepgraphError
from .checkpoints import load_weights
from .pruned import PruningSpec, apply_pruning
from .registry import input_size, model_info


class BuiltModel(NamedTuple):
    """A model and the sha256 of the checkpoint loaded into it (None: random weights from the seed)."""

    model: nn.Module
    weights_sha256: str | None


def build_model(name: str, num_classes: int = 10, weights: str | Path | None = None, seed: int = 0) -> BuiltModel:
    """Build ``name`` with weights drawn from ``seed`` (torch's global generator is left as it was), then
    load ``weights`` (``weights_only=True``) when given.

    Args:
        name: see :func:`create_model`.
        num_classes: size of the classification head.
        weights: a checkpoint file (a state dict, SPEC 11).
        seed: seed of the random initialisation (and of a new head after a ``+truncate`` pruning).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(name, num_classes)
    return BuiltModel(model, load_weights(model, weights) if weights else None)


def create_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build a model by name with random weights.

    Args:
        name: a zoo name (``resnet56``), ``torchvision:NAME`` or ``timm:NAME``; a zoo name may be
            followed by a pruning, ``+truncate=POINT`` or ``+remove=UNIT,UNIT`` (SPEC 9).
        num_classes: size of the classification head.
    """
    if num_classes < 1:
        raise SepgraphError(f"num_classes must be at least 1, got {num_classes}")
    spec = PruningSpec.parse(name)
    if spec.operation is not None:
        return apply_pruning(create_model(spec.base, num_classes), spec, num_classes, input_size(spec.base))
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
