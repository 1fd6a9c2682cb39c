"""The arithmetic and memory layout of a training step (SPEC 10): float32, or bf16 autocast where the device
computes bf16 natively; channels-last or contiguous (NCHW) tensors. Features for the similarity work are always
float32; this is for training only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..devices import processor
from ..errors import SepgraphError

PRECISIONS = ("fp32", "bf16")

MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
"""The layouts a training step can run in, by name: which is faster depends on the model and the processor
(README, *Performance*), so it is the recipe's choice, channels-last by default."""

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags of bf16 arithmetic in hardware; without them bf16 is emulated, slower than float32."""


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with one of
    :data:`NATIVE_BF16_FLAGS`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(flag in processor().flags for flag in NATIVE_BF16_FLAGS)


def check_precision(precision: str, device: torch.device) -> None:
    """A precision (one of :data:`PRECISIONS`, as :class:`~sepgraph.training.recipe.Recipe` checks) that runs on
    ``device``, or one clear line naming the value and what to do."""
    if precision == "bf16" and not native_bf16(device):
        where = "this GPU" if device.type == "cuda" else "this processor (no avx512_bf16 or amx_bf16 flag)"
        raise SepgraphError(f"precision 'bf16' needs native bf16 arithmetic, which {where} lacks; use precision "
                            "fp32", arguments=("precision",))


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast of the forward pass and loss for ``precision`` bf16; nothing for fp32."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
