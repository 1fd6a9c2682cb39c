"""Residual blocks of any model (SPEC 25): found from traced forward passes, removed as ``nn.Identity``.

A module is a residual block when its own forward (traced with ``torch.fx``) adds its input, unchanged, to what its
layers computed: an identity shortcut. Such a block keeps its input's shape, so the network still runs without it,
and every surviving module keeps its weights and state-dict keys. A block whose shortcut goes through a module (a
projection, which changes the shape) is listed with that reason and never offered. This is what lets ``prune``
remove the blocks of torchvision's and timm's ResNets and of a user's own residual network, not only the zoo's.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from ..devices import evaluation_mode
from ..errors import SepgraphError
from .capture import PointCapture, hooked_pass
from .protocol import LayerPoint, RemovableUnit
from .size import parameter_count
from .surgery import block_units, without_modules

ADDS = (operator.add, operator.iadd, torch.add)
"""The additions a shortcut is made of."""


@dataclass(frozen=True)
class ResidualBlock:
    """A module whose forward adds its input to its layers' output (SPEC 25).

    Attributes:
        name: its qualified module name.
        removable: whether removing it (an ``nn.Identity`` in its place) keeps the network whole.
        reason: why it is removable or not, for the report.
    """

    name: str
    removable: bool
    reason: str


def residual_blocks(model: nn.Module, example: torch.Tensor) -> list[ResidualBlock]:
    """The model's residual blocks in the order they run on ``example`` (a (B, C, H, W) batch), outermost first
    (a block inside a found block is not listed)."""
    order, shapes = _calls(model, example)
    modules = dict(model.named_modules())
    blocks: list[ResidualBlock] = []
    for name in order:
        if any(name.startswith(block.name + ".") for block in blocks):
            continue
        shortcut = _shortcut(modules[name], name)
        if shortcut is None:
            continue
        before, after = shapes[name]
        if shortcut != "":
            blocks.append(ResidualBlock(name, False, f"its shortcut {shortcut} ({_shape(before)} -> {_shape(after)})"))
        elif before != after:
            blocks.append(ResidualBlock(name, False, f"it changes the shape ({_shape(before)} -> {_shape(after)})"))
        else:
            blocks.append(ResidualBlock(name, True, f"identity shortcut, shape {_shape(before)} kept"))
    return blocks


def residual_units(model: nn.Module, points: list[LayerPoint], example: torch.Tensor) -> list[RemovableUnit]:
    """The removable residual blocks as units (SPEC 8, 9), with their input and output points among ``points``."""
    modules = dict(model.named_modules())
    blocks = [(block.name, modules[block.name], block.removable) for block in residual_blocks(model, example)]
    return block_units(points, blocks)


def refused_blocks(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """Each residual block that is never offered, with why (for the report and the one-line refusals)."""
    return {block.name: block.reason for block in residual_blocks(model, example) if not block.removable}


def _calls(model: nn.Module, example: torch.Tensor
           ) -> tuple[list[str], dict[str, tuple[tuple[int, ...], tuple[int, ...]]]]:
    """Every module that takes and returns one tensor, in the order its first call starts (an outer module before
    the modules it calls), with its first call's per-sample input and output shapes."""
    started: list[str] = []
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def record(name: str, inputs: tuple, output: object) -> None:
        if name and name not in shapes and len(inputs) == 1 and isinstance(inputs[0], torch.Tensor) \
                and isinstance(output, torch.Tensor):
            shapes[name] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]))

    hooked_pass(model, example, before=started.append, after=record)
    return [name for name in dict.fromkeys(started) if name in shapes], shapes


