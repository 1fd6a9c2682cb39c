"""Forward hooks at layer points (SPEC 1): copy the outputs of chosen module calls, stop the pass once the last
one ran, and the per-sample shape of every point. The model's own outputs are untouched."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..devices import evaluation_mode
from ..errors import SepgraphError, input_shape_error
from .protocol import LayerPoint


class _StopForward(Exception):
    """Raised inside a hook once a batch's last wanted point is captured."""


Sink = dict[int, Callable[[torch.Tensor], object]]
"""Where each point's (batch, D) rows go, by the point's position in the captured list."""


class PointCapture:
    """Forward hooks that copy chosen module calls into per-point output slots."""

    def __init__(self, model: nn.Module, points: Sequence[LayerPoint], stop_early: bool):
        modules = dict(model.named_modules())
        for point in points:
            if point.module not in modules:
                raise SepgraphError(
                    f"unknown layer {point.module!r} (point {point.name!r}): the model has no such module"
                )
        self.points = list(points)
        self.stop_early = stop_early
        self.outputs: dict[int, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        wanted: dict[str, dict[int, int]] = {}
        for position, point in enumerate(points):
            wanted.setdefault(point.module, {})[point.call] = position
        self.handles = [
            modules[name].register_forward_hook(self._hook(name, calls)) for name, calls in wanted.items()
        ]
        self.sink: Sink | None = None
        self.done: set[int] = set()

    def _hook(self, name: str, calls: dict[int, int]):
        def hook(_module, _inputs, output):
            call = self.calls.get(name, 0)
            self.calls[name] = call + 1
            if call not in calls:
                return
            if not isinstance(output, torch.Tensor):
                raise SepgraphError(
                    f"layer {name!r} returns a {type(output).__name__}, not a tensor; choose another module"
                )
            position = calls[call]
            if self.sink is not None:
                self.sink[position](output.reshape(output.shape[0], -1))
            else:
                self.outputs[position] = output.detach().clone()
            self.done.add(position)
            if self.stop_early and len(self.done) == len(self.points):
                raise _StopForward

        return hook

    def forward(self, model: nn.Module, batch: torch.Tensor, sink: Sink | None = None) -> None:
        """One forward pass; captured outputs go to ``sink`` or ``self.outputs``."""
        self.calls, self.done, self.sink, self.outputs = {}, set(), sink, {}
        try:
            model(batch)
        except _StopForward:
            pass
        if len(self.done) < len(self.points):
            point = next(p for i, p in enumerate(self.points) if i not in self.done)
            raise SepgraphError(
                f"layer point {point.name!r} (module {point.module!r}, call {point.call}) did not run in the "
                "forward pass; check the module name and call number"
            )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def hooked_pass(model: nn.Module, example: torch.Tensor, before: Callable[[str], object] | None = None,
                after: Callable[[str, tuple, object], object] | None = None) -> None:
    """One forward pass of ``example`` (moved to the model's device) in eval mode and without gradients, with
    ``before(name)`` told as each module's call starts and ``after(name, inputs, output)`` as it ends (the model
    itself is named ``""``); every hook is removed afterwards."""
    handles = []
    for name, module in model.named_modules():
        if before is not None:
            handles.append(module.register_forward_pre_hook(lambda _module, _inputs, n=name: before(n)))
        if after is not None:
            handles.append(module.register_forward_hook(lambda _module, inputs, output, n=name: after(n, inputs,
                                                                                                      output)))
    try:
        with torch.inference_mode(), evaluation_mode(model):
            model(example.to(next((p.device for p in model.parameters()), example.device)))
    finally:
        for handle in handles:
            handle.remove()


def point_shapes(
    model: nn.Module, points: Sequence[LayerPoint], example: torch.Tensor
) -> list[tuple[int, ...]]:
    """Per-sample output shape of each point, from one forward pass on ``example`` (1, C, H, W).

    Also checks that the model accepts such inputs, that every point runs and that its output on
    ``example`` is finite (naming the first point that is not). The pass runs in eval mode
    on the device of the model's parameters; every module's training mode is restored afterwards.
    """
    capture = PointCapture(model, points, stop_early=True)
    device = next((p.device for p in model.parameters()), example.device)
    try:
        with torch.inference_mode(), evaluation_mode(model):
            capture.forward(model, example.to(device))
    except RuntimeError as error:
        raise input_shape_error(example.shape[1:], error) from error
    finally:
        capture.remove()
    for position, point in enumerate(points):  # the first point where the features break, before any work
        output = capture.outputs[position]
        if not output.is_meta and not bool(torch.isfinite(output).all()):
            raise SepgraphError(f"layer point {point.name!r}: features contain NaN or Inf (did the model diverge, "
                                "or the input overflow?)")
    return [tuple(capture.outputs[i].shape[1:]) for i in range(len(points))]
