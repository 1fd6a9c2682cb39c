"""How big a model is: parameters and the FLOPs of one image (SPEC 9's savings)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..devices import evaluation_mode


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (trainable or not), as papers report it."""
    return sum(p.numel() for p in model.parameters())


def flop_count(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """FLOPs of one forward pass of one image, from ``torch.utils.flop_counter``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), evaluation_mode(model):
        model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    return int(counter.get_total_flops())