class _ChildrenAsLeaves(torch.fx.Tracer):
    """Traces one module's own forward: each child it calls is one node, never traced into."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return True


def _shortcut(module: nn.Module, prefix: str) -> str | None:
    """``""`` when the module (named ``prefix``) adds its own input unchanged in its own forward (an identity
    shortcut; an ``nn.Identity`` on the way counts as unchanged), how its input reaches the shortcut side of the
    addition otherwise (a projection), or None: no shortcut (a module without children, a container, one fx cannot
    trace, or one whose additions do not both start from its input)."""
    if not any(True for _ in module.children()) or isinstance(module, (nn.Sequential, nn.ModuleList)):
        return None
    try:
        graph = _ChildrenAsLeaves().trace(module)
    except Exception:  # noqa: BLE001  data-dependent control flow, unsupported calls: not a block we can judge
        return None
    inputs = [node for node in graph.nodes if node.op == "placeholder"][:1]
    if not inputs:
        return None
    found = None
    for node in graph.nodes:
        adds = (node.op == "call_function" and node.target in ADDS) or (
            node.op == "call_method" and node.target in ("add", "add_"))
        operands = [arg for arg in node.args if isinstance(arg, torch.fx.Node)]
        if not adds or len(operands) != 2:
            continue
        chains = [_chain(module, operand, inputs[0]) for operand in operands]
        if None in chains:  # both sides must start from the input
            continue
        shortcut = min(chains, key=lambda chain: (len(chain), _weights(module, chain)))
        if not shortcut:
            return ""
        first = shortcut[-1]  # the shortcut's first step from the input
        found = found or (f"goes through {prefix}.{first.target}" if first.op == "call_module"
                          else f"is computed by {getattr(first.target, '__name__', first.target)}")
    return found


def _chain(module: nn.Module, node: torch.fx.Node, start: torch.fx.Node) -> list[torch.fx.Node] | None:
    """The steps from ``node`` back to ``start`` along first arguments (``node`` first; an ``nn.Identity`` call is no
    step, nor an empty ``nn.Sequential``), or None if they do not lead there."""
    chain: list[torch.fx.Node] = []
    while node is not start:
        if not (node.op == "call_module" and _passes_through(module.get_submodule(node.target))):
            chain.append(node)
        node = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
        if node is None:
            return None
    return chain


def _passes_through(module: nn.Module) -> bool:
    """An ``nn.Identity`` or an empty ``nn.Sequential``: what returns its input as it is."""
    return isinstance(module, nn.Identity) or (isinstance(module, nn.Sequential) and len(module) == 0)


def _weights(module: nn.Module, chain: list[torch.fx.Node]) -> int:
    """Parameters of the modules a chain calls: on a tie of lengths, the lighter side is the shortcut."""
    return sum(parameter_count(module.get_submodule(node.target)) for node in chain if node.op == "call_module")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def truncated_copy(model: nn.Module, point: LayerPoint, head: nn.Linear, example: torch.Tensor) -> nn.Module:
    """A copy of any model kept up to ``point`` (SPEC 9, 25): every module with weights that starts after the point's
    call ends becomes ``nn.Identity`` (weight-free ones such as pooling stay), and the last linear layer becomes
    ``head``. Refused in one line unless the copy's head then sees exactly the point's globally pooled features (a
    point inside a block, or a network whose later modules do more than pass features on, cannot be cut this way)."""
    events = _events(model, example)
    ends = [k for k, (kind, name) in enumerate(events) if kind == "end" and name == point.module]
    if len(ends) <= point.call:
        raise SepgraphError(f"layer point {point.name!r} does not run in the model's forward pass")
    modules = dict(model.named_modules())
    linear = [name for kind, name in events if kind == "start" and isinstance(modules[name], nn.Linear)]
    if not linear:
        raise SepgraphError(f"{type(model).__name__} has no linear head to replace, so it cannot be truncated; cut it "
                            "by removal instead (a --target-params or --target-flops target, or --rule delta)")
    after = _first_starts(events, ends[point.call])
    later = [name for name in after if name != linear[-1] and any(True for _ in modules[name].parameters())
             and not any(name.startswith(other + ".") for other in after if other != name)]
    truncated = without_modules(model, later)
    parent, _, child = linear[-1].rpartition(".")
    setattr(truncated.get_submodule(parent) if parent else truncated, child, head)
    _check_truncation(model, truncated, point, head, tuple(example.shape[1:]))
    return truncated


def _events(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """("start" | "end", module name) of every module call of one forward pass of ``example``, in order."""
    events: list[tuple[str, str]] = []
    hooked_pass(model, example, before=lambda name: events.append(("start", name)),
                after=lambda name, _inputs, _output: events.append(("end", name)))
    return events


def _first_starts(events: list[tuple[str, str]], after: int) -> list[str]:
    """Modules whose first call starts after event ``after``, in that order."""
    started = {name for kind, name in events[:after + 1] if kind == "start"}
    return list(dict.fromkeys(name for kind, name in events[after + 1:] if kind == "start" and name not in started))


def _check_truncation(model: nn.Module, truncated: nn.Module, point: LayerPoint, head: nn.Linear,
                      size: tuple[int, ...]) -> None:
    """Refuse a truncation whose head does not see the point's pooled features on a random batch."""
    seen: dict[str, torch.Tensor] = {}
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    batch = torch.randn(2, *size, generator=generator).to(device)
    capture = PointCapture(model, [point], stop_early=True)
    handle = head.register_forward_pre_hook(lambda _module, inputs: seen.setdefault("head", inputs[0]))
    refusal = SepgraphError(f"cannot truncate {type(model).__name__} at {point.name!r}: cut there, its head would not "
                            "see that point's pooled features (a point inside a block?); choose a block's output point")
    try:
        with torch.inference_mode(), evaluation_mode(model), evaluation_mode(truncated):
            capture.forward(model, batch)
            truncated(batch)
        features = capture.outputs[0]
    except RuntimeError as error:  # the cut network does not even run
        raise refusal from error
    finally:
        capture.remove()
        handle.remove()
    pooled = features.flatten(2).mean(2) if features.dim() > 2 else features
    if "head" not in seen or seen["head"].shape != pooled.shape or not torch.allclose(seen["head"], pooled,
                                                                                        rtol=1e-4, atol=1e-5):
        raise refusal
