"""The training loop of the recipe (SPEC 10), resumable exactly, on CPU or CUDA.

SGD (lr 0.01, momentum 0.9, weight decay 0.005), batch 256, 150 epochs, lr x 0.1 at
epochs 50 and 100, RandomCrop(32, padding 4) and horizontal flips; every value is a
parameter. Steps run in the recipe's memory layout (channels-last by default; the checkpoints
are the same plain state dicts either way) and precision. Each epoch
writes, atomically, the plain ``state_dict`` (``model.pt``), the full training state for
``resume`` (``state.pt``: model, optimizer, scheduler, random generators; readable with
``weights_only=True``) and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.protocol import LabelledImages
from ..data.sources import DataLike, as_dataset
from ..devices import resolve_device
from ..errors import SepgraphError
from ..files import atomic_text, atomic_write
from ..progress import progress_bar
from .augmentation import augment_batch
from .evaluation import evaluate
from .precision import autocast, check_precision
from .recipe import Recipe, TrainingRun


def train(
    model: nn.Module,
    dataset: DataLike,
    *,
    normalize: str,
    recipe: Recipe | None = None,
    test_dataset: DataLike | None = None,
    out: str | Path = "runs/train",
    resume: bool = False,
    parameters: Sequence[nn.Parameter] | None = None,
    frozen_statistics: bool = False,
    device: str = "auto",
    progress: bool = True,
    observer: Callable[[int, nn.Module], None] | None = None,
) -> TrainingRun:
    """Train ``model`` on ``dataset`` with ``recipe`` (SPEC 10), writing checkpoints to ``out`` every epoch.

    Args:
        parameters: train only these (e.g. a new head); all when None.
        frozen_statistics: keep the model in eval mode so batch-norm statistics stay as they are.
        resume: continue from ``out/state.pt`` exactly (same batches, same augmentation).
        observer: called as ``observer(epoch, model)`` when training starts (epoch 0, or the epoch it resumes
            at) and after each epoch is saved, e.g. a :class:`~sepgraph.analysis.dynamics.DynamicsTracker`.
    """
    recipe = recipe or Recipe()
    recipe.check()
    dataset, test_dataset = as_dataset(dataset), None if test_dataset is None else as_dataset(test_dataset)
    target = resolve_device(device)
    check_precision(recipe.precision, target)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(target, memory_format=recipe.layout)
    trainable = list(parameters) if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    scheduler = recipe.learning_rates(optimizer)
    # dropout draws from torch's global generator: seeded from the recipe here (restored on resume), inside a
    # fork so the caller's generator is left as it was
    with torch.random.fork_rng(devices=[]), _only_trained(model, trainable):
        torch.manual_seed(recipe.seed)
        state = _State(model, optimizer, scheduler, torch.Generator().manual_seed(recipe.seed), recipe,
                       TrainingRun(out))
        start_epoch = _start(state, out, resume)
        steps = _Steps(state, dataset, normalize, target, frozen_statistics, progress)
        _observe(observer, start_epoch, model, recipe.layout)
        for epoch in range(start_epoch, recipe.epochs):
            metrics = steps.epoch(epoch)
            scheduler.step()
            if test_dataset is not None:
                result = evaluate(model, test_dataset, normalize=normalize, device=device, progress=False)
                metrics.update(test_accuracy=result.accuracy, test_loss=result.loss)
            state.history.metrics.append(metrics)
            _save(state)
            _observe(observer, epoch + 1, model, recipe.layout)
        model.to(memory_format=torch.contiguous_format)  # handed back as it came
        return state.history


def _observe(observer: Callable[[int, nn.Module], None] | None, epoch: int, model: nn.Module,
             layout: torch.memory_format) -> None:
    """``observer(epoch, model)`` with the model in the default memory order, as a loaded checkpoint is (so it
    measures what the saved model gives), then back in the steps' ``layout``."""
    if observer is not None:
        observer(epoch, model.to(memory_format=torch.contiguous_format))
        model.to(memory_format=layout)


