"""Safe checkpoint loading and key mapping (SPEC 11).

Only ``torch.load(..., weights_only=True)`` is used: a file that needs arbitrary
code to unpickle is refused, never run.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import SepgraphError
from ..files import atomic_write, file_sha256

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a checkpoint file with ``weights_only=True``, on the CPU.

    Accepts a plain state dict or one wrapped under a common key (``state_dict``,
    ``model``, ...), and strips ``module.`` (DataParallel) and ``_orig_mod.``
    (torch.compile) prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise SepgraphError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise SepgraphError(
            f"checkpoint {str(path)!r} was refused: it needs code to unpickle, which weights_only=True "
            f"does not run ({str(error).splitlines()[0]}). If you trust its source, re-save only its "
            "state_dict (torch.save(model.state_dict(), path)) and load that"
        ) from error
    except Exception as error:  # torch raises many types for damaged files; all mean the same here
        raise SepgraphError(
            f"checkpoint {str(path)!r} is corrupt or truncated and cannot be read "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no details'})"
        ) from error
    return unwrap_state_dict(content, str(path))


def unwrap_state_dict(content: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside a loaded checkpoint and strip wrapper prefixes."""
    if isinstance(content, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(content.get(key), Mapping):
                content = content[key]
                break
    if not isinstance(content, Mapping) or not content:
        raise SepgraphError(f"{source} holds no state dict (found {type(content).__name__})")
    tensors = {}
    for key, value in content.items():
        if not isinstance(value, torch.Tensor):
            raise SepgraphError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        tensors[key] = value
    return tensors


def load_weights(model: nn.Module, path: str | Path) -> str:
    """Load a checkpoint into ``model`` strictly, except for missing ``num_batches_tracked``.

    Returns:
        the file's sha256, to record in manifests.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{key} (checkpoint {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
        for key in set(own) & set(state)
        if state[key].shape != own[key].shape
    )
    problems = [
        f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''} ({len(keys)} in all)"
        for label, keys in (
            ("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)
        )
        if keys
    ]
    if problems:
        raise SepgraphError(
            f"checkpoint {str(path)!r} does not fit the model ({type(model).__name__}): "
            + "; ".join(problems)
            + ". Is it for another architecture or number of classes?"
        )
    model.load_state_dict(state, strict=True)
    return file_sha256(path)


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Save ``model.state_dict()`` atomically (temporary file, then rename)."""
    atomic_write(Path(path), lambda handle: torch.save(model.state_dict(), handle))


def state_sha256(model: nn.Module) -> str:
    """Hex sha256 of a module's state dict (names, dtypes, shapes and values, in order): what identifies the weights
    of a model given as a module rather than loaded from a file."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()