@dataclass
class _State:
    """Everything a checkpoint of a run holds (``state.pt``) and the metrics so far."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    recipe: Recipe
    history: TrainingRun


def _start(state: _State, out: Path, resume: bool) -> int:
    """The epoch the run starts at: 0, or where ``out/state.pt`` left it (then restored)."""
    if resume:
        return _restore(state)
    if (out / "state.pt").exists():
        raise SepgraphError(f"{str(out)!r} already holds a training run; pass --resume to continue it "
                            "or choose another --out")
    return 0


@contextmanager
def _only_trained(model: nn.Module, trainable: Sequence[nn.Parameter]) -> Iterator[None]:
    """Every parameter of ``model`` outside ``trainable`` frozen for the block, then as it was."""
    ids = {id(p) for p in trainable}
    frozen = [p for p in model.parameters() if id(p) not in ids]
    saved = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(frozen, saved, strict=True):
            p.requires_grad_(flag)


@dataclass
class _Steps:
    """The SGD steps of a run's epochs: batches drawn from the run's generator, augmented, normalised."""

    state: _State
    dataset: LabelledImages
    normalize: str
    device: torch.device
    frozen_statistics: bool
    progress: bool

    def epoch(self, epoch: int) -> dict:
        """One epoch (0-based ``epoch``); returns its metrics."""
        model, recipe, optimizer = self.state.model, self.state.recipe, self.state.optimizer
        model.train(not self.frozen_statistics)
        order = torch.randperm(len(self.dataset), generator=self.state.generator).numpy()
        steps = math.ceil(len(order) / recipe.batch_size)
        seen = correct = 0
        loss_sum = 0.0
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        bar = progress_bar(range(steps), desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch",
                           disable=not self.progress)
        for step in bar:
            chosen = np.sort(order[step * recipe.batch_size:(step + 1) * recipe.batch_size])
            logits, labels, loss = self._step(chosen, epoch, step)
            seen += len(chosen)
            correct += int((logits.argmax(1) == labels).sum())
            loss_sum += float(loss.detach()) * len(chosen)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}%", lr=f"{lr:g}")
        return {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen, "train_accuracy": 100.0 * correct / seen,
                "seconds": time.perf_counter() - start}

    def _step(self, chosen: np.ndarray, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One SGD step on the samples ``chosen``; returns the logits, labels and loss."""
        recipe = self.state.recipe
        augment = partial(augment_batch, generator=self.state.generator, padding=recipe.padding) \
            if recipe.augment else None
        images = self.dataset.training_batch(chosen, self.normalize, augment).to(self.device,
                                                                                 memory_format=recipe.layout)
        labels = torch.from_numpy(self.dataset.labels[chosen]).to(self.device)
        with autocast(recipe.precision, self.device):
            logits = self.state.model(images)
            loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise SepgraphError(f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {loss.item()}); "
                                "lower --lr")
        self.state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.state.optimizer.step()
        return logits, labels, loss


def _save(state: _State) -> None:
    out, history = state.history.out, state.history
    checkpoint = {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
                  "scheduler": state.scheduler.state_dict(), "generator": state.generator.get_state(),
                  "torch_rng": torch.get_rng_state(), "epoch": len(history.metrics),
                  "recipe": json.dumps(asdict(state.recipe))}
    for name, content in (("state.pt", checkpoint), ("model.pt", state.model.state_dict())):
        atomic_write(out / name, lambda handle, c=content: torch.save(c, handle))
    atomic_text(out / "metrics.json", json.dumps({"recipe": asdict(state.recipe),
                                                  "memory_format": state.recipe.memory_format,
                                                  "epochs": history.metrics}, indent=1) + "\n")


def _restore(state: _State) -> int:
    out = state.history.out
    path = out / "state.pt"
    if not path.is_file():
        raise SepgraphError(f"nothing to resume: {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SepgraphError(f"cannot resume from {str(path)!r}: {error}") from error
    saved, current = _comparable(json.loads(checkpoint["recipe"])), _comparable(asdict(state.recipe))
    changed = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
    if changed:
        only = "nothing may differ under schedule cosine" if current["schedule"] == "cosine" else \
            "only --epochs may differ"
        raise SepgraphError(f"cannot resume: the recipe changed ({', '.join(changed)}); {only}")
    state.model.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.scheduler.load_state_dict(checkpoint["scheduler"])
    state.generator.set_state(checkpoint["generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    state.history.metrics.extend(json.loads((out / "metrics.json").read_text())["epochs"][: int(checkpoint["epoch"])])
    return int(checkpoint["epoch"])


def _comparable(recipe: dict) -> dict:
    """A recipe as a resume compares it: sequences as lists (JSON turns tuples into lists), ``schedule`` ``step``
    where it was saved before the field existed, and without its epoch count unless the schedule is ``cosine``
    (whose rates follow from the epochs, so more epochs would change the ones already trained)."""
    recipe = {"schedule": "step", **recipe}
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in recipe.items()
            if k != "epochs" or recipe["schedule"] == "cosine"}
